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

/// Both operands numbers (int or float, not bool): what arithmetic needs (else None).
fn numbers(a: &[EV]) -> bool {
    a.len() == 2 && a[0].is_num() && a[1].is_num()
}

/// `add`, `sub`, `mul`.
fn arith(func: Func, x: &EV, y: &EV) -> R<EV> {
    Ok(match (x, y) {
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
    })
}

/// `div`: Python's true division (`y` is not zero).
fn divide(x: &EV, y: &EV) -> R<EV> {
    match (x, y) {
        (EV::Int(x), EV::Int(y)) if !(within_53(*x) && within_53(*y)) => {
            Err(Unsupported("true division of integers past 2**53"))
        }
        (x, y) => Ok(EV::Float(f(x) / f(y))),
    }
}

/// `floordiv` and `mod`: Python's, the remainder with the divisor's sign (`y` is not zero).
fn floor_divide(modulo: bool, x: &EV, y: &EV) -> R<EV> {
    Ok(match (x, y) {
        (EV::Int(x), EV::Int(-1)) => return if modulo { Ok(EV::Int(0)) } else { int_or_refuse(x.checked_neg()) },
        (EV::Int(x), EV::Int(y)) => {
            let (q, r) = (x / y, x % y);
            let adjust = r != 0 && ((r < 0) != (*y < 0));
            EV::Int(match (modulo, adjust) {
                (true, true) => r + y,
                (true, false) => r,
                (false, true) => q - 1,
                (false, false) => q,
            })
        }
        (x, y) => {
            let (fd, m) = float_divmod(f(x), f(y));
            EV::Float(if modulo { m } else { fd })
        }
    })
}

/// `pow`: None past an exponent of 64 or a base of 1e12, and where Python raises or would give a
/// complex number.
fn power(x: &EV, y: &EV) -> R<EV> {
    let small_exp = match y {
        EV::Int(y) => y.unsigned_abs() <= 64,
        EV::Float(y) => y.abs() <= 64.0,
        _ => false,
    };
    let small_base = match x {
        EV::Int(x) => x.unsigned_abs() <= 1_000_000_000_000,
        EV::Float(x) => x.abs() <= 1e12,
        _ => false,
    };
    if !(small_exp && small_base) {
        return Ok(EV::None);
    }
    Ok(match (x, y) {
        (EV::Int(x), EV::Int(y)) if *y >= 0 => int_or_refuse(x.checked_pow(*y as u32))?,
        (x, y) => float_pow(f(x), f(y)).map_or(EV::None, EV::Float),
    })
}

/// `round(x[, ndigits])`: an int without `ndigits` (None for inf/nan), else `x`'s type.
fn round(x: &EV, ndigits: Option<&EV>) -> R<EV> {
    Ok(match (ndigits, x) {
        (None | Some(EV::None), EV::Int(x)) => EV::Int(*x),
        (None | Some(EV::None), EV::Float(x)) if !x.is_finite() => EV::None,
        (None | Some(EV::None), EV::Float(x)) => {
            let r = x.round_ties_even();
            if !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&r) {
                return Err(Unsupported("round() to an integer past 64 bits"));
            }
            EV::Int(r as i64)
        }
        (Some(EV::Int(nd)), x) if nd.unsigned_abs() <= 64 => match x {
            EV::Int(x) => round_int(*x, *nd)?,
            EV::Float(x) if !x.is_finite() => EV::Float(*x),
            EV::Float(x) if *nd >= 0 => EV::Float(round_to(*x, *nd as usize)),
            _ => return Err(Unsupported("round() of a float to tens")),
        },
        _ => EV::None,
    })
}

/// `neg`, `pos`, `abs` and the durations (`seconds` ... `days`: a factor).
fn unary(func: Func, x: &EV) -> R<EV> {
    Ok(match (func, x) {
        (_, x) if !x.is_num() => EV::None,
        (Func::Pos, x) => x.clone(),
        (Func::Neg, EV::Int(x)) => int_or_refuse(x.checked_neg())?,
        (Func::Neg, EV::Float(x)) => EV::Float(-x),
        (Func::Abs, EV::Int(x)) => int_or_refuse(x.checked_abs())?,
        (Func::Abs, EV::Float(x)) => EV::Float(x.abs()),
        (Func::Scale(k), EV::Int(x)) => int_or_refuse(x.checked_mul(k))?,
        (Func::Scale(k), EV::Float(x)) => EV::Float(x * k as f64),
        _ => EV::None,
    })
}

/// A helper's value for its arguments (`args` as the call gives them: the arity was checked when
/// the tree was read).
pub fn call(func: Func, a: &[EV]) -> R<EV> {
    Ok(match func {
        Func::Lt => ordered(Order::Lt, &a[0], &a[1]),
        Func::Le => ordered(Order::Le, &a[0], &a[1]),
        Func::Gt => ordered(Order::Gt, &a[0], &a[1]),
        Func::Ge => ordered(Order::Ge, &a[0], &a[1]),
        Func::In | Func::NotIn => {
            let found = !matches!(a[1], EV::None) && contains(&a[0], &a[1]).unwrap_or(false);
            EV::Bool(if matches!(func, Func::In) { found } else { !found })
        }
        Func::Add | Func::Sub | Func::Mul if numbers(a) => arith(func, &a[0], &a[1])?,
        Func::Div if numbers(a) && a[1].truthy() => divide(&a[0], &a[1])?,
        Func::FloorDiv | Func::Mod if numbers(a) && a[1].truthy() => floor_divide(matches!(func, Func::Mod), &a[0], &a[1])?,
        Func::Pow if numbers(a) => power(&a[0], &a[1])?,
        Func::Add | Func::Sub | Func::Mul | Func::Div | Func::FloorDiv | Func::Mod | Func::Pow => EV::None,
        Func::Neg | Func::Pos | Func::Abs | Func::Scale(_) => unary(func, &a[0])?,
        Func::Min => minmax(true, a),
        Func::Max => minmax(false, a),
        Func::Round if a[0].is_num() => round(&a[0], a.get(1))?,
        Func::Round => EV::None,
        Func::Len => match &a[0] {
            EV::Str(s) => EV::Int(s.chars().count() as i64),
            EV::Tuple(v) | EV::List(v) => EV::Int(v.len() as i64),
            _ => EV::None,
        },
        Func::Coalesce => a.iter().find(|x| !matches!(x, EV::None)).cloned().unwrap_or(EV::None),
    })
}
