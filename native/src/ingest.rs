//! One ingest batch in the core (`streams/app/ingest.py`, `IngestStage.process`): source records ->
//! canonical items, each in the envelope of its customer's partition (`streams/app/envelope.py`'s
//! `EnvelopeBuilder`: the same partitioner, order and size limit).
//!
//! `Ingest.run(records, start)` takes the records from `start` on, in order, as long as the core can
//! finish them alone: a plain record (`decode`) of a known customer, or an anonymous one to count.
//! At the first record it cannot finish it stops and returns that record's index (and its
//! `FastEvent` when it decoded it): the Python path handles it (the models, the dead-letter topic,
//! an event of junk ids only), adds its item with `add`, and calls `run` again after it. A
//! customer's items stay in record order. An identity link (two usable ids) is finished here when
//! the stage gives its repeat check and its link batch (`IngestStage._repeat`, `LinkBatch.add`):
//! the link's value is `streams.app.identity_links.link_value`'s.

use std::collections::HashMap;

use pyo3::prelude::*;
use pyo3::intern;
use pyo3::types::{PyBytes, PyDict, PyList};

use crate::{decode, put_int, put_str, FastEvent};

/// Kafka's murmur2 (the Java client's `Utils.murmur2`; `streams.io.partitioning.murmur2`).
#[pyfunction]
pub fn murmur2(data: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    let len = data.len();
    let mut h: u32 = 0x9747_b28c ^ (len as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        if rest.len() == 3 {
            h ^= u32::from(rest[2]) << 16;
        }
        if rest.len() >= 2 {
            h ^= u32::from(rest[1]) << 8;
        }
        h = (h ^ u32::from(rest[0])).wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^ (h >> 15)
}

/// `streams.app.identity_links.link_value`: `{"link_id", "ids", "ts_ms", "source", "src": [topic, partition, offset]}`.
fn link_value(link_id: &str, ids: &[String], ts_ms: i64, source: &str, topic: &str, partition: i64, offset: i64) -> Vec<u8> {
    let mut buf = Vec::with_capacity(96 + ids.iter().map(String::len).sum::<usize>());
    buf.extend_from_slice(b"{\"link_id\":");
    put_str(&mut buf, link_id);
    buf.extend_from_slice(b",\"ids\":[");
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        put_str(&mut buf, id);
    }
    buf.extend_from_slice(b"],\"ts_ms\":");
    put_int(&mut buf, ts_ms);
    buf.extend_from_slice(b",\"source\":");
    put_str(&mut buf, source);
    buf.extend_from_slice(b",\"src\":[");
    put_str(&mut buf, topic);
    buf.push(b',');
    put_int(&mut buf, partition);
    buf.push(b',');
    put_int(&mut buf, offset);
    buf.extend_from_slice(b"]}");
    buf
}

fn partition_for(key: &[u8], partitions: u32) -> u32 {
    (murmur2(key) & 0x7fff_ffff) % partitions
}

/// An id value that identifies nobody (`schemas.ids.is_junk`), with the placeholder values given.
fn is_junk(value: &str, words: &[String]) -> bool {
    let v = value.trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n'));
    let Some(first) = v.chars().next() else { return true };
    if v.is_ascii() {
        let lower = v.to_ascii_lowercase();
        if words.iter().any(|w| *w == lower) {
            return true;
        }
    }
    v.chars().all(|c| c == first)
}

enum Key {
    Customer(String),
    Nobody,
    /// two usable ids or more, in the event's order (the first is the customer)
    Link(Vec<String>),
    /// only junk ids: the Python path (dead letter `junk_id`)
    Python,
}

