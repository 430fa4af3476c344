//! The tag engine in the Rust core (issue 9), in progress: not on the worker's path yet.
//!
//! `NativeEngine` runs a Python `TagEngine`'s rules (`streams/engine/native_engine.py` hands them
//! over and says which rule sets it cannot run) on native states (`NativeState`, read from and
//! written to the changelog's bytes) and canonical events as the internal topic carries them (JSON
//! bytes). tests/unit/test_native_engine.py holds it to the Python engine: the same changes (and
//! `change_id`s), late and duplicate flags, and state bytes, event after event and due time after
//! due time. What it cannot do exactly as Python does raises `NotImplementedError`.

pub mod run;
pub mod spec;
pub mod state;

use crate::expr::eval::{optimize, remap, Node};
use crate::expr::value::EV;
use crate::expr::{ev_to_py, node_of};
use crate::features::feature::Feature;
use crate::features::num::{Unsupported, R};
use crate::value::BV;
use spec::Spec as EngineSpec;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use run::{Engine, EventView};
use spec::{FeatureSpec, SincePlan, Spec, TagSpec};
use state::State;
use std::collections::HashMap;
use std::rc::Rc;

fn ev_of_bv(v: &BV<'_>) -> R<EV> {
    Ok(match v {
        BV::Null => EV::None,
        BV::Bool(b) => EV::Bool(*b),
        BV::Int(i) => EV::Int(*i),
        BV::Float(f) => EV::Float(*f),
        BV::Str(s) => EV::Str(Rc::from(s.as_ref())),
        BV::Arr(items) => EV::List(Rc::new(items.iter().map(ev_of_bv).collect::<R<Vec<_>>>()?)),
        BV::Big => return Err(Unsupported("an integer past 64 bits")),
        BV::Obj(_) => return Err(Unsupported("an object where a rule reads a value")),
    })
}

/// A canonical event parsed from its JSON bytes: only the fields the engine reads are kept (the
/// others are skipped by the parser), each in its slot of `Spec.event_fields`.
struct JsonEvent<'a> {
    fields: Vec<Option<BV<'a>>>,
    customer_id: Option<String>,
    event_id: String,
    source: String,
    ts_ms: i64,
}

struct EventSeed<'s> {
    spec: &'s EngineSpec,
}

struct Parsed<'a> {
    fields: Vec<Option<BV<'a>>>,
    customer_id: Option<String>,
    event_id: Option<String>,
    source: Option<String>,
    ts_ms: Option<i64>,
}

impl<'de> serde::de::DeserializeSeed<'de> for EventSeed<'_> {
    type Value = Parsed<'de>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Parsed<'de>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for EventSeed<'_> {
    type Value = Parsed<'de>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a canonical event")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Parsed<'de>, A::Error> {
        let mut out = Parsed { fields: Vec::new(), customer_id: None, event_id: None, source: None, ts_ms: None };
        out.fields.resize_with(self.spec.event_fields.len(), || None);
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let slot = self.spec.event_slot.get(key.as_ref()).copied();
            match key.as_ref() {
                "event_id" => out.event_id = Some(map.next_value::<String>()?),
                "ts_ms" => out.ts_ms = Some(map.next_value::<i64>()?),
                "customer_id" => out.customer_id = map.next_value::<Option<String>>()?,
                _ if slot.is_some() => {
                    let v: BV<'de> = map.next_value()?;
                    if key == "source" {
                        if let BV::Str(s) = &v {
                            out.source = Some(s.to_string());
                        }
                    }
                    out.fields[slot.expect("a slot")] = Some(v); // a key given twice: the last one counts
                }
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(out)
    }
}

