//! `ts` strings: RFC 3339 date-times with an offset, as `schemas.events.TS_PATTERN` accepts them
//! (years 2001..=2200, real calendar dates, hours 00-23, no leap second, any number of fraction
//! digits, `T`, `t` or a space between date and time), to epoch milliseconds like
//! `schemas.events.rfc3339_ms`: the fraction's first three digits, the offset applied.

/// The most characters a `ts` string may have (`schemas.events.MAX_TS_CHARS`).
pub const MAX_TS_CHARS: usize = 64;

fn digits(b: &[u8], at: usize, n: usize) -> Option<i64> {
    let mut v = 0i64;
    for &c in b.get(at..at + n)? {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(c - b'0');
    }
    Some(v)
}

fn expect(b: &[u8], at: usize, c: u8) -> Option<()> {
    (b.get(at) == Some(&c)).then_some(())
}

fn leap(y: i64) -> bool {
    // TS_PATTERN's leap years are 2004..2196 divisible by 4 but not by 100 (2100 and 2200 are not)
    y % 4 == 0 && y % 100 != 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ => if leap(y) { 29 } else { 28 },
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Epoch milliseconds of a `ts` string the models accept, None for any other.
pub fn rfc3339_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if !s.is_ascii() || b.len() > MAX_TS_CHARS {
        return None;
    }
    let y = digits(b, 0, 4)?;
    expect(b, 4, b'-')?;
    let mo = digits(b, 5, 2)?;
    expect(b, 7, b'-')?;
    let d = digits(b, 8, 2)?;
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let h = digits(b, 11, 2)?;
    expect(b, 13, b':')?;
    let mi = digits(b, 14, 2)?;
    expect(b, 16, b':')?;
    let sec = digits(b, 17, 2)?;
    let mut i = 19;
    let mut frac_ms = 0i64;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        for k in 0..3 {
            frac_ms = frac_ms * 10 + if start + k < i { i64::from(b[start + k] - b'0') } else { 0 };
        }
    }
    let offset_s = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) if i + 6 == b.len() => {
            let oh = digits(b, i + 1, 2)?;
            expect(b, i + 3, b':')?;
            let om = digits(b, i + 4, 2)?;
            if oh > 23 || om > 59 {
                return None;
            }
            let off = oh * 3600 + om * 60;
            if sign == b'+' { -off } else { off }
        }
        _ => return None,
    };
    if !(2001..=2200).contains(&y) || !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo)
        || h > 23 || mi > 59 || sec > 59
    {
        return None;
    }
    let seconds = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec + offset_s;
    Some(seconds * 1000 + frac_ms)
}

#[cfg(test)]
mod tests {
    use super::rfc3339_ms;

    #[test]
    fn known_instants() {
        assert_eq!(rfc3339_ms("2026-11-30T10:00:00Z"), Some(1_796_032_800_000));
        assert_eq!(rfc3339_ms("2026-12-07T19:47:15.741+01:00"), Some(1_796_669_235_741));
        assert_eq!(rfc3339_ms("2004-02-29 00:00:00.5z"), Some(1_078_012_800_500));
        assert_eq!(rfc3339_ms("2100-02-29T00:00:00Z"), None);
        assert_eq!(rfc3339_ms("2026-11-30T10:00:00"), None);
        assert_eq!(rfc3339_ms("2026-11-30T24:00:00Z"), None);
        assert_eq!(rfc3339_ms("2000-01-01T00:00:00Z"), None);
        assert_eq!(rfc3339_ms("2026-11-30T10:00:00.Z"), None);
    }
}
