//! A customer's state natively: `streams/engine/features/state.py`'s `CustomerState`, read from and
//! written to the same changelog bytes (`CustomerState.dumps`: orjson, keys in insertion order).

use super::change::blake2b;
use super::spec::Spec;
use crate::features::agg::Acc;
use crate::features::feature::Data;
use crate::features::num::{Unsupported, Val, R};
use crate::value::{parse, BV};

pub const SEEN_ENTRY: usize = 12;

#[derive(Clone, Debug, Default)]
pub struct State {
    /// feature data by the engine's feature index; `order` is the dict's insertion order
    pub data: Vec<Option<Data>>,
    pub order: Vec<usize>,
    /// held tags, in insertion order: (name, since_ms)
    pub tags: Vec<(String, i64)>,
    pub version: String,
    pub due_ms: Option<i64>,
    pub seen: Vec<u8>,
    pub merges: Vec<String>,
    pub expires_ms: Option<i64>,
    /// Not encoded: every name's value at the last evaluation of the tags (None: not evaluated since
    /// loaded). Each tag then holds exactly when its condition held on these values, so a tag none
    /// of whose features moved since keeps its outcome and is not evaluated again.
    pub last: Option<Vec<crate::expr::value::EV>>,
    /// `last` is the blank values of a new customer, whose tags were never evaluated: the tags
    /// true when blank must be (they are not held yet)
    pub last_blank: bool,
    /// Not encoded, valid with `last`: each feature's next change as of the last evaluation (None:
    /// never, or no data). A windowed feature not fed since keeps its value (and has nothing to
    /// prune) until then.
    pub next: Vec<Option<i64>>,
    /// Not encoded: per tag of the rules (rule order), whether `tags` holds it
    pub held: Vec<bool>,
    /// `tags` holds a tag the rules do not have (read from an older state): the next evaluation
    /// drops it
    pub foreign: bool,
}

impl State {
    /// A new customer's state.
    pub fn new(spec: &Spec) -> State {
        State { data: vec![None; spec.features.len()], last: Some(spec.blank.clone()), last_blank: true,
                next: vec![None; spec.features.len()], held: vec![false; spec.tags.len()], ..State::default() }
    }

    fn empty(spec: &Spec) -> State {
        State { data: vec![None; spec.features.len()], next: vec![None; spec.features.len()],
                held: vec![false; spec.tags.len()], ..State::default() }
    }

    pub fn get(&self, i: usize) -> Option<&Data> {
        self.data[i].as_ref()
    }

    pub fn put(&mut self, i: usize, d: Data) {
        if self.data[i].is_none() {
            self.order.push(i);
        }
        self.data[i] = Some(d);
    }

    /// `CustomerState.seen_before`: remembers `event_id` (at most `max_ids`, for `horizon_ms`);
    /// true when it was already seen within the horizon. Entries are `SEEN_ENTRY` bytes: an 8-byte
    /// blake2b fingerprint and the second it was processed (big-endian), oldest first.
    pub fn seen_before(&mut self, event_id: &str, now_ms: i64, horizon_ms: i64, max_ids: i64) -> bool {
        let log = &mut self.seen;
        let horizon_start_s = (now_ms - horizon_ms).div_euclid(1000);
        let keep_bytes = (max_ids - 1) * SEEN_ENTRY as i64;
        let mut drop = 0usize;
        while drop < log.len() {
            let at = u32::from_be_bytes(log[drop + 8..drop + 12].try_into().expect("4 bytes")) as i64;
            if (log.len() - drop) as i64 > keep_bytes || at <= horizon_start_s {
                drop += SEEN_ENTRY;
            } else {
                break;
            }
        }
        log.drain(..drop);
        let fp: [u8; 8] = blake2b(&[event_id.as_bytes()]);
        if log.chunks_exact(SEEN_ENTRY).any(|e| e[..8] == fp[..]) {
            return true;
        }
        log.extend_from_slice(&fp);
        log.extend_from_slice(&(now_ms.div_euclid(1000) as u32).to_be_bytes());
        false
    }