#[pyclass(module = "tagstream_core")]
pub struct Ingest {
    partitions: u32,
    max_bytes: usize,
    identity: bool,
    latest_ms: i64,
    max_item: usize,
    sources: HashMap<String, String>,
    junk: Vec<String>,
    /// partition -> (envelope so far, starting with '[', and `EnvelopeBuilder`'s size count)
    open: HashMap<u32, (Vec<u8>, usize)>,
    order: Vec<u32>,
    closed: Vec<(u32, Vec<u8>)>,
    #[pyo3(get)]
    items: usize,
    events_in: HashMap<String, u64>,
    anonymous: HashMap<String, u64>,
    /// junk ids left out of events that had a usable id too (`identity_refused{reason="junk_id"}`)
    #[pyo3(get)]
    junk_refused: u64,
    /// the stage's repeat check and link batch (None: links go to the Python path)
    repeat: Option<PyObject>,
    add_link: Option<PyObject>,
}

impl Ingest {
    /// The customer key, as `IngestStage._identity_key` chooses it; and the junk ids left out.
    fn key(&self, ev: &FastEvent) -> (Key, u64) {
        if !self.identity {
            return (ev.customer_id.clone().map_or(Key::Nobody, Key::Customer), 0);
        }
        let mut usable: Vec<String> = Vec::with_capacity(ev.ids.len());
        let mut junk = 0;
        for (id_type, value) in &ev.ids {
            // contact hashes reach here in lower case only (the fast path's check): id_key's lower() is a no-op
            if is_junk(value, &self.junk) {
                junk += 1;
            } else {
                usable.push(format!("{id_type}:{value}"));
            }
        }
        match usable.len() {
            0 if junk > 0 => (Key::Python, 0),
            0 => (Key::Nobody, 0),
            1 => (Key::Customer(usable.pop().expect("one")), junk),
            _ => (Key::Link(usable), junk),
        }
    }

    fn push(&mut self, key: &[u8], item: &[u8]) {
        let p = partition_for(key, self.partitions);
        if !self.open.contains_key(&p) {
            self.order.push(p);
        }
        let max_bytes = self.max_bytes;
        let (buf, size) = self.open.entry(p).or_insert_with(|| (vec![b'['], 0));
        if *size > 0 && *size + item.len() + 1 > max_bytes {
            let mut full = std::mem::replace(buf, vec![b'[']);
            full.push(b']');
            self.closed.push((p, full));
            *size = 0;
        }
        if *size > 0 {
            buf.push(b',');
        }
        buf.extend_from_slice(item);
        *size += item.len() + 1;
        self.items += 1;
    }
}

