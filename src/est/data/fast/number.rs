//! Decimal text to f32, correctly rounded: digits eight bytes at a time, and one f64
//! multiplication where that is provably exact enough; anything else is left to the standard
//! parser. The vectorised readers share its power-of-ten table and midpoint test.

/// A number starting at `line[start]`: its value and where it ends, at the first byte that
/// cannot continue it (the caller judges that byte). `None` when no number starts there or it
/// has more than 15 significant digits; the general way then reads the field. The digits are
/// read eight bytes at a time from the line itself, so a field's neighbours pad the window.
pub fn scan_number(line: &[u8], start: usize) -> Option<(f32, usize)> {
    let mut i = start;
    let negative = match line.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let (mut mantissa, whole) = run_of_digits(line, &mut i)?;
    let mut exponent = 0i32;
    let mut count = whole;
    if line.get(i) == Some(&b'.') {
        i += 1;
        let (fraction, n) = run_of_digits(line, &mut i)?;
        mantissa = mantissa.checked_mul(*POW10_U64.get(n)?)?.checked_add(fraction)?;
        exponent = -(n as i32);
        count += n;
    }
    if count == 0 {
        return None;
    }
    if let Some(b'e' | b'E') = line.get(i) {
        i += 1;
        let sign = match line.get(i) {
            Some(b'-') => {
                i += 1;
                -1
            }
            Some(b'+') => {
                i += 1;
                1
            }
            _ => 1,
        };
        let (e, n) = run_of_digits(line, &mut i)?;
        if n == 0 || e > 1000 {
            return None;
        }
        exponent += sign * e as i32;
    }
    Some((to_f32(negative, mantissa, exponent)?, i))
}

/// The digits at `line[*i..]` as a number, and how many there were (at most 16, else `None`).
#[inline]
fn run_of_digits(line: &[u8], i: &mut usize) -> Option<(u64, usize)> {
    let mut value: u64 = 0;
    let mut count = 0;
    while let Some(window) = line.get(*i..*i + 8) {
        let chunk = u64::from_le_bytes(window.try_into().ok()?);
        let k = leading_digits(chunk);
        if k > 0 {
            value = value.checked_mul(POW10_U64[k])?.checked_add(first_digits(chunk, k))?;
            count += k;
            *i += k;
        }
        if k < 8 {
            return (count <= 16).then_some((value, count));
        }
        if count > 16 {
            return None;
        }
    }
    while let Some(&b) = line.get(*i) {
        let d = b.wrapping_sub(b'0');
        if d >= 10 {
            break;
        }
        value = value.checked_mul(10)?.checked_add(d as u64)?;
        count += 1;
        *i += 1;
    }
    (count <= 16).then_some((value, count))
}

/// How many of the eight bytes, from the first, are ASCII digits.
#[inline]
fn leading_digits(chunk: u64) -> usize {
    // Per byte: zero when the high nibble is 3 and adding 6 keeps it 3, i.e. '0'..='9'. Adding
    // 6 carries into the next byte only from bytes 0xFA and above, which UTF-8 never has.
    let high = (chunk & 0xF0F0_F0F0_F0F0_F0F0) ^ 0x3030_3030_3030_3030;
    let shifted = (chunk.wrapping_add(0x0606_0606_0606_0606) & 0xF0F0_F0F0_F0F0_F0F0) ^ 0x3030_3030_3030_3030;
    ((high | shifted).trailing_zeros() / 8) as usize
}

/// The value of the first `k` (1 to 8) digits of `chunk`.
#[inline]
fn first_digits(chunk: u64, k: usize) -> u64 {
    // Left-pad with '0's to eight digits, then combine them pairwise.
    let padded = if k == 8 { chunk } else { (chunk << ((8 - k) * 8)) | (0x3030_3030_3030_3030u64 >> (k * 8)) };
    let v = padded - 0x3030_3030_3030_3030;
    let v = (v * 10) + (v >> 8);
    let v = ((v & 0x0000_00FF_0000_00FF).wrapping_mul(100 + (1_000_000 << 32))
        + ((v >> 16) & 0x0000_00FF_0000_00FF).wrapping_mul(1 + (10_000 << 32)))
        >> 32;
    v & 0xFFFF_FFFF
}

const POW10_U64: [u64; 17] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
    10_000_000_000,
    100_000_000_000,
    1_000_000_000_000,
    10_000_000_000_000,
    100_000_000_000_000,
    1_000_000_000_000_000,
    10_000_000_000_000_000,
];

pub const NEG_POW10: [f64; 23] = [
    1e0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10, 1e-11, 1e-12, 1e-13, 1e-14, 1e-15, 1e-16, 1e-17,
    1e-18, 1e-19, 1e-20, 1e-21, 1e-22,
];

