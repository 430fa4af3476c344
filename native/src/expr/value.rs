//! The values a rule expression works on, with Python's semantics for the operations
//! `tag_rules/expr_values.py` relies on: truthiness, `==`, `<` (bools are ints there), `in`.

use crate::features::num::{cmp_int_float, Unsupported, R};
use std::cmp::Ordering;
use std::rc::Rc;

#[derive(Clone, Debug)]
pub enum EV {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Rc<str>),
    Tuple(Rc<Vec<EV>>),
    List(Rc<Vec<EV>>),
}

/// The same value, bit for bit (a float by its bits: -0.0 is not 0.0, a NaN is itself): what the
/// engine compares to know that a tag's inputs did not move.
pub fn same(a: &EV, b: &EV) -> bool {
    match (a, b) {
        (EV::None, EV::None) => true,
        (EV::Bool(x), EV::Bool(y)) => x == y,
        (EV::Int(x), EV::Int(y)) => x == y,
        (EV::Float(x), EV::Float(y)) => x.to_bits() == y.to_bits(),
        (EV::Str(x), EV::Str(y)) => x == y,
        (EV::Tuple(x), EV::Tuple(y)) | (EV::List(x), EV::List(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| same(p, q))
        }
        _ => false,
    }
}

/// A comparison Python refuses (`TypeError`): the helpers turn it into False or None.
pub struct TypeErr;

impl EV {
    pub fn truthy(&self) -> bool {
        match self {
            EV::None => false,
            EV::Bool(b) => *b,
            EV::Int(i) => *i != 0,
            EV::Float(f) => *f != 0.0, // NaN is true, as in Python
            EV::Str(s) => !s.is_empty(),
            EV::Tuple(v) | EV::List(v) => !v.is_empty(),
        }
    }

    /// `is_num`: int or float, not bool.
    pub fn is_num(&self) -> bool {
        matches!(self, EV::Int(_) | EV::Float(_))
    }
}

enum Num {
    I(i64),
    F(f64),
}

fn as_num(v: &EV) -> Option<Num> {
    match v {
        EV::Bool(b) => Some(Num::I(*b as i64)),
        EV::Int(i) => Some(Num::I(*i)),
        EV::Float(f) => Some(Num::F(*f)),
        _ => None,
    }
}

fn num_cmp(a: Num, b: Num) -> Option<Ordering> {
    match (a, b) {
        (Num::I(x), Num::I(y)) => Some(x.cmp(&y)),
        (Num::F(x), Num::F(y)) => x.partial_cmp(&y),
        (Num::I(x), Num::F(y)) => cmp_int_float(x, y),
        (Num::F(x), Num::I(y)) => cmp_int_float(y, x).map(Ordering::reverse),
    }
}

/// Python's `a == b`.
pub fn eq(a: &EV, b: &EV) -> bool {
    match (a, b) {
        (EV::None, EV::None) => true,
        (EV::Str(x), EV::Str(y)) => x == y,
        (EV::Tuple(x), EV::Tuple(y)) | (EV::List(x), EV::List(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| eq(p, q))
        }
        _ => match (as_num(a), as_num(b)) {
            (Some(x), Some(y)) => num_cmp(x, y) == Some(Ordering::Equal),
            _ => false,
        },
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Order {
    Lt,
    Le,
    Gt,
    Ge,
}

fn holds(op: Order, o: Ordering) -> bool {
    match op {
        Order::Lt => o == Ordering::Less,
        Order::Le => o != Ordering::Greater,
        Order::Gt => o == Ordering::Greater,
        Order::Ge => o != Ordering::Less,
    }
}

/// Python's `a < b` (and the others): numbers (bools among them), strings, and tuples or lists
/// of the same kind lexicographically; anything else is a `TypeError`.
pub fn order(op: Order, a: &EV, b: &EV) -> Result<bool, TypeErr> {
    match (a, b) {
        (EV::Str(x), EV::Str(y)) => Ok(holds(op, x.as_ref().cmp(y.as_ref()))),
        (EV::Tuple(x), EV::Tuple(y)) | (EV::List(x), EV::List(y)) => {
            for (p, q) in x.iter().zip(y.iter()) {
                if !eq(p, q) {
                    return order(op, p, q);
                }
            }
            Ok(holds(op, x.len().cmp(&y.len())))
        }
        _ => match (as_num(a), as_num(b)) {
            (Some(x), Some(y)) => Ok(match num_cmp(x, y) {
                Some(o) => holds(op, o),
                None => false, // NaN
            }),
            _ => Err(TypeErr),
        },
    }
}

/// Python's `a in b` (`TypeError` where Python raises one).
pub fn contains(a: &EV, b: &EV) -> Result<bool, TypeErr> {
    match b {
        EV::Str(hay) => match a {
            EV::Str(needle) => Ok(hay.contains(needle.as_ref())),
            _ => Err(TypeErr),
        },
        EV::Tuple(items) | EV::List(items) => Ok(items.iter().any(|x| eq(x, a))),
        _ => Err(TypeErr),
    }
}

pub fn int_or_refuse(v: Option<i64>) -> R<EV> {
    v.map(EV::Int).ok_or(Unsupported("an integer past 64 bits in an expression"))
}
