//! The helpers a rule expression calls (`tag_rules/expr_values.py`), with the same results, or
//! `Unsupported` where Python would need what this does not have (an integer past 64 bits, `round`
//! of a float to tens).

use super::value::{contains, int_or_refuse, order, Order, EV};
use crate::features::num::{round_to, Unsupported, R};

#[derive(Clone, Copy, Debug)]
pub enum Func {
    Lt,
    Le,
    Gt,
    Ge,
    In,
    NotIn,
    Add,
    Sub,
    Mul,
    Div,
    FloorDiv,
    Mod,
    Pow,
    Neg,
    Pos,
    Min,
    Max,
    Abs,
    Round,
    Len,
    Coalesce,
    Scale(i64),
}

impl Func {
    pub fn parse(name: &str) -> R<Func> {
        Ok(match name {
            "lt" => Func::Lt,
            "le" => Func::Le,
            "gt" => Func::Gt,
            "ge" => Func::Ge,
            "in" => Func::In,
            "not_in" => Func::NotIn,
            "add" => Func::Add,
            "sub" => Func::Sub,
            "mul" => Func::Mul,
            "div" => Func::Div,
            "floordiv" => Func::FloorDiv,
            "mod" => Func::Mod,
            "pow" => Func::Pow,
            "neg" => Func::Neg,
            "pos" => Func::Pos,
            "f_min" => Func::Min,
            "f_max" => Func::Max,
            "f_abs" => Func::Abs,
            "f_round" => Func::Round,
            "f_len" => Func::Len,
            "f_coalesce" => Func::Coalesce,
            "f_seconds" => Func::Scale(1),
            "f_minutes" => Func::Scale(60),
            "f_hours" => Func::Scale(3600),
            "f_days" => Func::Scale(86400),
            _ => return Err(Unsupported("an expression helper the core does not have")),
        })
    }
}

pub fn ordered(op: Order, a: &EV, b: &EV) -> EV {
    if matches!(a, EV::None) || matches!(b, EV::None) {
        return EV::Bool(false);
    }
    EV::Bool(order(op, a, b).unwrap_or(false))
}

fn within_53(i: i64) -> bool {
    i.unsigned_abs() <= 1u64 << 53
}

fn f(v: &EV) -> f64 {
    match v {
        EV::Int(i) => *i as f64,
        EV::Float(x) => *x,
        _ => unreachable!("a number"),
    }
}

/// CPython's `float_divmod`: (floor quotient, remainder with the divisor's sign).
fn float_divmod(vx: f64, wx: f64) -> (f64, f64) {
    let mut m = vx % wx;
    let mut div = (vx - m) / wx;
    if m != 0.0 {
        if (wx < 0.0) != (m < 0.0) {
            m += wx;
            div -= 1.0;
        }
    } else {
        m = 0.0_f64.copysign(wx);
    }
    let floordiv = if div != 0.0 {
        let mut fl = div.floor();
        if div - fl > 0.5 {
            fl += 1.0;
        }
        fl
    } else {
        0.0_f64.copysign(vx / wx)
    };
    (floordiv, m)
}

/// CPython's `float_pow` for finite operands: None where Python raises (0 ** negative, overflow)
/// or returns a complex (a negative base to a fractional power).
fn float_pow(iv: f64, iw: f64) -> Option<f64> {
    if iw == 0.0 {
        return Some(1.0);
    }
    let odd = |w: f64| w.floor() == w && (w % 2.0).abs() == 1.0;
    if iv == 0.0 {
        if iw < 0.0 {
            return None;
        }
        return Some(if odd(iw) { iv } else { 0.0 });
    }
    if iv == 1.0 {
        return Some(1.0);
    }
    let (mut base, mut negate) = (iv, false);
    if iv < 0.0 {
        if iw != iw.floor() {
            return None;
        }
        base = -iv;
        negate = odd(iw);
    }
    if base == 1.0 {
        return Some(if negate { -1.0 } else { 1.0 });
    }
    let r = base.powf(iw);
    if r.is_infinite() {
        return None; // OverflowError
    }
    Some(if negate { -r } else { r })
}

fn round_int(a: i64, nd: i64) -> R<EV> {
    if nd >= 0 {
        return Ok(EV::Int(a));
    }
    let k = (-nd) as u32;
    if k > 38 {
        return Ok(EV::Int(0));
    }
    let p = 10i128.pow(k);
    let a = a as i128;
    let (mut q, r) = (a.div_euclid(p), a.rem_euclid(p));
    if 2 * r > p || (2 * r == p && q % 2 != 0) {
        q += 1;
    }
    int_or_refuse(i64::try_from(q * p).ok())
}

fn minmax(pick_less: bool, args: &[EV]) -> EV {
    let items: &[EV] = match args {
        [EV::Tuple(v)] | [EV::List(v)] => v,
        _ => args,
    };
    let mut best: Option<&EV> = None;
    for x in items.iter().filter(|x| !matches!(x, EV::None)) {
        best = Some(match best {
            None => x,
            Some(b) => match order(if pick_less { Order::Lt } else { Order::Gt }, x, b) {
                Ok(true) => x,
                Ok(false) => b,
                Err(_) => return EV::None,
            },
        });
    }
    best.cloned().unwrap_or(EV::None)
}