impl<'a> JsonEvent<'a> {
    fn parse(raw: &'a [u8], spec: &EngineSpec) -> R<JsonEvent<'a>> {
        use serde::de::DeserializeSeed;
        let mut de = serde_json::Deserializer::from_slice(raw);
        let parsed = EventSeed { spec }.deserialize(&mut de).map_err(|_| Unsupported("an event that is not a canonical event"))?;
        de.end().map_err(|_| Unsupported("an event that is not a canonical event"))?;
        Ok(JsonEvent {
            fields: parsed.fields,
            customer_id: parsed.customer_id,
            event_id: parsed.event_id.ok_or(Unsupported("an event without event_id"))?,
            source: parsed.source.ok_or(Unsupported("an event without source"))?,
            ts_ms: parsed.ts_ms.ok_or(Unsupported("an event without ts_ms"))?,
        })
    }
}

impl EventView for JsonEvent<'_> {
    fn event_id(&self) -> &str {
        &self.event_id
    }
    fn source(&self) -> &str {
        &self.source
    }
    fn ts_ms(&self) -> i64 {
        self.ts_ms
    }
    fn field(&self, slot: usize) -> R<Option<EV>> {
        self.fields[slot].as_ref().map(ev_of_bv).transpose()
    }
    fn values_of(&self, slot: usize, every: bool) -> R<Vec<crate::features::num::Val>> {
        match &self.fields[slot] {
            None | Some(BV::Null) => Ok(Vec::new()),
            Some(BV::Arr(items)) if every => items.iter().map(state::val_of_bv).collect(),
            Some(BV::Arr(items)) => items.first().map(state::val_of_bv).transpose().map(|v| v.into_iter().collect()),
            Some(v) => Ok(vec![state::val_of_bv(v)?]),
        }
    }
}

#[pyclass(module = "tagstream_core", unsendable)]
pub struct NativeState {
    st: State,
}

#[pyclass(module = "tagstream_core", unsendable)]
pub struct NativeEngine {
    engine: Engine,
}

fn item<'py>(d: &Bound<'py, PyDict>, key: &str) -> PyResult<Bound<'py, PyAny>> {
    d.get_item(key)?.ok_or_else(|| pyo3::exceptions::PyKeyError::new_err(key.to_string()))
}

/// The slot of event field `name` (added when new).
fn slot_of(fields: &mut Vec<String>, slots: &mut HashMap<String, usize>, name: &str) -> usize {
    *slots.entry(name.to_string()).or_insert_with(|| {
        fields.push(name.to_string());
        fields.len() - 1
    })
}

fn tree(o: &Bound<'_, PyAny>) -> PyResult<(Node, Vec<String>)> {
    let mut names = Vec::new();
    let node = node_of(o, &mut names)?;
    Ok((node, names))
}

impl NativeEngine {
    fn changes_to_py(&self, py: Python<'_>, customer_id: &str, changes: &[run::Change]) -> PyResult<PyObject> {
        let out = PyList::empty_bound(py);
        let spec = &self.engine.spec;
        for c in changes {
            let d = PyDict::new_bound(py);
            d.set_item("customer_id", customer_id)?;
            d.set_item("tag", &c.tag)?;
            d.set_item("op", if c.add { "add" } else { "remove" })?;
            d.set_item("at_ms", c.at_ms)?;
            d.set_item("event_ts_ms", c.event.as_ref().map(|e| e.1))?;
            d.set_item("cause", c.cause.as_str())?;
            d.set_item("rule_version", &spec.version)?;
            let feats = PyDict::new_bound(py);
            for (n, v) in &c.features {
                feats.set_item(&spec.names[*n], ev_to_py(py, v))?;
            }
            d.set_item("features", feats)?;
            d.set_item("event_id", c.event.as_ref().map(|e| e.0.as_str()))?;
            d.set_item("change_id", &c.change_id)?;
            out.append(d)?;
        }
        Ok(out.into_py(py))
    }
}