    pub fn loads(spec: &Spec, raw: &[u8]) -> R<State> {
        let Some(BV::Obj(obj)) = parse(raw) else { return Err(Unsupported("a state that is not a JSON object")) };
        let mut st = State::empty(spec);
        for (k, v) in &obj {
            match (k.as_ref(), v) {
                ("f", BV::Obj(feats)) => {
                    for (key, d) in feats {
                        let Some(&i) = spec.by_key.get(key.as_ref()) else {
                            return Err(Unsupported("a state with a feature of other rules"));
                        };
                        let data = data_of(spec, i, d)?;
                        st.put(i, data);
                    }
                }
                ("t", BV::Obj(tags)) => {
                    for (name, since) in tags {
                        let BV::Int(since) = since else { return Err(Unsupported("a tag's since that is not an integer")) };
                        match spec.tag_index.get(name.as_ref()) {
                            Some(&j) => st.held[j] = true,
                            None => st.foreign = true,
                        }
                        st.tags.push((name.to_string(), *since));
                    }
                }
                ("v", BV::Str(s)) => st.version = s.to_string(),
                ("d", BV::Int(d)) => st.due_ms = Some(*d),
                ("d", BV::Null) => {}
                ("s", BV::Str(s)) => st.seen = b64_decode(s.as_bytes())?,
                ("g", BV::Arr(ms)) => {
                    for m in ms {
                        let BV::Str(m) = m else { return Err(Unsupported("a merge id that is not a string")) };
                        st.merges.push(m.to_string());
                    }
                }
                ("e", BV::Int(e)) => st.expires_ms = Some(*e),
                ("e", BV::Null) => {}
                ("r" | "b" | "m", BV::Obj(o)) if o.is_empty() => {}
                ("r" | "b" | "m", BV::Null) => {}
                ("f" | "t", BV::Null) => {}
                _ => return Err(Unsupported("a state with cooldowns, a backfill or a move (the Python engine's)")),
            }
        }
        Ok(st)
    }

    /// `CustomerState.dumps()`'s bytes.
    pub fn dumps(&self, spec: &Spec) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(b"{\"f\":{");
        for (n, &i) in self.order.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            put_str(&mut out, &spec.features[i].key);
            out.push(b':');
            put_data(&mut out, self.data[i].as_ref().expect("ordered data exists"));
        }
        out.extend_from_slice(b"},\"t\":{");
        for (n, (name, since)) in self.tags.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            put_str(&mut out, name);
            out.push(b':');
            put_int(&mut out, *since);
        }
        out.extend_from_slice(b"},\"v\":");
        put_str(&mut out, &self.version);
        if let Some(d) = self.due_ms {
            out.extend_from_slice(b",\"d\":");
            put_int(&mut out, d);
        }
        if !self.seen.is_empty() {
            out.extend_from_slice(b",\"s\":\"");
            b64_encode(&self.seen, &mut out);
            out.push(b'"');
        }
        if !self.merges.is_empty() {
            out.extend_from_slice(b",\"g\":[");
            for (n, m) in self.merges.iter().enumerate() {
                if n > 0 {
                    out.push(b',');
                }
                put_str(&mut out, m);
            }
            out.push(b']');
        }
        if let Some(e) = self.expires_ms {
            out.extend_from_slice(b",\"e\":");
            put_int(&mut out, e);
        }
        out.push(b'}');
        out
    }
}

pub fn val_of_bv(v: &BV<'_>) -> R<Val> {
    Ok(match v {
        BV::Null => Val::Null,
        BV::Bool(b) => Val::Bool(*b),
        BV::Int(i) => Val::Int(*i),
        BV::Float(f) => Val::Float(*f),
        BV::Str(s) => Val::Str(s.to_string()),
        BV::Big => return Err(Unsupported("an integer past 64 bits")),
        BV::Arr(_) | BV::Obj(_) => return Err(Unsupported("a value that is not a JSON scalar")),
    })
}

fn acc_of_bv(paired: bool, v: &BV<'_>) -> R<Acc> {
    if paired {
        let BV::Arr(items) = v else { return Err(Unsupported("a pair accumulator that is not a pair")) };
        if items.len() != 2 {
            return Err(Unsupported("a pair accumulator that is not a pair"));
        }
        Ok(Acc::Pair(val_of_bv(&items[0])?, val_of_bv(&items[1])?))
    } else {
        Ok(Acc::One(val_of_bv(v)?))
    }
}