const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20,
    1e21, 1e22,
];

/// A decimal like `-12.5`, `0.1234567` or `3e-2` as the nearest f32, when that can be known
/// cheaply (see `to_f32`), so it equals `str::parse::<f32>`; `None` sends the text to the
/// standard parser.
pub fn parse_f32(text: &[u8]) -> Option<f32> {
    let (value, end) = scan_number(text, 0)?;
    (end == text.len()).then_some(value)
}

/// `±mantissa × 10^exponent` as the nearest f32, when that can be known cheaply; `None` sends
/// the text to the standard parser. The value is computed in f64 with one multiplication by a
/// power of ten, three roundings at most (the mantissa above 2^53, the power below 1, the
/// product), so within 3 f64 ulps of the exact value. f64 keeps 29 more bits than f32, so
/// narrowing rounds correctly unless the result lies within a few ulps of a midpoint between
/// two f32s: that case is left to the standard parser. No branch depends on the digits.
#[inline]
fn to_f32(negative: bool, mantissa: u64, exponent: i32) -> Option<f32> {
    if mantissa >= 1_000_000_000_000_000 || !(-22..=22).contains(&exponent) {
        return None;
    }
    let m = mantissa as i64 as f64;
    let r = if exponent >= 0 { m * POW10[exponent as usize] } else { m * NEG_POW10[(-exponent) as usize] };
    // Within 8 ulps of a midpoint (low 29 bits 0x1000_0000): too close to call.
    if (r.to_bits() & 0x1FFF_FFFF).wrapping_sub(0x1000_0000 - 8) <= 16 {
        return None;
    }
    Some(f32::from_bits((r as f32).to_bits() | u32::from(negative) << 31))
}

#[cfg(test)]
mod tests {
    use super::parse_f32;

    #[test]
    fn eight_digits_at_once() {
        let chunk = |s: &[u8]| u64::from_le_bytes(s.try_into().unwrap());
        assert_eq!(super::leading_digits(chunk(b"01234567")), 8);
        assert_eq!(super::leading_digits(chunk(b"0123.567")), 4);
        assert_eq!(super::leading_digits(chunk(b"0123456:")), 7);
        assert_eq!(super::leading_digits(chunk(b"/1234567")), 0);
        assert_eq!(super::first_digits(chunk(b"01234567"), 8), 1_234_567);
        assert_eq!(super::first_digits(chunk(b"99999999"), 8), 99_999_999);
        assert_eq!(super::first_digits(chunk(b"4271,5.1"), 4), 4271);
        assert_eq!(super::first_digits(chunk(b"7,xxxxxx"), 1), 7);
        assert_eq!(super::scan_number(b"-12.25,3", 0), Some((-12.25, 6)));
        assert_eq!(super::scan_number(b"1,2", 2), Some((2.0, 3)));
        assert_eq!(super::scan_number(b"1 ,2", 0), Some((1.0, 1)));
        assert_eq!(super::scan_number(b" 1,2", 0), None);
    }

    #[test]
    fn parses_like_the_standard_library() {
        let mut rng = crate::rng::Rng::new(9);
        let mut checked = 0;
        for _ in 0..200_000 {
            let x = (rng.normal() * 10f64.powi((rng.below(9) as i32) - 4)) as f32;
            for text in [
                format!("{x:.7}"),
                format!("{x}"),
                format!("{x:e}"),
                format!("{:.3}", x * 1000.0),
                format!("{:.9}", x * 100.0),
            ] {
                if let Some(fast) = parse_f32(text.as_bytes()) {
                    assert_eq!(fast.to_bits(), text.parse::<f32>().unwrap().to_bits(), "{text}");
                    checked += 1;
                }
            }
        }
        assert!(checked > 800_000, "the fast path took only {checked} of 1000000");
        for text in ["0", "-0.0", "+1.5", "1e3", "2.5E-2", ".5", "5.", "0.0000001234567", "123456789012345"] {
            assert_eq!(parse_f32(text.as_bytes()), Some(text.parse::<f32>().unwrap()), "{text}");
        }
        // A tie between two f32s: the fast path declines rather than guess.
        assert_eq!(parse_f32(b"12345678.5"), None);
        for text in [
            "",
            "-",
            "1e",
            "abc",
            "1.2.3",
            "nan",
            "inf",
            "1e400",
            "12345678901234567890",
            "0.00000000000000000000001234567890123456789",
        ] {
            assert_eq!(parse_f32(text.as_bytes()), None, "{text}");
        }
    }
}