#[pymethods]
impl NativeEngine {
    /// From the spec `streams/engine/native_engine.py` builds out of a Python `TagEngine`.
    #[new]
    fn new(spec: &Bound<'_, PyDict>) -> PyResult<Self> {
        let names: Vec<String> = item(spec, "names")?.extract()?;
        let name_index = |n: &str| -> PyResult<usize> {
            names.iter().position(|x| x == n).ok_or_else(|| Unsupported("a tag reads a name no feature has").into())
        };
        let mut raw_features = Vec::new();
        let mut by_key = HashMap::new();
        let mut filter_texts: HashMap<String, usize> = HashMap::new();
        let mut event_fields: Vec<String> = Vec::new();
        let mut event_slot: HashMap<String, usize> = HashMap::new();
        slot_of(&mut event_fields, &mut event_slot, "type");
        slot_of(&mut event_fields, &mut event_slot, "source");
        for f in item(spec, "features")?.downcast::<PyList>()?.iter() {
            let f = f.downcast::<PyDict>()?;
            let key: String = item(f, "key")?.extract()?;
            let feature = Feature::new(&item(f, "agg")?.extract::<String>()?, item(f, "window_ms")?.extract()?,
                                       item(f, "resolution_ms")?.extract()?, &[])?
                .with_thresholds_ms(item(f, "thresholds_ms")?.extract()?);
            let filter = match item(f, "where")? {
                w if w.is_none() => None,
                w => {
                    let (node, fnames) = tree(&w)?;
                    Some((optimize(node), fnames.iter().map(|n| slot_of(&mut event_fields, &mut event_slot, n)).collect()))
                }
            };
            let field: Option<String> = item(f, "field")?.extract()?;
            let field_slot = field.as_deref().map(|n| slot_of(&mut event_fields, &mut event_slot, n));
            let since = match item(f, "since")? {
                s if s.is_none() => None,
                s => {
                    let (thresholds, always, if_held, if_not_held): (Vec<i64>, Vec<bool>, Vec<Vec<String>>, Vec<Vec<String>>) =
                        s.extract()?;
                    Some((thresholds, always, if_held, if_not_held))
                }
            };
            let filter_slot = match &filter {
                None => None,
                Some(_) => {
                    let text: String = item(f, "filter_key")?.extract()?;
                    let n = filter_texts.len();
                    Some(*filter_texts.entry(text).or_insert(n))
                }
            };
            let fnames: Vec<String> = item(f, "names")?.extract()?;
            by_key.insert(key.clone(), raw_features.len());
            raw_features.push((FeatureSpec {
                key,
                feature,
                field_slot,
                sources: item(f, "sources")?.extract()?,
                filter,
                filter_slot,
                names: fnames.iter().map(|n| name_index(n)).collect::<PyResult<_>>()?,
                since: None,
            }, since));
        }
        let mut tags = Vec::new();
        for t in item(spec, "tags")?.downcast::<PyList>()?.iter() {
            let t = t.downcast::<PyDict>()?;
            let (mut when, slots) = tree(&item(t, "when")?)?;
            let slots: Vec<usize> = slots.iter().map(|n| name_index(n)).collect::<PyResult<_>>()?;
            remap(&mut when, &slots);
            let when = optimize(when);
            let tfeatures: Vec<String> = item(t, "features")?.extract()?;
            tags.push(TagSpec {
                name: item(t, "name")?.extract()?,
                when,
                true_when_blank: false,
                slots,
                features: tfeatures.iter().map(|n| name_index(n)).collect::<PyResult<_>>()?,
            });
        }
        let tag_index: HashMap<String, usize> = tags.iter().enumerate().map(|(j, t)| (t.name.clone(), j)).collect();
        let indexes = |names: Vec<Vec<String>>| -> PyResult<Vec<Vec<usize>>> {
            names
                .into_iter()
                .map(|ns| {
                    ns.iter()
                        .map(|n| {
                            tag_index.get(n).copied().ok_or_else(|| Unsupported("a time-since plan names a tag the rules do not have").into())
                        })
                        .collect()
                })
                .collect()
        };
        let features: Vec<FeatureSpec> = raw_features
            .into_iter()
            .map(|(mut f, plan)| {
                if let Some((thresholds, always, if_held, if_not_held)) = plan {
                    f.since = Some(SincePlan { thresholds, always, if_held: indexes(if_held)?, if_not_held: indexes(if_not_held)? });
                }
                Ok(f)
            })
            .collect::<PyResult<_>>()?;
        let mut blank = vec![EV::None; names.len()];
        for f in &features {
            let v = f.feature.value(&crate::features::feature::Data::None, 0)?;
            for &n in &f.names {
                blank[n] = run::ev_of_val(&v);
            }
        }
        for t in tags.iter_mut() {
            t.true_when_blank = crate::expr::eval::eval(&t.when, &blank)?.truthy();
        }
        let mut tags_of_name = vec![Vec::new(); names.len()];
        for (j, t) in tags.iter().enumerate() {
            for &n in &t.slots {
                if !tags_of_name[n].contains(&j) {
                    tags_of_name[n].push(j);
                }
            }
        }
        let spec = Spec {
            version: item(spec, "version")?.extract()?,
            lateness_ms: item(spec, "allowed_lateness_ms")?.extract()?,
            dedup_horizon_ms: item(spec, "dedup_horizon_ms")?.extract()?,
            dedup_max_ids: item(spec, "dedup_max_ids")?.extract()?,
            features,
            by_key,
            names,
            tag_names: tags.iter().map(|t| t.name.clone()).collect(),
            tag_index,
            tags,
            filter_slots: filter_texts.len(),
            event_fields,
            event_slot,
            tags_of_name,
            blank,
        };
        Ok(NativeEngine { engine: Engine::new(spec) })
    }