fn data_of(spec: &Spec, i: usize, v: &BV<'_>) -> R<Data> {
    let f = &spec.features[i].feature;
    if matches!(v, BV::Null) {
        return Err(Unsupported("a feature stored as null"));
    }
    if f.agg == crate::features::agg::Agg::DistinctCount {
        let BV::Obj(o) = v else { return Err(Unsupported("distinct data that is not an object")) };
        let mut keys = Vec::with_capacity(o.len());
        for (k, b) in o {
            let BV::Int(b) = b else { return Err(Unsupported("a distinct value's bucket that is not an integer")) };
            keys.push((k.to_string(), *b));
        }
        return Ok(Data::Keys(keys));
    }
    if f.windowed() {
        let BV::Obj(o) = v else { return Err(Unsupported("window data that is not an object")) };
        let mut buckets = Vec::with_capacity(o.len());
        for (k, a) in o {
            let b: i64 = k.parse().map_err(|_| Unsupported("a bucket key that is not an integer"))?;
            buckets.push((b, acc_of_bv(f.agg.paired(), a)?));
        }
        return Ok(Data::Buckets(buckets));
    }
    Ok(Data::Acc(acc_of_bv(f.agg.paired(), v)?))
}

pub fn put_str(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("a Vec");
}

/// An integer in decimal (itoa: `write!`'s formatting machinery was ~2 % of the core's time in
/// `dumps`, perf, session 42).
fn put_int(out: &mut Vec<u8>, i: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
}

pub fn put_val(out: &mut Vec<u8>, v: &Val) {
    match v {
        Val::Null => out.extend_from_slice(b"null"),
        Val::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Val::Int(i) => put_int(out, *i),
        Val::Float(f) => serde_json::to_writer(&mut *out, f).expect("a Vec"),
        Val::Str(s) => put_str(out, s),
    }
}

fn put_acc(out: &mut Vec<u8>, a: &Acc) {
    match a {
        Acc::One(v) => put_val(out, v),
        Acc::Pair(x, y) => {
            out.push(b'[');
            put_val(out, x);
            out.push(b',');
            put_val(out, y);
            out.push(b']');
        }
    }
}

fn put_data(out: &mut Vec<u8>, d: &Data) {
    match d {
        Data::None => out.extend_from_slice(b"null"),
        Data::Acc(a) => put_acc(out, a),
        Data::Buckets(b) => {
            out.push(b'{');
            for (n, (bucket, acc)) in b.iter().enumerate() {
                if n > 0 {
                    out.push(b',');
                }
                out.push(b'"');
                put_int(out, *bucket);
                out.extend_from_slice(b"\":");
                put_acc(out, acc);
            }
            out.push(b'}');
        }
        Data::Keys(k) => {
            out.push(b'{');
            for (n, (key, bucket)) in k.iter().enumerate() {
                if n > 0 {
                    out.push(b',');
                }
                put_str(out, key);
                out.push(b':');
                put_int(out, *bucket);
            }
            out.push(b'}');
        }
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn b64_encode(data: &[u8], out: &mut Vec<u8>) {
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        out.push(B64[(n >> 18) as usize & 63]);
        out.push(B64[(n >> 12) as usize & 63]);
        out.push(if chunk.len() > 1 { B64[(n >> 6) as usize & 63] } else { b'=' });
        out.push(if chunk.len() > 2 { B64[n as usize & 63] } else { b'=' });
    }
}

fn b64_decode(s: &[u8]) -> R<Vec<u8>> {
    let bad = Unsupported("a seen log that is not base64");
    if s.len() % 4 != 0 {
        return Err(bad);
    }
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    for chunk in s.chunks(4) {
        let mut n = 0u32;
        let mut pad = 0;
        for &c in chunk {
            let v = match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'+' => 62,
                b'/' => 63,
                b'=' => {
                    pad += 1;
                    0
                }
                _ => return Err(bad),
            };
            n = n << 6 | v as u32;
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad.min(2)]);
    }
    Ok(out)
}
