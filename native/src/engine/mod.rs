//! The tag engine in the Rust core (issue 9): the customer stage folds a customer's batch with it
//! where it can (`streams/app/customer_core.py`), the Python engine where it cannot.
//!
//! `NativeEngine` runs a Python `TagEngine`'s rules (`streams/engine/native_engine.py` hands them
//! over and says which rule sets it cannot run) on native states (`NativeState`, read from and
//! written to the changelog's bytes) and canonical events as the internal topic carries them (JSON
//! bytes). tests/unit/test_native_engine.py holds it to the Python engine: the same changes (and
//! `change_id`s), late and duplicate flags, and state bytes, event after event and due time after
//! due time. What it cannot do exactly as Python does raises `NotImplementedError`.

pub mod change;
pub mod envelope;
pub mod event;
pub mod plans;
pub mod run;
pub mod spec;
pub mod spec_py;
pub mod state;

use crate::expr::ev_to_py;
use crate::features::num::Unsupported;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::intern;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};
use event::JsonEvent;
use run::{Engine, EventView};
use state::State;
use spec::Spec;
use std::collections::HashMap;
use std::rc::Rc;

/// A customer's state for one engine's rules: what the customers table holds on the native path.
/// It keeps the engine's spec, which it is written with (`dumps`) and which an engine checks before
/// it folds into it (a state of an engine since replaced goes to the Python engine, which upgrades it).
#[pyclass(module = "tagstream_core", unsendable)]
pub struct NativeState {
    st: State,
    spec: Rc<Spec>,
}

#[pyclass(module = "tagstream_core", unsendable)]
pub struct NativeEngine {
    engine: Engine,
    /// The names' and the rule version's Python strings, made once: a change's dict takes them as
    /// keys and values (a new string per key per change was most of `change_to_py`).
    names_py: Vec<Py<PyString>>,
    version_py: Py<PyString>,
}

impl NativeEngine {
    fn own<'s>(&self, state: &'s mut NativeState) -> PyResult<&'s mut State> {
        if !Rc::ptr_eq(&state.spec, &self.engine.spec) {
            return Err(Unsupported("a state of another engine's rules").into());
        }
        Ok(&mut state.st)
    }

    fn changes_to_py(&self, py: Python<'_>, customer_id: &str, changes: &[change::Change]) -> PyResult<PyObject> {
        let out = PyList::empty_bound(py);
        for c in changes {
            out.append(self.change_to_py(py, customer_id, c)?)?;
        }
        Ok(out.into_py(py))
    }

    /// A change as the Python engine's `Change` dict.
    fn change_to_py<'py>(&self, py: Python<'py>, customer_id: &str, c: &change::Change) -> PyResult<Bound<'py, PyDict>> {
        {
            let d = PyDict::new_bound(py);
            d.set_item(intern!(py, "customer_id"), customer_id)?;
            d.set_item(intern!(py, "tag"), &c.tag)?;
            d.set_item(intern!(py, "op"), if c.add { intern!(py, "add") } else { intern!(py, "remove") })?;
            d.set_item(intern!(py, "at_ms"), c.at_ms)?;
            d.set_item(intern!(py, "event_ts_ms"), c.event.as_ref().map(|e| e.1))?;
            let cause = match c.cause {
                change::Cause::Event => intern!(py, "event"),
                change::Cause::Expiry => intern!(py, "expiry"),
                change::Cause::RuleChange => intern!(py, "rule_change"),
            };
            d.set_item(intern!(py, "cause"), cause)?;
            d.set_item(intern!(py, "rule_version"), self.version_py.bind(py))?;
            let feats = PyDict::new_bound(py);
            for (n, v) in &c.features {
                feats.set_item(self.names_py[*n].bind(py), ev_to_py(py, v))?;
            }
            d.set_item(intern!(py, "features"), feats)?;
            d.set_item(intern!(py, "event_id"), c.event.as_ref().map(|e| e.0.as_str()))?;
            d.set_item(intern!(py, "change_id"), &c.change_id)?;
            Ok(d)
        }
    }
}

#[pymethods]
impl NativeEngine {
    /// From the spec `streams/engine/native_engine.py` builds out of a Python `TagEngine`.
    #[new]
    fn new(spec: &Bound<'_, PyDict>) -> PyResult<Self> {
        let py = spec.py();
        let engine = Engine::new(spec_py::spec_from_py(spec)?);
        let names_py = engine.spec.names.iter().map(|n| PyString::intern_bound(py, n).unbind()).collect();
        let version_py = PyString::new_bound(py, &engine.spec.version).unbind();
        Ok(NativeEngine { engine, names_py, version_py })
    }

    /// A state from its changelog bytes (None: a new customer's).
    #[pyo3(signature = (raw=None))]
    fn state(&self, raw: Option<&[u8]>) -> PyResult<NativeState> {
        Ok(NativeState {
            st: match raw {
                Some(raw) => State::loads(&self.engine.spec, raw)?,
                None => State::new(&self.engine.spec),
            },
            spec: self.engine.spec.clone(),
        })
    }

