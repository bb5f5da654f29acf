//! Plain decimals read sixteen bytes at a time with SSE4.1, where the processor has it. The
//! token `Sse41` exists only on a processor that has it, which makes its methods safe.

use super::kernel::Lines;
#[cfg(target_arch = "x86_64")]
use super::number::NEG_POW10;

/// Proof that the processor has SSE4.1 and POPCNT: only `detect` makes one.
#[derive(Clone, Copy, Debug)]
pub struct Sse41(Private);

#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy, Debug)]
struct Private;

/// No value: elsewhere there is no token, and its methods cannot be called.
#[cfg(not(target_arch = "x86_64"))]
#[derive(Clone, Copy, Debug)]
enum Private {}

impl Sse41 {
    /// The token, where the processor has what the functions here need.
    pub fn detect() -> Option<Sse41> {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("sse4.1") && std::is_x86_feature_detected!("popcnt") {
            return Some(Sse41(Private));
        }
        None
    }

    /// The value of `buffer[start..end]` when it is a plain decimal (`-1.25`, `37`, `.5`: at
    /// most 15 characters after the sign, no exponent, no `+`), as `parse_f32` reads it;
    /// `None` for anything else, which the general way then reads. Reads the 16 bytes from
    /// `start`, so `buffer` must have them.
    #[inline]
    pub fn number(self, buffer: &[u8], start: usize, end: usize) -> Option<f32> {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the token says the processor has SSE4.1 and POPCNT.
        return unsafe { number_sse(buffer, start, end) };
        #[cfg(not(target_arch = "x86_64"))]
        match self.0 {}
    }

    /// `Lines::rows` compiled for SSE4.1, so that `number` inlines into it.
    pub fn rows<L: Lines>(
        self,
        row: &L,
        buffer: &[u8],
        pos: usize,
        lines: usize,
        piece: &mut L::Piece<'_>,
    ) -> Option<usize> {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the token says the processor has SSE4.1 and POPCNT.
        return unsafe { rows_sse(row, buffer, pos, lines, piece) };
        #[cfg(not(target_arch = "x86_64"))]
        match self.0 {}
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.1,popcnt")]
fn rows_sse<L: Lines>(row: &L, buffer: &[u8], pos: usize, lines: usize, piece: &mut L::Piece<'_>) -> Option<usize> {
    row.rows(buffer, pos, lines, piece)
}

/// For a field `len` bytes long (a sign if `signed`, then digits and at most one point)
/// with its point at `point` (16: none), the shuffle that right-aligns its digits in sixteen
/// lanes, zeros in front.
#[cfg(target_arch = "x86_64")]
const SHUFFLES: [[[[u8; 16]; 17]; 17]; 2] = {
    let mut table = [[[[0x80u8; 16]; 17]; 17]; 2];
    let mut signed = 0;
    while signed < 2 {
        let mut len = signed;
        while len < 17 {
            let mut point = 0;
            while point < 17 {
                let count = len - signed - if point >= signed && point < len { 1 } else { 0 };
                let (mut src, mut k) = (signed, 0);
                while src < len {
                    if src != point {
                        table[signed][len][point][16 - count + k] = src as u8;
                        k += 1;
                    }
                    src += 1;
                }
                point += 1;
            }
            len += 1;
        }
        signed += 1;
    }
    table
};

/// `Sse41::number`.
///
/// # Safety
/// The processor has SSE4.1 and POPCNT.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.1,popcnt")]
#[inline]
unsafe fn number_sse(buffer: &[u8], start: usize, end: usize) -> Option<f32> {
    use std::arch::x86_64::*;
    // The sign is read beside the digits, not before them, so the load waits on nothing
    // but where the field starts.
    let len = end.checked_sub(start)?;
    if len == 0 || len > 16 {
        return None;
    }
    let bytes = buffer.get(start..start + 16)?;
    // SAFETY: a 16-byte load from a 16-byte slice.
    let v = unsafe { _mm_loadu_si128(bytes.as_ptr().cast()) };
    let negative = bytes[0] == b'-';
    let signed = usize::from(negative);
    let d = _mm_sub_epi8(v, _mm_set1_epi8(b'0' as i8));
    let digits = _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(d, _mm_set1_epi8(9)), d)) as u32;
    let points = _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'.' as i8))) as u32;
    let field = ((1u32 << len) - 1) & !(signed as u32);
    if (digits | points) & field != field {
        return None;
    }
    let points = points & field;
    let (point, fraction) = match points.count_ones() {
        0 => (16, 0),
        1 => {
            let k = points.trailing_zeros() as usize;
            (k, len - k - 1)
        }
        _ => return None,
    };
    let count = len - signed - usize::from(point < 16);
    if count == 0 || count > 15 {
        return None;
    }
    // SAFETY: a 16-byte load from a 16-byte array.
    let order = unsafe { _mm_loadu_si128(SHUFFLES[signed][len][point].as_ptr().cast()) };
    let aligned = _mm_shuffle_epi8(d, order);
    // Pairs, then fours, then eights of digits, each step one multiply-add.
    let pairs = _mm_maddubs_epi16(aligned, _mm_setr_epi8(10, 1, 10, 1, 10, 1, 10, 1, 10, 1, 10, 1, 10, 1, 10, 1));
    let fours = _mm_madd_epi16(pairs, _mm_setr_epi16(100, 1, 100, 1, 100, 1, 100, 1));
    let fours = _mm_packus_epi32(fours, fours);
    let eights = _mm_madd_epi16(fours, _mm_setr_epi16(10_000, 1, 10_000, 1, 10_000, 1, 10_000, 1));
    // The two halves (below 10^8 each) to f64, joined exactly (below 10^15), times 10^-k: at
    // most two roundings, within 2 f64 ulps of the exact value. f64 keeps 29 more bits than
    // f32, so narrowing rounds correctly unless the product lies within a few ulps of a
    // midpoint between two f32s (low 29 bits near 0x1000_0000): that field is left to the
    // general way. Then narrowed and signed.
    let halves = _mm_cvtepi32_pd(eights);
    let mantissa = _mm_add_sd(_mm_mul_sd(halves, _mm_set_sd(1e8)), _mm_unpackhi_pd(halves, halves));
    let r = _mm_mul_sd(mantissa, _mm_set_sd(NEG_POW10[fraction]));
    if (_mm_cvtsi128_si64(_mm_castpd_si128(r)) as u32 & 0x1FFF_FFFF).wrapping_sub(0x1000_0000 - 8) <= 16 {
        return None;
    }
    let x = _mm_cvtss_f32(_mm_cvtsd_ss(_mm_setzero_ps(), r));
    Some(f32::from_bits(x.to_bits() | u32::from(negative) << 31))
}

