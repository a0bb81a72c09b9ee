//! Number parsing for G-code words, on bytes, without allocation.
//!
//! G-code numbers are plain decimals (`-12.345`, `.5`, `+3`); there is no exponent because `E` is
//! the extruder axis. The fast path keeps up to 19 significant digits in an integer and divides once
//! by an exact power of ten, which is exact for the few decimals slicers write.

/// Powers of ten that are exact in an `f64`.
pub(crate) const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Parses a decimal at the start of `s`. Returns the value and the number of bytes consumed, or
/// `None` when `s` does not start with a number.
// Always inlined: its 24-byte result otherwise goes through memory, and the G-code hot loop
// calls it for every number.
#[inline(always)]
pub(crate) fn parse_decimal(s: &[u8]) -> Option<(f64, usize)> {
    let mut i = 0;
    let neg = match s.first() {
        Some(b'-') => {
            i = 1;
            true
        }
        Some(b'+') => {
            i = 1;
            false
        }
        _ => false,
    };
    let start = i;
    let (mut i, mut mantissa) = digits(s, start, 0);
    let int_digits = i - start;
    let mut exp: i32 = 0; // power of ten to apply
    let mut frac_digits = 0;
    if s.get(i) == Some(&b'.') {
        i += 1;
        let frac_start = i;
        (i, mantissa) = digits(s, i, mantissa);
        frac_digits = i - frac_start;
        exp = -(frac_digits as i32);
    }
    if int_digits + frac_digits == 0 {
        return None;
    }
    if int_digits + frac_digits > 18 {
        // Too many digits for the integer fast path (rare): let the standard library do it.
        let text = std::str::from_utf8(&s[start..i]).ok()?;
        let v: f64 = text.parse().ok()?;
        return Some((if neg { -v } else { v }, i));
    }
    #[allow(clippy::cast_precision_loss)]
    let m = mantissa as f64;
    let v = if exp == 0 {
        m
    } else if (-22..0).contains(&exp) {
        m / POW10[exp.unsigned_abs() as usize]
    } else if (1..=22).contains(&exp) {
        m * POW10[exp as usize]
    } else {
        m * 10f64.powi(exp)
    };
    Some((if neg { -v } else { v }, i))
}

/// Appends the digits from `s[i]` on to `mantissa` (wrapping: the caller falls back beyond 18
/// digits); returns the index after them and the new mantissa.
#[inline(always)]
fn digits(s: &[u8], mut i: usize, mut mantissa: u64) -> (usize, u64) {
    while let Some(&c) = s.get(i) {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(d));
        i += 1;
    }
    (i, mantissa)
}

/// Parses a whole trimmed string as a number (for metadata values).
pub(crate) fn parse_f64(s: &str) -> Option<f64> {
    let t = s.trim();
    let (v, n) = parse_decimal(t.as_bytes())?;
    (n == t.len()).then_some(v)
}

/// Parses the leading number of a string, ignoring a unit or anything after it (`"0.4mm"`, `"215,215"`).
pub(crate) fn parse_leading_f64(s: &str) -> Option<f64> {
    parse_decimal(s.trim().as_bytes()).map(|(v, _)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_gcode_numbers() {
        assert_eq!(parse_decimal(b"12.5 Y"), Some((12.5, 4)));
        assert_eq!(parse_decimal(b"-.25"), Some((-0.25, 4)));
        assert_eq!(parse_decimal(b"+3"), Some((3.0, 2)));
        assert_eq!(parse_decimal(b"0.00100"), Some((0.001, 7)));
        assert_eq!(parse_decimal(b"7."), Some((7.0, 2)));
        assert_eq!(parse_decimal(b"-"), None);
        assert_eq!(parse_decimal(b"."), None);
        assert_eq!(parse_decimal(b"abc"), None);
        let (v, _) = parse_decimal(b"123456789012345678901234.5").unwrap();
        assert!((v - 1.2345678901234568e23).abs() / v < 1e-12);
        assert_eq!(parse_f64(" 0.4 "), Some(0.4));
        assert_eq!(parse_f64("0.4mm"), None);
        assert_eq!(parse_leading_f64("0.4mm"), Some(0.4));
    }

    #[test]
    fn matches_std_on_slicer_style_numbers() {
        for s in [
            "141.357",
            "-3",
            "0.03512",
            "1185.80407",
            "99999.99999",
            "0.1",
        ] {
            let (v, _) = parse_decimal(s.as_bytes()).unwrap();
            assert_eq!(v, s.parse::<f64>().unwrap(), "{s}");
        }
    }
}