    /// The state's changelog bytes (`CustomerState.dumps()`).
    fn dumps<'py>(&self, py: Python<'py>, state: &NativeState) -> Bound<'py, PyBytes> {
        state.dumps(py)
    }

    /// Whether `state` was made for this engine (its rules, its feature layout).
    fn owns(&self, state: &NativeState) -> bool {
        Rc::ptr_eq(&state.spec, &self.engine.spec)
    }

    /// `TagEngine.process_event` for an event as JSON bytes: (changes, late, duplicate).
    fn process_event(&self, py: Python<'_>, state: &mut NativeState, event: &[u8], now_ms: i64)
                     -> PyResult<(PyObject, bool, bool)> {
        let ev = JsonEvent::parse(event, &self.engine.spec)?;
        let customer_id = ev.customer_id.as_deref().map(str::to_owned).ok_or(Unsupported("an event without customer_id"))?;
        let st = self.own(state)?;
        let out = self.engine.process_event(st, &customer_id, &ev, now_ms)?;
        Ok((self.changes_to_py(py, &customer_id, &out.changes)?, out.late, out.duplicate))
    }

    /// A customer-topic record's items, in order: (customer key, item bytes, plain event). A plain
    /// event carries no tick, re-evaluation, backfill replay, forward or identity order: it can go
    /// to `fold_events` as it is. ValueError when the record is not an envelope (`decode_envelope`).
    #[staticmethod]
    fn split<'py>(py: Python<'py>, value: &[u8]) -> PyResult<Vec<(Bound<'py, PyBytes>, Bound<'py, PyBytes>, bool)>> {
        let items = envelope::split(value).map_err(PyValueError::new_err)?;
        Ok(items
            .iter()
            .map(|i| (PyBytes::new_bound(py, i.customer_id.as_bytes()), PyBytes::new_bound(py, i.raw), i.plain))
            .collect())
    }

    /// One customer's plain events of a batch (`split`'s bytes), folded in order at `now_ms`:
    /// ([(change, the source record's timestamp for an event's change, else None)],
    /// [(source, events, duplicates, late)]). NotImplementedError part way: `state` is half-folded.
    /// `evaluate=False`: `TagEngine.fold_only` (no tag evaluated: an anonymous visitor's).
    #[pyo3(signature = (state, items, now_ms, evaluate=true))]
    fn fold_events(&self, py: Python<'_>, state: &mut NativeState, items: &Bound<'_, PyList>, now_ms: i64,
                   evaluate: bool) -> PyResult<(PyObject, PyObject)> {
        let st = self.own(state)?;
        let changes = PyList::empty_bound(py);
        let mut counts: Vec<(String, usize, usize, usize)> = Vec::new();
        for item in items.iter() {
            let raw = item.downcast::<PyBytes>()?;
            let ev = JsonEvent::parse(raw.as_bytes(), &self.engine.spec)?;
            let customer_id = ev.customer_id.as_deref().ok_or(Unsupported("an event without customer_id"))?;
            let out = if evaluate {
                self.engine.process_event(st, customer_id, &ev, now_ms)?
            } else {
                self.engine.fold_only(st, &ev, now_ms)?
            };
            let source = ev.source();
            let i = match counts.iter().position(|c| c.0 == source) {
                Some(i) => i,
                None => {
                    counts.push((source.to_string(), 0, 0, 0));
                    counts.len() - 1
                }
            };
            counts[i].1 += 1;
            counts[i].2 += out.duplicate as usize;
            counts[i].3 += out.late as usize;
            for c in &out.changes {
                let ts = match c.cause {
                    change::Cause::Event => Some(ev.src_ts_ms.ok_or(Unsupported("an event without src_ts_ms"))?),
                    _ => None,
                };
                changes.append((self.change_to_py(py, customer_id, c)?, ts))?;
            }
        }
        Ok((changes.into_py(py), counts.into_py(py)))
    }

    /// `TagEngine.catch_up`: the due times up to `now_ms`.
    fn catch_up(&self, py: Python<'_>, state: &mut NativeState, customer_id: &str, now_ms: i64) -> PyResult<PyObject> {
        let st = self.own(state)?;
        let changes = self.engine.catch_up(st, customer_id, now_ms)?;
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
    /// Its changelog bytes (`CustomerState.dumps()`, byte for byte).
    fn dumps<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new_bound(py, &self.st.dumps(&self.spec))
    }

    /// A copy to fold into (the original stays as it was if the fold is given up).
    fn copy(&self) -> NativeState {
        NativeState { st: self.st.clone(), spec: self.spec.clone() }
    }

    #[getter]
    fn due_ms(&self) -> Option<i64> {
        self.st.due_ms
    }

    #[getter]
    fn rule_version(&self) -> String {
        self.st.version.clone()
    }

    #[getter]
    fn expires_ms(&self) -> Option<i64> {
        self.st.expires_ms
    }

    #[setter]
    fn set_expires_ms(&mut self, at_ms: Option<i64>) {
        self.st.expires_ms = at_ms;
    }

    /// Nothing left to remember (`CustomerState.is_empty`): the worker deletes it.
    fn is_empty(&self) -> bool {
        self.st.order.is_empty() && self.st.tags.is_empty()
    }

    /// A native state is never a stub (the Python engine holds those).
    #[getter]
    fn moved(&self) -> Option<String> {
        None
    }

    /// Held tags: name -> since (ms).
    #[getter]
    fn tags(&self) -> HashMap<String, i64> {
        self.st.tags.iter().cloned().collect()
    }
}