#[cfg(test)]
mod tests {
    use crate::data::fast::parse_f32;

    /// The vectorised scan gives what the scalar one gives, or leaves the field to it.
    #[test]
    fn sixteen_bytes_at_once() {
        let Some(sse) = super::Sse41::detect() else { return };
        let mut rng = crate::rng::Rng::new(4);
        let mut fields: Vec<String> = [
            "0",
            "-0",
            "5.",
            ".5",
            "-.5",
            "-",
            ".",
            "",
            "1.2.3",
            "+1.5",
            "1e5",
            "2.5E-3",
            "123456789012345",
            "1234567890123456",
            "0.000000000000001",
            "-99999999.9999999",
            "12345678.5",
            "NA",
            "1 ",
            "--1",
        ]
        .map(String::from)
        .to_vec();
        for _ in 0..100_000 {
            let x = rng.normal() * 10f64.powi(rng.below(12) as i32 - 6);
            let digits = rng.below(12) as usize;
            fields.push(format!("{x:.digits$}"));
        }
        let mut checked = 0;
        for field in &fields {
            // Whatever follows the field must not change what it reads as.
            for (before, after) in [("", ","), ("7,", "\n"), ("", "5.5"), ("-", "x")] {
                let buffer = format!("{before}{field}{after}{}", "9".repeat(20));
                let (start, end) = (before.len(), before.len() + field.len());
                if let Some(fast) = sse.number(buffer.as_bytes(), start, end) {
                    let slow = parse_f32(field.as_bytes()).unwrap();
                    assert_eq!(fast.to_bits(), slow.to_bits(), "{buffer}");
                    checked += 1;
                }
            }
        }
        assert!(checked > 350_000, "the vectorised scan took only {checked}");
    }
}
