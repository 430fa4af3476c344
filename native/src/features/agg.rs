//! `streams/engine/features/aggregations.py` natively: an accumulator per aggregation, and how
//! one starts, takes one more value, merges with another and reads.

use super::num::{add, lt, repr, round6, true_div, Unsupported, Val, R};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Agg {
    Count,
    Sum,
    Min,
    Max,
    Avg,
    First,
    Last,
    SinceLast,
    DistinctCount,
}

impl Agg {
    pub fn parse(name: &str) -> R<Agg> {
        Ok(match name {
            "count" => Agg::Count,
            "sum" => Agg::Sum,
            "min" => Agg::Min,
            "max" => Agg::Max,
            "avg" => Agg::Avg,
            "first" => Agg::First,
            "last" => Agg::Last,
            "since_last" => Agg::SinceLast,
            "distinct_count" => Agg::DistinctCount,
            _ => return Err(Unsupported("an aggregation the native features do not have")),
        })
    }

    /// Its accumulator is a pair: avg (sum, count), first/last (ts_ms, value).
    pub fn paired(self) -> bool {
        matches!(self, Agg::Avg | Agg::First | Agg::Last)
    }

    /// The value over no events (`Aggregation.empty`).
    pub fn empty(self) -> Val {
        match self {
            Agg::Count | Agg::Sum | Agg::DistinctCount => Val::Int(0),
            _ => Val::Null,
        }
    }
}

/// An accumulator: a scalar (count, sum, min, max, the newest ts of since_last) or a pair.
#[derive(Clone, Debug, PartialEq)]
pub enum Acc {
    One(Val),
    Pair(Val, Val),
}

fn number(v: &Val) -> R<()> {
    match v {
        Val::Int(_) | Val::Float(_) => Ok(()),
        _ => Err(Unsupported("a value that is not a number")),
    }
}

fn scalar(v: &Val) -> R<()> {
    match v {
        Val::Int(_) | Val::Float(_) | Val::Str(_) => Ok(()),
        _ => Err(Unsupported("min/max of a value that is not a number or a string")),
    }
}

impl Agg {
    pub fn initialize(self, v: &Val, ts_ms: i64) -> R<Acc> {
        Ok(match self {
            Agg::Count => Acc::One(Val::Int(1)),
            Agg::Sum => {
                number(v)?;
                Acc::One(v.clone())
            }
            Agg::Min | Agg::Max => {
                scalar(v)?;
                Acc::One(v.clone())
            }
            Agg::Avg => {
                number(v)?;
                Acc::Pair(v.clone(), Val::Int(1))
            }
            Agg::First | Agg::Last => Acc::Pair(Val::Int(ts_ms), v.clone()),
            Agg::SinceLast => Acc::One(Val::Int(ts_ms)),
            Agg::DistinctCount => return Err(Unsupported("distinct_count keeps values, not an accumulator")),
        })
    }

    pub fn update(self, acc: Acc, v: &Val, ts_ms: i64) -> R<Acc> {
        match self {
            Agg::First | Agg::Last => self.merge(acc, Acc::Pair(Val::Int(ts_ms), v.clone())),
            Agg::Min | Agg::Max | Agg::Sum | Agg::Avg => {
                let one = self.initialize(v, ts_ms)?;
                self.merge(acc, one)
            }
            Agg::Count => self.merge(acc, Acc::One(Val::Int(1))),
            Agg::SinceLast => self.merge(acc, Acc::One(Val::Int(ts_ms))),
            Agg::DistinctCount => Err(Unsupported("distinct_count keeps values, not an accumulator")),
        }
    }

    /// `Aggregation.merge(a, b)` (and `update` is `merge` with the value's own accumulator: the
    /// same result for every aggregation here).
    pub fn merge(self, a: Acc, b: Acc) -> R<Acc> {
        Ok(match (self, a, b) {
            (Agg::Count | Agg::Sum, Acc::One(x), Acc::One(y)) => Acc::One(add(&x, &y)?),
            (Agg::Min, Acc::One(x), Acc::One(y)) => Acc::One(if lt(&y, &x)? { y } else { x }),
            (Agg::Max, Acc::One(x), Acc::One(y)) => Acc::One(if lt(&x, &y)? { y } else { x }),
            (Agg::SinceLast, Acc::One(x), Acc::One(y)) => Acc::One(if lt(&y, &x)? { x } else { y }),
            (Agg::Avg, Acc::Pair(s, n), Acc::Pair(t, m)) => Acc::Pair(add(&s, &t)?, add(&n, &m)?),
            (Agg::First, a @ Acc::Pair(..), b @ Acc::Pair(..)) => {
                if first_before(&b, &a)? { b } else { a }
            }
            (Agg::Last, a @ Acc::Pair(..), b @ Acc::Pair(..)) => {
                if first_before(&a, &b)? { b } else { a }
            }
            _ => return Err(Unsupported("an accumulator of another shape")),
        })
    }

    /// `Aggregation.finish`: the value an accumulator reads as.
    pub fn finish(self, acc: &Acc) -> R<Val> {
        Ok(match (self, acc) {
            (Agg::Sum, Acc::One(Val::Float(f))) => Val::Float(round6(*f)),
            (Agg::Avg, Acc::Pair(s, Val::Int(n))) => {
                if *n == 0 {
                    Val::Null
                } else {
                    Val::Float(round6(true_div(s, *n)?))
                }
            }
            (Agg::First | Agg::Last, Acc::Pair(_, v)) => v.clone(),
            (_, Acc::One(v)) => v.clone(),
            _ => return Err(Unsupported("an accumulator of another shape")),
        })
    }

    /// `Aggregation.result`: the accumulators merged in order, read (or `empty`).
    pub fn result<'a>(self, accs: impl Iterator<Item = &'a Acc>) -> R<Val> {
        let mut total: Option<Acc> = None;
        for acc in accs {
            total = Some(match total {
                None => acc.clone(),
                Some(t) => self.merge(t, acc.clone())?,
            });
        }
        match total {
            None => Ok(self.empty()),
            Some(t) => self.finish(&t),
        }
    }
}

/// `(ts, value)` pair `a` strictly before `b`: earlier, or at the same instant with the smaller
/// `_order_key` of the value (None first, then by `repr`).
fn first_before(a: &Acc, b: &Acc) -> R<bool> {
    let (Acc::Pair(ta, va), Acc::Pair(tb, vb)) = (a, b) else {
        return Err(Unsupported("an accumulator of another shape"));
    };
    if ta != tb {
        return lt(ta, tb);
    }
    Ok(match (va, vb) {
        (Val::Null, Val::Null) => false,
        (Val::Null, _) => true,
        (_, Val::Null) => false,
        _ => repr(va)? < repr(vb)?,
    })
}
