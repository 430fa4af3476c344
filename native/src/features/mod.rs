//! The features of the native engine (issue 9's next step: the tag engine in the Rust core).
//!
//! `NativeFeature` is `streams/engine/features/runtime.py`'s `FeatureRuntime` for the plain
//! aggregations (not sequences/absence), with the same data in the same shapes and orders. It is
//! the first piece of the native engine and is not yet on the worker's path: tests hold it to the
//! Python runtime on random streams (tests/unit/test_native_features.py). What it cannot do exactly
//! as Python does raises `NotImplementedError` (the pure-Python engine then does that work).

pub mod agg;
pub mod feature;
pub mod num;

use agg::{Acc, Agg};
use feature::{Data, Feature};
use num::{Unsupported, Val};
use pyo3::exceptions::PyNotImplementedError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

impl From<Unsupported> for PyErr {
    fn from(u: Unsupported) -> PyErr {
        PyNotImplementedError::new_err(format!("tagstream core: {}", u.0))
    }
}

fn val_of(o: &Bound<'_, PyAny>) -> PyResult<Val> {
    if o.is_none() {
        Ok(Val::Null)
    } else if o.is_instance_of::<PyBool>() {
        Ok(Val::Bool(o.extract()?))
    } else if o.is_instance_of::<PyInt>() {
        o.extract::<i64>().map(Val::Int).map_err(|_| Unsupported("integer past 64 bits").into())
    } else if o.is_instance_of::<PyFloat>() {
        Ok(Val::Float(o.extract()?))
    } else if o.is_instance_of::<PyString>() {
        Ok(Val::Str(o.extract()?))
    } else {
        Err(Unsupported("a value that is not a JSON scalar").into())
    }
}

fn val_to_py(py: Python<'_>, v: &Val) -> PyObject {
    match v {
        Val::Null => py.None(),
        Val::Bool(b) => b.into_py(py),
        Val::Int(i) => i.into_py(py),
        Val::Float(f) => f.into_py(py),
        Val::Str(s) => s.into_py(py),
    }
}

fn acc_of(agg: Agg, o: &Bound<'_, PyAny>) -> PyResult<Acc> {
    if agg.paired() {
        let items: Vec<Bound<'_, PyAny>> = if let Ok(t) = o.downcast::<PyTuple>() {
            t.iter().collect()
        } else if let Ok(l) = o.downcast::<PyList>() {
            l.iter().collect()
        } else {
            return Err(Unsupported("a pair accumulator that is not a pair").into());
        };
        if items.len() != 2 {
            return Err(Unsupported("a pair accumulator that is not a pair").into());
        }
        Ok(Acc::Pair(val_of(&items[0])?, val_of(&items[1])?))
    } else {
        Ok(Acc::One(val_of(o)?))
    }
}

fn acc_to_py(py: Python<'_>, a: &Acc) -> PyObject {
    match a {
        Acc::One(v) => val_to_py(py, v),
        Acc::Pair(x, y) => PyTuple::new_bound(py, [val_to_py(py, x), val_to_py(py, y)]).into_py(py),
    }
}

fn bucket_of_key(k: &Bound<'_, PyAny>) -> PyResult<i64> {
    if let Ok(s) = k.downcast::<PyString>() {
        s.to_str()?.parse::<i64>().map_err(|_| Unsupported("a bucket key that is not an integer").into())
    } else {
        k.extract::<i64>().map_err(|_| Unsupported("a bucket key that is not an integer").into())
    }
}

#[pyclass(module = "tagstream_core", frozen)]
pub struct NativeFeature {
    f: Feature,
    field: Option<String>,
}

impl NativeFeature {
    fn data_of(&self, o: &Bound<'_, PyAny>) -> PyResult<Data> {
        if o.is_none() {
            return Ok(Data::None);
        }
        if self.f.agg == Agg::DistinctCount {
            let d = o.downcast::<PyDict>().map_err(|_| Unsupported("distinct data that is not a dict"))?;
            let mut keys = Vec::with_capacity(d.len());
            for (k, v) in d.iter() {
                keys.push((k.extract::<String>()?, v.extract::<i64>()?));
            }
            return Ok(Data::Keys(keys));
        }
        if self.f.window.is_some() {
            let d = o.downcast::<PyDict>().map_err(|_| Unsupported("window data that is not a dict"))?;
            let mut buckets = Vec::with_capacity(d.len());
            for (k, v) in d.iter() {
                buckets.push((bucket_of_key(&k)?, acc_of(self.f.agg, &v)?));
            }
            return Ok(Data::Buckets(buckets));
        }
        Ok(Data::Acc(acc_of(self.f.agg, o)?))
    }

