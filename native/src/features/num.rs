//! The JSON scalars a feature folds, with Python's semantics where the engine relies on them:
//! `int + int` stays an integer, `int + float` is a float, `<` between an int and a float is exact,
//! and `repr` (distinct keys of non-strings, `first`/`last` tie-breaks) is Python's text.
//!
//! What Python would do differently and this does not try to copy (an int past 64 bits, `True + 1`,
//! a sum of strings, comparing a string with a number, a non-ASCII string's `repr`) is refused with
//! `Unsupported`: the caller then keeps the pure-Python engine for that work.

use std::cmp::Ordering;

#[derive(Clone, Debug, PartialEq)]
pub enum Val {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

/// Something the native features do not reproduce exactly (the pure-Python engine does it).
#[derive(Debug, Clone, PartialEq)]
pub struct Unsupported(pub &'static str);

pub type R<T> = Result<T, Unsupported>;

/// `a + b` as Python adds two numbers (the int part must stay within 64 bits).
pub fn add(a: &Val, b: &Val) -> R<Val> {
    match (a, b) {
        (Val::Int(x), Val::Int(y)) => x.checked_add(*y).map(Val::Int).ok_or(Unsupported("integer past 64 bits")),
        (Val::Int(x), Val::Float(y)) => Ok(Val::Float(*x as f64 + y)),
        (Val::Float(x), Val::Int(y)) => Ok(Val::Float(x + *y as f64)),
        (Val::Float(x), Val::Float(y)) => Ok(Val::Float(x + y)),
        _ => Err(Unsupported("addition of a value that is not a number")),
    }
}

/// Python's `a < b` for two numbers or two strings (exact between an int and a float; NaN is
/// never less).
pub fn lt(a: &Val, b: &Val) -> R<bool> {
    Ok(match (a, b) {
        (Val::Int(x), Val::Int(y)) => x < y,
        (Val::Float(x), Val::Float(y)) => x < y,
        (Val::Int(x), Val::Float(y)) => cmp_int_float(*x, *y) == Some(Ordering::Less),
        (Val::Float(x), Val::Int(y)) => cmp_int_float(*y, *x) == Some(Ordering::Greater),
        // UTF-8 byte order is code point order: Python's order of str
        (Val::Str(x), Val::Str(y)) => x < y,
        _ => return Err(Unsupported("comparison of values of different kinds")),
    })
}

/// The exact order of an integer and a double (None: the double is NaN).
pub fn cmp_int_float(i: i64, f: f64) -> Option<Ordering> {
    if f.is_nan() {
        return None;
    }
    const TWO63: f64 = 9_223_372_036_854_775_808.0;
    if f >= TWO63 {
        return Some(Ordering::Less);
    }
    if f < -TWO63 {
        return Some(Ordering::Greater);
    }
    let t = f.trunc();
    let ti = t as i64; // exact: |t| < 2**63
    match i.cmp(&ti) {
        Ordering::Equal => {
            let frac = f - t;
            Some(if frac > 0.0 { Ordering::Less } else if frac < 0.0 { Ordering::Greater } else { Ordering::Equal })
        }
        o => Some(o),
    }
}

/// Python's `repr` of a scalar.
pub fn repr(v: &Val) -> R<String> {
    Ok(match v {
        Val::Null => "None".to_string(),
        Val::Bool(b) => if *b { "True" } else { "False" }.to_string(),
        Val::Int(i) => i.to_string(),
        Val::Float(f) => float_repr(*f),
        Val::Str(s) => str_repr(s)?,
    })
}

/// Python's `repr(float)`: the shortest digits that read back as the same double, in fixed
/// notation when the decimal point falls within (-4, 16] of them, else with an exponent.
pub fn float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    // How many digits the shortest round trip needs ("-1.2345e-7", "1e16", "0e0"); then those
    // digits correctly rounded from the exact value, as Python's dtoa does (where two candidates of
    // that length round-trip, the shortest-digits search may pick the other one).
    let shortest = format!("{:e}", f);
    let n = shortest.split_once('e').map_or(1, |(m, _)| m.chars().filter(char::is_ascii_digit).count());
    let sci = format!("{:.*e}", n - 1, f);
    let (neg, body) = match sci.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, sci.as_str()),
    };
    let (mant, exp) = body.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("{:e} exponent is an integer");
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    let n = digits.len() as i32;
    let decpt = exp + 1;
    let mut out = String::with_capacity(24);
    if neg {
        out.push('-');
    }
    if decpt > -4 && decpt <= 16 {
        if decpt <= 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-decpt) as usize));
            out.push_str(&digits);
        } else if decpt >= n {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', (decpt - n) as usize));
            out.push_str(".0");
        } else {
            out.push_str(&digits[..decpt as usize]);
            out.push('.');
            out.push_str(&digits[decpt as usize..]);
        }
    } else {
        out.push_str(&digits[..1]);
        if n > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let e = decpt - 1;
        out.push('e');
        out.push(if e < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", e.abs()));
    }
    out
}