    /// A state from its changelog bytes (None: a new customer's).
    #[pyo3(signature = (raw=None))]
    fn state(&self, raw: Option<&[u8]>) -> PyResult<NativeState> {
        Ok(NativeState {
            st: match raw {
                Some(raw) => State::loads(&self.engine.spec, raw)?,
                None => State::new(&self.engine.spec),
            },
        })
    }

    /// The state's changelog bytes (`CustomerState.dumps()`).
    fn dumps<'py>(&self, py: Python<'py>, state: &NativeState) -> Bound<'py, PyBytes> {
        PyBytes::new_bound(py, &state.st.dumps(&self.engine.spec))
    }

    /// `TagEngine.process_event` for an event as JSON bytes: (changes, late, duplicate).
    fn process_event(&self, py: Python<'_>, state: &mut NativeState, event: &[u8], now_ms: i64)
                     -> PyResult<(PyObject, bool, bool)> {
        let ev = JsonEvent::parse(event, &self.engine.spec)?;
        let customer_id = ev.customer_id.clone().ok_or(Unsupported("an event without customer_id"))?;
        let out = self.engine.process_event(&mut state.st, &customer_id, &ev, now_ms)?;
        Ok((self.changes_to_py(py, &customer_id, &out.changes)?, out.late, out.duplicate))
    }

    /// `TagEngine.catch_up`: the due times up to `now_ms`.
    fn catch_up(&self, py: Python<'_>, state: &mut NativeState, customer_id: &str, now_ms: i64) -> PyResult<PyObject> {
        let changes = self.engine.catch_up(&mut state.st, customer_id, now_ms)?;
        self.changes_to_py(py, customer_id, &changes)
    }

    /// Benchmarks (benchmarks/engine_only.py --native): folds `(customer_id, event JSON, now_ms)`
    /// items into fresh states kept here, with no Python object per event; returns the number of
    /// tag changes. The engine's own cost, without the per-call crossing.
    fn run_fresh(&self, items: &Bound<'_, PyList>) -> PyResult<usize> {
        let items: Vec<(String, Vec<u8>, i64)> = items
            .iter()
            .map(|t| {
                let (cid, raw, now): (String, Bound<'_, PyBytes>, i64) = t.extract()?;
                Ok((cid, raw.as_bytes().to_vec(), now))
            })
            .collect::<PyResult<_>>()?;
        let mut states: HashMap<String, State> = HashMap::new();
        let mut n = 0;
        for (cid, raw, now_ms) in &items {
            let ev = JsonEvent::parse(raw, &self.engine.spec)?;
            let st = states.entry(cid.clone()).or_insert_with(|| State::new(&self.engine.spec));
            n += self.engine.process_event(st, cid, &ev, *now_ms)?.changes.len();
        }
        Ok(n)
    }

    #[getter]
    fn version(&self) -> String {
        self.engine.spec.version.clone()
    }
}

#[pymethods]
impl NativeState {
    #[getter]
    fn due_ms(&self) -> Option<i64> {
        self.st.due_ms
    }
}