    fn data_to_py(&self, py: Python<'_>, d: &Data) -> PyResult<PyObject> {
        Ok(match d {
            Data::None => py.None(),
            Data::Acc(a) => acc_to_py(py, a),
            Data::Buckets(b) => {
                let out = PyDict::new_bound(py);
                for (bucket, acc) in b {
                    out.set_item(bucket, acc_to_py(py, acc))?;
                }
                out.into_py(py)
            }
            Data::Keys(k) => {
                let out = PyDict::new_bound(py);
                for (key, bucket) in k {
                    out.set_item(key, bucket)?;
                }
                out.into_py(py)
            }
        })
    }

    /// `FeatureRuntime.values_of`: what the event contributes.
    fn values_of(&self, event: &Bound<'_, PyDict>) -> PyResult<Vec<Val>> {
        let Some(field) = &self.field else { return Ok(vec![Val::Null]) };
        let Some(v) = event.get_item(field)? else { return Ok(Vec::new()) };
        if v.is_none() {
            return Ok(Vec::new());
        }
        if let Ok(l) = v.downcast::<PyList>() {
            if self.f.agg == Agg::DistinctCount {
                return l.iter().map(|x| val_of(&x)).collect();
            }
            return match l.iter().next() {
                Some(x) => Ok(vec![val_of(&x)?]),
                None => Ok(Vec::new()),
            };
        }
        Ok(vec![val_of(&v)?])
    }
}

#[pymethods]
impl NativeFeature {
    #[new]
    #[pyo3(signature = (agg, field, window_ms, resolution_ms, thresholds_s=Vec::new()))]
    fn new(agg: &str, field: Option<String>, window_ms: Option<i64>, resolution_ms: Option<i64>,
           thresholds_s: Vec<f64>) -> PyResult<Self> {
        let f = Feature::new(agg, window_ms, resolution_ms, &thresholds_s)?;
        Ok(NativeFeature { f, field })
    }

    /// `(new data, late)` after folding `event` (a canonical event: `ts_ms` and the field).
    fn fold(&self, py: Python<'_>, data: &Bound<'_, PyAny>, event: &Bound<'_, PyDict>, now_ms: i64)
            -> PyResult<(PyObject, bool)> {
        let values = self.values_of(event)?;
        let ts_ms: i64 = event.get_item("ts_ms")?.ok_or(Unsupported("an event without ts_ms"))?.extract()?;
        let (d, late) = self.f.fold(self.data_of(data)?, &values, ts_ms, now_ms)?;
        Ok((self.data_to_py(py, &d)?, late))
    }

    fn value(&self, py: Python<'_>, data: &Bound<'_, PyAny>, now_ms: i64) -> PyResult<PyObject> {
        Ok(val_to_py(py, &self.f.value(&self.data_of(data)?, now_ms)?))
    }

    fn prune(&self, py: Python<'_>, data: &Bound<'_, PyAny>, now_ms: i64) -> PyResult<PyObject> {
        let d = self.f.prune(self.data_of(data)?, now_ms);
        self.data_to_py(py, &d)
    }

    fn next_change_ms(&self, py: Python<'_>, data: &Bound<'_, PyAny>, now_ms: i64) -> PyResult<PyObject> {
        Ok(match self.f.next_change_ms(&self.data_of(data)?, now_ms) {
            Some(at) => at.into_py(py),
            None => f64::INFINITY.into_py(py),
        })
    }

    #[pyo3(signature = (a, b, now_ms))]
    fn merge(&self, py: Python<'_>, a: &Bound<'_, PyAny>, b: &Bound<'_, PyAny>, now_ms: i64) -> PyResult<PyObject> {
        let _ = now_ms;
        let d = self.f.merge(self.data_of(a)?, self.data_of(b)?)?;
        self.data_to_py(py, &d)
    }
}
