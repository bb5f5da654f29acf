//! Decimal text to f32, as `str::parse::<f32>` reads it, through fast-float2 (measured as fast
//! as est's own parser was on the reader's portable path, and faster alone), and the
//! power-of-ten table the vectorised readers share.

/// A finite decimal like `-12.5`, `0.1234567` or `3e-2` as the nearest f32; `None` for text
/// that is not one (or an infinity, or a NaN).
#[inline]
pub fn parse_f32(text: &[u8]) -> Option<f32> {
    fast_float2::parse::<f32, _>(text).ok().filter(|x| x.is_finite())
}

/// `10^-k` for k in 0..23, each exact to the last bit of an f64: the vectorised readers scale
/// a field's digits by one of them and round once.
pub const NEG_POW10: [f64; 23] = [
    1e0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10, 1e-11, 1e-12, 1e-13, 1e-14, 1e-15, 1e-16, 1e-17,
    1e-18, 1e-19, 1e-20, 1e-21, 1e-22,
];

#[cfg(test)]
mod tests {
    use super::parse_f32;

    /// Every text the standard parser reads as a finite f32, bit for bit, and nothing else.
    #[test]
    fn parses_like_the_standard_library() {
        let mut rng = crate::rng::Rng::new(9);
        let same = |text: &str| {
            let std = text.parse::<f32>().ok().filter(|x| x.is_finite());
            assert_eq!(parse_f32(text.as_bytes()).map(f32::to_bits), std.map(f32::to_bits), "{text}");
        };
        for _ in 0..200_000 {
            let x = (rng.normal() * 10f64.powi((rng.below(9) as i32) - 4)) as f32;
            for text in [
                format!("{x:.7}"),
                format!("{x}"),
                format!("{x:e}"),
                format!("{:.3}", x * 1000.0),
                format!("{:.9}", x * 100.0),
            ] {
                same(&text);
            }
        }
        for text in [
            "0",
            "-0.0",
            "+1.5",
            "1e3",
            "2.5E-2",
            ".5",
            "5.",
            "0.0000001234567",
            "123456789012345",
            // A tie between two f32s, which rounds to even.
            "12345678.5",
            "",
            "-",
            "1e",
            "abc",
            "1.2.3",
            "1 ",
            " 1",
            "nan",
            "inf",
            "-infinity",
            "1e400",
            "12345678901234567890",
            "0.00000000000000000000001234567890123456789",
        ] {
            same(text);
        }
    }
}
