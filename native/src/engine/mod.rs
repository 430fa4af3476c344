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
pub mod event;
pub mod plans;
pub mod run;
pub mod spec;
pub mod spec_py;
pub mod state;

use crate::expr::ev_to_py;
use crate::features::num::Unsupported;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use event::JsonEvent;
use run::Engine;
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
        Ok(NativeEngine { engine: Engine::new(spec_py::spec_from_py(spec)?) })
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
        let customer_id = ev.customer_id.clone().ok_or(Unsupported("an event without customer_id"))?;
        let st = self.own(state)?;
        let out = self.engine.process_event(st, &customer_id, &ev, now_ms)?;
        Ok((self.changes_to_py(py, &customer_id, &out.changes)?, out.late, out.duplicate))
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