#[pymethods]
impl Ingest {
    /// `latest_ms`: the newest event time accepted (now + the future tolerance); `max_item`: the
    /// largest item the internal topic takes; `junk`: `schemas.ids`' placeholder values (lower case).
    /// `repeat(ids, ts_ms) -> bool` and `add_link(value)`: the stage's repeat check and link batch,
    /// with identity resolution on (None: every link event goes to the Python path).
    #[new]
    #[pyo3(signature = (partitions, max_bytes, identity, latest_ms, max_item, sources, junk, repeat=None, add_link=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(partitions: u32, max_bytes: usize, identity: bool, latest_ms: i64, max_item: usize,
           sources: HashMap<String, String>, junk: &Bound<'_, PyAny>, repeat: Option<PyObject>,
           add_link: Option<PyObject>) -> PyResult<Self> {
        if partitions < 1 {
            return Err(pyo3::exceptions::PyValueError::new_err("partitions must be >= 1"));
        }
        let junk = junk.iter()?.map(|w| w?.extract::<String>()).collect::<PyResult<Vec<_>>>()?;
        Ok(Ingest {
            partitions, max_bytes, identity, latest_ms, max_item, sources, junk,
            open: HashMap::new(), order: Vec::new(), closed: Vec::new(), items: 0,
            events_in: HashMap::new(), anonymous: HashMap::new(), junk_refused: 0, repeat, add_link,
        })
    }

    /// Takes `records[start:]` until one needs the Python path: returns its index (`len(records)`:
    /// all done) and its `FastEvent` if the core decoded it.
    fn run(&mut self, py: Python<'_>, records: &Bound<'_, PyList>, start: usize) -> PyResult<(usize, Option<Py<FastEvent>>)> {
        let n = records.len();
        for i in start..n {
            let rec = records.get_item(i)?;
            let topic = rec.getattr(intern!(py, "topic"))?;
            let topic: &str = topic.extract()?;
            let source = self.sources.get(topic).map_or(topic, String::as_str).to_owned();
            if source == "identity" {
                return Ok((i, None));
            }
            let value = rec.getattr(intern!(py, "value"))?;
            let Ok(raw) = value.downcast::<PyBytes>() else { return Ok((i, None)) };
            let raw = raw.as_bytes();
            if raw.is_empty() {
                return Ok((i, None));
            }
            let seconds: f64 = rec.getattr(intern!(py, "timestamp"))?.extract()?;
            let src_ts_ms = (seconds * 1000.0) as i64; // int(msg.timestamp * 1000): truncated, as Python's int()
            let Some(ev) = decode(&source, raw, src_ts_ms) else { return Ok((i, None)) };
            if ev.ts_ms > self.latest_ms {
                return Ok((i, None)); // future_timestamp: the Python path says it
            }
            let (key, junk) = self.key(&ev);
            let (customer, link) = match key {
                Key::Python => return Ok((i, Some(Py::new(py, ev)?))),
                Key::Nobody => {
                    *self.anonymous.entry(source.clone()).or_insert(0) += 1;
                    *self.events_in.entry(source).or_insert(0) += 1;
                    continue;
                }
                Key::Customer(key) => (key, None),
                Key::Link(ids) => {
                    if self.repeat.is_none() || self.add_link.is_none() {
                        return Ok((i, Some(Py::new(py, ev)?)));
                    }
                    (ids[0].clone(), Some(ids))
                }
            };
            let partition: i64 = rec.getattr(intern!(py, "partition"))?.extract()?;
            let offset: i64 = rec.getattr(intern!(py, "offset"))?.extract()?;
            let item = ev.encode_item(Some(&customer), &format!("{source}:{partition}"), offset);
            if item.len() > self.max_item {
                return Ok((i, None)); // too_large: the Python path says it (nothing of this record done here)
            }
            if let (Some(ids), Some(repeat), Some(add_link)) = (link, &self.repeat, &self.add_link) {
                // IngestStage._repeat: a link already sent is not sent again (an error: the Python path's)
                let Ok(repeated) = repeat.call1(py, (ids.clone(), ev.ts_ms)).and_then(|r| r.is_truthy(py)) else {
                    return Ok((i, Some(Py::new(py, ev)?)));
                };
                if !repeated {
                    let link_id = format!("{source}:{}", ev.event_id);
                    let value = link_value(&link_id, &ids, ev.ts_ms, &source, topic, partition, offset);
                    add_link.call1(py, (PyBytes::new_bound(py, &value),))?;
                }
            }
            self.junk_refused += junk;
            self.push(customer.as_bytes(), &item);
            *self.events_in.entry(source).or_insert(0) += 1;
        }
        Ok((n, None))
    }

    /// An item the Python path made, for the customer `key`.
    fn add(&mut self, key: &[u8], item: &[u8]) {
        self.push(key, item);
    }

    /// (partition, value) of every envelope, in the order items were added per partition.
    fn records<'py>(&self, py: Python<'py>) -> Vec<(u32, Bound<'py, PyBytes>)> {
        let mut out: Vec<(u32, Bound<'py, PyBytes>)> =
            self.closed.iter().map(|(p, v)| (*p, PyBytes::new_bound(py, v))).collect();
        for p in &self.order {
            let (buf, _) = &self.open[p];
            let mut v = Vec::with_capacity(buf.len() + 1);
            v.extend_from_slice(buf);
            v.push(b']');
            out.push((*p, PyBytes::new_bound(py, &v)));
        }
        out
    }

    /// Per source: the events the core took (`events_in`) and how many of them were anonymous.
    fn counts<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyDict>, Bound<'py, PyDict>)> {
        let events_in = PyDict::new_bound(py);
        for (k, v) in &self.events_in {
            events_in.set_item(k, v)?;
        }
        let anonymous = PyDict::new_bound(py);
        for (k, v) in &self.anonymous {
            anonymous.set_item(k, v)?;
        }
        Ok((events_in, anonymous))
    }
}