/// Python's `repr(str)` for ASCII text (anything else is refused).
fn str_repr(s: &str) -> R<String> {
    if !s.is_ascii() {
        return Err(Unsupported("repr of a non-ASCII string"));
    }
    let quote = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push(quote);
    Ok(out)
}

/// Python's `round(x, digits)`: the decimal correctly rounded (ties to even on the exact binary
/// value), read back as the nearest double.
pub fn round_to(x: f64, digits: usize) -> f64 {
    if !x.is_finite() {
        return x;
    }
    let r: f64 = format!("{:.*}", digits, x).parse().expect("a formatted float parses");
    if r == 0.0 {
        x * 0.0 // a zero keeps x's sign, as Python's round
    } else {
        r
    }
}

const FAST_ROUND_LIMIT: f64 = 1_099_511_627_776.0;

/// `aggregations.round6`: `round(x, 6)` with its fast path (the same double either way).
pub fn round6(x: f64) -> f64 {
    let y = x * 1e6;
    if -FAST_ROUND_LIMIT < y && y < FAST_ROUND_LIMIT {
        let r = if y >= 0.0 { ((y + 0.5) as i64) as f64 } else { -(((0.5 - y) as i64) as f64) };
        let d = y - r;
        if (-0.25..=0.25).contains(&d) {
            return if r != 0.0 { r / 1e6 } else { x * 0.0 };
        }
    }
    round_to(x, 6)
}

/// Python's `a / b` for the average: an int sum over 2**53 is refused (Python divides the exact
/// integers; the doubles could round first).
pub fn true_div(a: &Val, n: i64) -> R<f64> {
    match a {
        Val::Int(x) if x.unsigned_abs() <= (1u64 << 53) => Ok(*x as f64 / n as f64),
        Val::Int(_) => Err(Unsupported("average of an integer sum past 2**53")),
        Val::Float(x) => Ok(x / n as f64),
        _ => Err(Unsupported("average of a value that is not a number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_repr_is_pythons() {
        for (f, s) in [(1.0, "1.0"), (1e16, "1e+16"), (1e15, "1000000000000000.0"), (0.0001, "0.0001"),
                       (0.00001, "1e-05"), (-0.0, "-0.0"), (0.0, "0.0"), (123.456, "123.456"),
                       (1.5e-7, "1.5e-07"), (1.2345678901234567e20, "1.2345678901234567e+20"), (0.1, "0.1"),
                       (-1416848264844612.25, "-1416848264844612.2")] {
            assert_eq!(float_repr(f), s, "{f}");
        }
    }

    #[test]
    fn round6_ties_to_even() {
        assert_eq!(round_to(0.0078125, 6), 0.007812);
        assert_eq!(round6(0.1 + 0.2), 0.3);
    }

    #[test]
    fn int_float_order_is_exact() {
        assert_eq!(cmp_int_float(9_007_199_254_740_993, 9_007_199_254_740_992.0), Some(Ordering::Greater));
        assert_eq!(cmp_int_float(1, 1.5), Some(Ordering::Less));
        assert_eq!(cmp_int_float(-1, -1.5), Some(Ordering::Greater));
        assert_eq!(cmp_int_float(2, f64::NAN), None);
    }
}