pub fn call(func: Func, a: &[EV]) -> R<EV> {
    let num2 = || a.len() == 2 && a[0].is_num() && a[1].is_num();
    Ok(match func {
        Func::Lt => ordered(Order::Lt, &a[0], &a[1]),
        Func::Le => ordered(Order::Le, &a[0], &a[1]),
        Func::Gt => ordered(Order::Gt, &a[0], &a[1]),
        Func::Ge => ordered(Order::Ge, &a[0], &a[1]),
        Func::In | Func::NotIn => {
            let found = !matches!(a[1], EV::None) && contains(&a[0], &a[1]).unwrap_or(false);
            EV::Bool(if matches!(func, Func::In) { found } else { !found })
        }
        Func::Add | Func::Sub | Func::Mul => {
            if !num2() {
                return Ok(EV::None);
            }
            match (&a[0], &a[1]) {
                (EV::Int(x), EV::Int(y)) => int_or_refuse(match func {
                    Func::Add => x.checked_add(*y),
                    Func::Sub => x.checked_sub(*y),
                    _ => x.checked_mul(*y),
                })?,
                (x, y) => EV::Float(match func {
                    Func::Add => f(x) + f(y),
                    Func::Sub => f(x) - f(y),
                    _ => f(x) * f(y),
                }),
            }
        }
        Func::Div => {
            if !num2() || !a[1].truthy() {
                return Ok(EV::None);
            }
            match (&a[0], &a[1]) {
                (EV::Int(x), EV::Int(y)) if !(within_53(*x) && within_53(*y)) => {
                    return Err(Unsupported("true division of integers past 2**53"))
                }
                (x, y) => EV::Float(f(x) / f(y)),
            }
        }
        Func::FloorDiv | Func::Mod => {
            if !num2() || !a[1].truthy() {
                return Ok(EV::None);
            }
            match (&a[0], &a[1]) {
                (EV::Int(x), EV::Int(y)) => {
                    if *y == -1 {
                        return if matches!(func, Func::Mod) { Ok(EV::Int(0)) } else { int_or_refuse(x.checked_neg()) };
                    }
                    let (q, r) = (x / y, x % y);
                    let adjust = r != 0 && ((r < 0) != (*y < 0));
                    if matches!(func, Func::Mod) {
                        EV::Int(if adjust { r + y } else { r })
                    } else {
                        EV::Int(if adjust { q - 1 } else { q })
                    }
                }
                (x, y) => {
                    let (fd, m) = float_divmod(f(x), f(y));
                    EV::Float(if matches!(func, Func::Mod) { m } else { fd })
                }
            }
        }
        Func::Pow => {
            if !num2() {
                return Ok(EV::None);
            }
            let small_exp = match &a[1] {
                EV::Int(y) => y.unsigned_abs() <= 64,
                EV::Float(y) => y.abs() <= 64.0,
                _ => false,
            };
            let small_base = match &a[0] {
                EV::Int(x) => x.unsigned_abs() <= 1_000_000_000_000,
                EV::Float(x) => x.abs() <= 1e12,
                _ => false,
            };
            if !(small_exp && small_base) {
                return Ok(EV::None);
            }
            match (&a[0], &a[1]) {
                (EV::Int(x), EV::Int(y)) if *y >= 0 => int_or_refuse(x.checked_pow(*y as u32))?,
                (x, y) => float_pow(f(x), f(y)).map_or(EV::None, EV::Float),
            }
        }
        Func::Neg => match &a[0] {
            EV::Int(x) => int_or_refuse(x.checked_neg())?,
            EV::Float(x) => EV::Float(-x),
            _ => EV::None,
        },
        Func::Pos => if a[0].is_num() { a[0].clone() } else { EV::None },
        Func::Min => minmax(true, a),
        Func::Max => minmax(false, a),
        Func::Abs => match &a[0] {
            EV::Int(x) => int_or_refuse(x.checked_abs())?,
            EV::Float(x) => EV::Float(x.abs()),
            _ => EV::None,
        },
        Func::Round => {
            if !a[0].is_num() {
                return Ok(EV::None);
            }
            match a.get(1) {
                None | Some(EV::None) => match &a[0] {
                    EV::Int(x) => EV::Int(*x),
                    EV::Float(x) if !x.is_finite() => EV::None,
                    EV::Float(x) => {
                        let r = x.round_ties_even();
                        if r >= -9.223_372_036_854_776e18 && r < 9.223_372_036_854_776e18 {
                            EV::Int(r as i64)
                        } else {
                            return Err(Unsupported("round() to an integer past 64 bits"));
                        }
                    }
                    _ => unreachable!(),
                },
                Some(EV::Int(nd)) if nd.unsigned_abs() <= 64 => match &a[0] {
                    EV::Int(x) => round_int(*x, *nd)?,
                    EV::Float(x) if !x.is_finite() => EV::Float(*x),
                    EV::Float(x) if *nd >= 0 => EV::Float(round_to(*x, *nd as usize)),
                    EV::Float(_) => return Err(Unsupported("round() of a float to tens")),
                    _ => unreachable!(),
                },
                Some(_) => EV::None,
            }
        }
        Func::Len => match &a[0] {
            EV::Str(s) => EV::Int(s.chars().count() as i64),
            EV::Tuple(v) | EV::List(v) => EV::Int(v.len() as i64),
            _ => EV::None,
        },
        Func::Coalesce => a.iter().find(|x| !matches!(x, EV::None)).cloned().unwrap_or(EV::None),
        Func::Scale(k) => match &a[0] {
            EV::Int(x) => int_or_refuse(x.checked_mul(k))?,
            EV::Float(x) => EV::Float(x * k as f64),
            _ => EV::None,
        },
    })
}
