//! Rule expressions in the core (issue 9: the tag engine in the Rust core, in progress).
//!
//! `NativeExpr` evaluates the tree `tag_rules/expr_tree.py` exports from a compiled expression,
//! with the results of `CompiledExpr.__call__` (tests/unit/test_native_expr.py holds it to them on
//! random expressions and environments). Where Python would need what the core does not have (an
//! integer past 64 bits, `round` of a float to tens) it raises `NotImplementedError`.

pub mod eval;
pub mod helpers;
pub mod value;

use crate::features::num::Unsupported;
use eval::{Func, Node};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use std::rc::Rc;
use value::EV;

pub fn ev_of(o: &Bound<'_, PyAny>) -> PyResult<EV> {
    Ok(if o.is_none() {
        EV::None
    } else if o.is_instance_of::<PyBool>() {
        EV::Bool(o.extract()?)
    } else if o.is_instance_of::<PyInt>() {
        EV::Int(o.extract::<i64>().map_err(|_| Unsupported("an integer past 64 bits in an expression"))?)
    } else if o.is_instance_of::<PyFloat>() {
        EV::Float(o.extract()?)
    } else if let Ok(s) = o.downcast::<PyString>() {
        EV::Str(Rc::from(s.to_str()?))
    } else if let Ok(l) = o.downcast::<PyList>() {
        EV::List(Rc::new(l.iter().map(|x| ev_of(&x)).collect::<PyResult<Vec<_>>>()?))
    } else if let Ok(t) = o.downcast::<PyTuple>() {
        EV::Tuple(Rc::new(t.iter().map(|x| ev_of(&x)).collect::<PyResult<Vec<_>>>()?))
    } else {
        return Err(Unsupported("a value an expression does not take").into());
    })
}

pub fn ev_to_py(py: Python<'_>, v: &EV) -> PyObject {
    match v {
        EV::None => py.None(),
        EV::Bool(b) => b.into_py(py),
        EV::Int(i) => i.into_py(py),
        EV::Float(f) => f.into_py(py),
        EV::Str(s) => s.as_ref().into_py(py),
        EV::Tuple(items) => PyTuple::new_bound(py, items.iter().map(|x| ev_to_py(py, x))).into_py(py),
        EV::List(items) => PyList::new_bound(py, items.iter().map(|x| ev_to_py(py, x))).into_py(py),
    }
}

/// A tree node from its tuple form; names become slots in `names` (added when new).
pub fn node_of(o: &Bound<'_, PyAny>, names: &mut Vec<String>) -> PyResult<Node> {
    let t = o.downcast::<PyTuple>()?;
    let kind: String = t.get_item(0)?.extract()?;
    let items = |i: usize, names: &mut Vec<String>| -> PyResult<Vec<Node>> {
        t.get_item(i)?.downcast::<PyList>()?.iter().map(|x| node_of(&x, names)).collect()
    };
    let one = |i: usize, names: &mut Vec<String>| -> PyResult<Box<Node>> { Ok(Box::new(node_of(&t.get_item(i)?, names)?)) };
    Ok(match kind.as_str() {
        "const" => Node::Const(ev_of(&t.get_item(1)?)?),
        "name" => {
            let name: String = t.get_item(1)?.extract()?;
            let slot = match names.iter().position(|n| *n == name) {
                Some(i) => i,
                None => {
                    names.push(name);
                    names.len() - 1
                }
            };
            Node::Name(slot)
        }
        "tuple" => Node::Tuple(items(1, names)?),
        "list" => Node::List(items(1, names)?),
        "and" => Node::And(items(1, names)?),
        "or" => Node::Or(items(1, names)?),
        "not" => Node::Not(one(1, names)?),
        "if" => Node::If(one(1, names)?, one(2, names)?, one(3, names)?),
        "eq" => Node::Eq(one(1, names)?, one(2, names)?),
        "ne" => Node::Ne(one(1, names)?, one(2, names)?),
        "call" => {
            let func = Func::parse(&t.get_item(1)?.extract::<String>()?)?;
            let args = items(2, names)?;
            let arity_ok = match func {
                Func::Min | Func::Max | Func::Coalesce => !args.is_empty(),
                Func::Round => args.len() == 1 || args.len() == 2,
                Func::Neg | Func::Pos | Func::Abs | Func::Len | Func::Scale(_) => args.len() == 1,
                _ => args.len() == 2,
            };
            if !arity_ok {
                return Err(Unsupported("a helper call with the wrong number of arguments").into());
            }
            Node::Call(func, args)
        }
        _ => return Err(Unsupported("an expression node the core does not have").into()),
    })
}

#[pyclass(module = "tagstream_core", unsendable)]
pub struct NativeExpr {
    root: Node,
    #[pyo3(get)]
    names: Vec<String>,
}

#[pymethods]
impl NativeExpr {
    #[new]
    fn new(tree: &Bound<'_, PyAny>) -> PyResult<Self> {
        let mut names = Vec::new();
        let root = eval::optimize(node_of(tree, &mut names)?);
        Ok(NativeExpr { root, names })
    }

    /// The expression's value in `env` (a name missing from it reads as None).
    fn __call__(&self, py: Python<'_>, env: &Bound<'_, PyDict>) -> PyResult<PyObject> {
        let values = self
            .names
            .iter()
            .map(|n| match env.get_item(n)? {
                Some(v) => ev_of(&v),
                None => Ok(EV::None),
            })
            .collect::<PyResult<Vec<_>>>()?;
        Ok(ev_to_py(py, &eval::eval(&self.root, &values)?))
    }
}
