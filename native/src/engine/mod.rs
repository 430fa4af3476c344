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

use crate::expr::eval::{remap, Node};
use crate::expr::value::EV;
use crate::expr::{ev_to_py, node_of};
use crate::features::feature::Feature;
use crate::features::num::{Unsupported, R};
use crate::value::{get, parse, BV};
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

/// A canonical event parsed from its JSON bytes.
struct JsonEvent<'a> {
    obj: Vec<(std::borrow::Cow<'a, str>, BV<'a>)>,
    event_id: String,
    source: String,
    ts_ms: i64,
}

impl<'a> JsonEvent<'a> {
    fn parse(raw: &'a [u8]) -> R<JsonEvent<'a>> {
        let Some(BV::Obj(obj)) = parse(raw) else { return Err(Unsupported("an event that is not a JSON object")) };
        let Some(BV::Str(event_id)) = get(&obj, "event_id") else { return Err(Unsupported("an event without event_id")) };
        let Some(BV::Str(source)) = get(&obj, "source") else { return Err(Unsupported("an event without source")) };
        let Some(BV::Int(ts_ms)) = get(&obj, "ts_ms") else { return Err(Unsupported("an event without ts_ms")) };
        let (event_id, source, ts_ms) = (event_id.to_string(), source.to_string(), *ts_ms);
        Ok(JsonEvent { obj, event_id, source, ts_ms })
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
    fn field(&self, name: &str) -> R<Option<EV>> {
        get(&self.obj, name).map(ev_of_bv).transpose()
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
        let mut features = Vec::new();
        let mut by_key = HashMap::new();
        let mut filter_texts: HashMap<String, usize> = HashMap::new();
        for f in item(spec, "features")?.downcast::<PyList>()?.iter() {
            let f = f.downcast::<PyDict>()?;
            let key: String = item(f, "key")?.extract()?;
            let feature = Feature::new(&item(f, "agg")?.extract::<String>()?, item(f, "window_ms")?.extract()?,
                                       item(f, "resolution_ms")?.extract()?, &[])?
                .with_thresholds_ms(item(f, "thresholds_ms")?.extract()?);
            let filter = match item(f, "where")? {
                w if w.is_none() => None,
                w => Some(tree(&w)?),
            };
            let since = match item(f, "since")? {
                s if s.is_none() => None,
                s => {
                    let (thresholds, always, if_held, if_not_held) = s.extract()?;
                    Some(SincePlan { thresholds, always, if_held, if_not_held })
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
            by_key.insert(key.clone(), features.len());
            features.push(FeatureSpec {
                key,
                feature,
                field: item(f, "field")?.extract()?,
                sources: item(f, "sources")?.extract()?,
                filter,
                filter_slot,
                names: fnames.iter().map(|n| name_index(n)).collect::<PyResult<_>>()?,
                since,
            });
        }
        let mut tags = Vec::new();
        for t in item(spec, "tags")?.downcast::<PyList>()?.iter() {
            let t = t.downcast::<PyDict>()?;
            let (mut when, slots) = tree(&item(t, "when")?)?;
            let slots: Vec<usize> = slots.iter().map(|n| name_index(n)).collect::<PyResult<_>>()?;
            remap(&mut when, &slots);
            let tfeatures: Vec<String> = item(t, "features")?.extract()?;
            tags.push(TagSpec {
                name: item(t, "name")?.extract()?,
                when,
                true_when_blank: false,
                slots,
                features: tfeatures.iter().map(|n| name_index(n)).collect::<PyResult<_>>()?,
            });
        }
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
            tags,
            filter_slots: filter_texts.len(),
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
        let ev = JsonEvent::parse(event)?;
        let customer_id = match get(&ev.obj, "customer_id") {
            Some(BV::Str(c)) => c.to_string(),
            _ => return Err(Unsupported("an event without customer_id").into()),
        };
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
            let ev = JsonEvent::parse(raw)?;
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
