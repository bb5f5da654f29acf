//! Eight plain decimals at a time with AVX-512, where the processor has it: each field's last
//! sixteen bytes fill a quarter of one of two registers, and every step after the loads works
//! on all eight at once; and a block's lines counted 64 bytes at a time. The token `Avx512`
//! exists only on a processor that has it, which makes its methods safe.

use super::kernel::Lines;
#[cfg(target_arch = "x86_64")]
use super::number::NEG_POW10;

/// Proof that the processor has the AVX-512 subsets the functions here use, and SSE4.1: only
/// `detect` makes one.
#[derive(Clone, Copy, Debug)]
pub struct Avx512(Private);

#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy, Debug)]
struct Private;

/// No value: elsewhere there is no token, and its methods cannot be called.
#[cfg(not(target_arch = "x86_64"))]
#[derive(Clone, Copy, Debug)]
enum Private {}

impl Avx512 {
    /// The token, where the processor has what the functions here need.
    pub fn detect() -> Option<Avx512> {
        #[cfg(target_arch = "x86_64")]
        if super::sse41::Sse41::detect().is_some()
            && std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vl")
            && std::is_x86_feature_detected!("avx512dq")
            && std::is_x86_feature_detected!("avx512vbmi")
            && std::is_x86_feature_detected!("avx512bitalg")
        {
            return Some(Avx512(Private));
        }
        None
    }

    /// How many newlines `bytes` holds, and whether it holds a quote.
    pub fn newlines(self, bytes: &[u8]) -> (usize, bool) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the token says the processor has AVX-512F and BW.
        return unsafe { newlines_avx512(bytes) };
        #[cfg(not(target_arch = "x86_64"))]
        match self.0 {}
    }

    /// `Lines::rows` compiled for AVX-512, so that `eight` inlines into it.
    pub fn rows<L: Lines>(
        self,
        row: &L,
        buffer: &[u8],
        pos: usize,
        lines: usize,
        piece: &mut L::Piece<'_>,
    ) -> Option<usize> {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the token says the processor has every feature `rows_avx512` is compiled for.
        return unsafe { rows_avx512(row, buffer, pos, lines, piece) };
        #[cfg(not(target_arch = "x86_64"))]
        match self.0 {}
    }

    /// Reads the eight fields that end at `ends` into `out` when each is a plain decimal of at
    /// most 15 bytes, as `Sse41::number` reads it; false, and `out` untouched, when any is not
    /// or when an end lies outside `16..=buffer.len()` (each field's 16 bytes are loaded). The
    /// fields need not be next to each other.
    #[inline(always)]
    pub fn eight(self, buffer: &[u8], ends: [usize; 8], delimiter: u8, out: &mut [f32; 8]) -> bool {
        let len = buffer.len();
        if !ends.iter().fold(true, |ok, &end| ok & (end >= 16) & (end <= len)) {
            return false;
        }
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the token says the processor has the features; each load of 16 bytes before
        // an end lies in `buffer`, as checked above.
        return unsafe { eight_avx512(buffer, ends, delimiter, out) };
        #[cfg(not(target_arch = "x86_64"))]
        match self.0 {}
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.1,popcnt,avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi,avx512bitalg")]
fn rows_avx512<L: Lines>(row: &L, buffer: &[u8], pos: usize, lines: usize, piece: &mut L::Piece<'_>) -> Option<usize> {
    row.rows(buffer, pos, lines, piece)
}

/// `Avx512::newlines`.
///
/// # Safety
/// The processor has AVX-512F, AVX-512BW and POPCNT.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,popcnt")]
unsafe fn newlines_avx512(bytes: &[u8]) -> (usize, bool) {
    use std::arch::x86_64::*;
    let (newline, quote) = (_mm512_set1_epi8(b'\n' as i8), _mm512_set1_epi8(b'"' as i8));
    let (mut count, mut quotes) = (0u64, 0u64);
    let mut chunks = bytes.chunks_exact(64);
    for chunk in &mut chunks {
        // SAFETY: a 64-byte load from a 64-byte chunk.
        let v = unsafe { _mm512_loadu_si512(chunk.as_ptr().cast()) };
        count += u64::from(_mm512_cmpeq_epi8_mask(v, newline).count_ones());
        quotes |= _mm512_cmpeq_epi8_mask(v, quote);
    }
    let rest = chunks.remainder();
    // SAFETY: the masked load reads only the bytes of `rest`.
    let v = unsafe { _mm512_maskz_loadu_epi8((1u64 << rest.len()) - 1, rest.as_ptr().cast()) };
    let keep = (1u64 << rest.len()) - 1;
    count += u64::from((_mm512_cmpeq_epi8_mask(v, newline) & keep).count_ones());
    quotes |= _mm512_cmpeq_epi8_mask(v, quote) & keep;
    (count as usize, quotes != 0)
}

/// `Avx512::eight`.
///
/// # Safety
/// The processor has the features enabled here; `16 <= ends[j] <= buffer.len()` for each j.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.1,popcnt,avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi,avx512bitalg")]
#[inline]
unsafe fn eight_avx512(buffer: &[u8], ends: [usize; 8], delimiter: u8, out: &mut [f32; 8]) -> bool {
    use std::arch::x86_64::*;
    // Lane j of a register: the 16 bytes before field j's end, so the field lies at the
    // lane's top, the separator before it below. Fields 0-3 fill one register, 4-7 another.
    // SAFETY: `16 <= ends[j] <= buffer.len()` (the caller's promise): the 16 bytes lie in `buffer`.
    let at = |j: usize| unsafe { _mm_loadu_si128(buffer.as_ptr().add(ends[j] - 16).cast()) };
    let four = |j: usize| {
        let low = _mm256_inserti128_si256(_mm256_castsi128_si256(at(j)), at(j + 1), 1);
        let high = _mm256_inserti128_si256(_mm256_castsi128_si256(at(j + 2)), at(j + 3), 1);
        _mm512_inserti64x4(_mm512_castsi256_si512(low), high, 1)
    };
    let (va, vb) = (four(0), four(4));
    let byte = |b: u8| _mm512_set1_epi8(b as i8);
    let (da, db) = (_mm512_sub_epi8(va, byte(b'0')), _mm512_sub_epi8(vb, byte(b'0')));
    // The eight 16-bit masks side by side in 16-bit lanes, so each step serves all eight.
    let lanes = |a: u64, b: u64| _mm_set_epi64x(b as i64, a as i64);
    let separators = |v: __m512i| _mm512_cmpeq_epi8_mask(v, byte(delimiter)) | _mm512_cmpeq_epi8_mask(v, byte(b'\n'));
    let separators = lanes(separators(va), separators(vb));
    let digits = lanes(_mm512_cmple_epu8_mask(da, byte(9)), _mm512_cmple_epu8_mask(db, byte(9)));
    let points = lanes(_mm512_cmpeq_epi8_mask(va, byte(b'.')), _mm512_cmpeq_epi8_mask(vb, byte(b'.')));
    let minus = lanes(_mm512_cmpeq_epi8_mask(va, byte(b'-')), _mm512_cmpeq_epi8_mask(vb, byte(b'-')));
    // Each lane's bits at and below its highest set bit.
    let below = |x: __m128i| {
        let x = _mm_or_si128(x, _mm_srli_epi16(x, 1));
        let x = _mm_or_si128(x, _mm_srli_epi16(x, 2));
        let x = _mm_or_si128(x, _mm_srli_epi16(x, 4));
        _mm_or_si128(x, _mm_srli_epi16(x, 8))
    };
    let separators = below(separators);
    // The field: the bytes above the last separator.
    let field = _mm_andnot_si128(separators, _mm_set1_epi16(-1));
    let digits = _mm_and_si128(digits, field);
    let points = _mm_and_si128(points, field);
    let lowest = _mm_andnot_si128(_mm_slli_epi16(field, 1), field);
    let sign = _mm_and_si128(_mm_and_si128(minus, field), lowest);
    // Anything but digits, one point and a leading minus; no digit; no separator in the
    // lane (a field longer than 15 bytes).
    let wrong = _mm_andnot_si128(_mm_or_si128(_mm_or_si128(digits, points), sign), field);
    let two_points = _mm_and_si128(points, _mm_sub_epi16(points, _mm_set1_epi16(1)));
    let zero = _mm_setzero_si128();
    let empty = _mm_or_si128(_mm_cmpeq_epi16(digits, zero), _mm_cmpeq_epi16(separators, zero));
    if _mm_test_all_zeros(_mm_or_si128(_mm_or_si128(wrong, two_points), empty), _mm_set1_epi16(-1)) == 0 {
        return false;
    }

    // Where each point is, counted from the lane's bottom, plus one (0: none).
    let point = _mm_popcnt_epi16(below(points));
    // Digits below a point move up one byte over it; bytes that are not digits become 0.
    const SPREAD: [u8; 64] = {
        let mut table = [0u8; 64];
        let mut i = 0;
        while i < 64 {
            table[i] = (i / 16 * 2) as u8;
            i += 1;
        }
        table
    };
    const IOTA: [u8; 64] = {
        let mut table = [0u8; 64];
        let mut i = 0;
        while i < 64 {
            table[i] = (i % 16) as u8;
            i += 1;
        }
        table
    };
    // SAFETY: 64-byte loads from 64-byte arrays.
    let (spread, iota) =
        unsafe { (_mm512_loadu_si512(SPREAD.as_ptr().cast()), _mm512_loadu_si512(IOTA.as_ptr().cast())) };
    let digit_bytes = _mm_cvtsi128_si64(digits) as u64;
    let quarters = |d: __m512i, point: __m128i, digits: u64| {
        let point_bytes = _mm512_permutexvar_epi8(spread, _mm512_castsi128_si512(point));
        let under = _mm512_cmpgt_epu8_mask(point_bytes, iota);
        let order = _mm512_mask_sub_epi8(iota, under, iota, byte(1));
        let aligned = _mm512_shuffle_epi8(_mm512_maskz_mov_epi8(digits, d), order);
        // As `Sse41::number`: pairs, then fours of digits.
        let pairs = _mm512_maddubs_epi16(aligned, _mm512_set1_epi16(0x010A));
        _mm512_madd_epi16(pairs, _mm512_set1_epi32(0x0001_0064))
    };
    let fa = quarters(da, point, digit_bytes);
    let fb = quarters(db, _mm_unpackhi_epi64(point, point), _mm_extract_epi64::<1>(digits) as u64);
    // Per 128-bit lane j: the eights of fields j and 4 + j, joined exactly in 64 bits.
    let eights = _mm512_madd_epi16(_mm512_packus_epi32(fa, fb), _mm512_set1_epi32(0x0001_2710));
    let mantissa =
        _mm512_add_epi64(_mm512_mul_epu32(eights, _mm512_set1_epi64(100_000_000)), _mm512_srli_epi64(eights, 32));
    let m = _mm512_cvtepu64_pd(mantissa);
    // So the values come in the order 0, 4, 1, 5, 2, 6, 3, 7.
    let interleave =
        |x: __m128i| _mm_shuffle_epi8(x, _mm_setr_epi8(0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, 6, 7, 14, 15));
    // Times 10^-(digits after the point), one rounding, as `Sse41::number`.
    let fraction = _mm512_and_si512(
        _mm512_sub_epi64(_mm512_set1_epi64(16), _mm512_cvtepu16_epi64(interleave(point))),
        _mm512_set1_epi64(15),
    );
    // SAFETY: 64-byte loads from the 23-entry table.
    let (p0, p1) = unsafe { (_mm512_loadu_pd(NEG_POW10.as_ptr()), _mm512_loadu_pd(NEG_POW10.as_ptr().add(8))) };
    let r = _mm512_mul_pd(m, _mm512_permutex2var_pd(p0, fraction, p1));
    let bits = _mm512_and_si512(_mm512_castpd_si512(r), _mm512_set1_epi64(0x1FFF_FFFF));
    let near =
        _mm512_cmple_epu64_mask(_mm512_sub_epi64(bits, _mm512_set1_epi64(0x1000_0000 - 8)), _mm512_set1_epi64(16));
    if near != 0 {
        return false;
    }
    let x = _mm256_castps_si256(_mm512_cvtpd_ps(r));
    let negative = _mm256_cmpneq_epu32_mask(_mm256_cvtepu16_epi32(interleave(sign)), _mm256_setzero_si256());
    let x = _mm256_mask_or_epi32(x, negative, x, _mm256_set1_epi32(i32::MIN));
    let x = _mm256_permutexvar_epi32(_mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7), x);
    // SAFETY: 32 bytes into the eight floats of `out`.
    unsafe { _mm256_storeu_si256(out.as_mut_ptr().cast(), x) };
    true
}

#[cfg(test)]
mod tests {
    use super::super::sse41::Sse41;

    /// Eight fields at once read as each alone does, and are read at once whenever each alone
    /// is read the quick way in at most 15 bytes.
    #[test]
    fn eight_fields_at_once() {
        let (Some(avx), Some(sse)) = (super::Avx512::detect(), Sse41::detect()) else { return };
        let mut rng = crate::rng::Rng::new(11);
        let odd = ["0", "-0", "5.", ".5", "-.5", "-", ".", "", "1.2.3", "+1.5", "1e5", "NA", "1 ", "--1", "5-", "1.-5"];
        let odd = odd.map(String::from);
        let long = ["123456789012345", "-12345678901234", "0.00000000000001", "-1.2345678901234"].map(String::from);
        let field = |rng: &mut crate::rng::Rng| match rng.below(40) {
            0 => odd[rng.below(odd.len() as u64) as usize].clone(),
            1 => long[rng.below(long.len() as u64) as usize].clone(),
            _ => {
                let x = rng.normal() * 10f64.powi(rng.below(12) as i32 - 6);
                let digits = rng.below(10) as usize;
                format!("{x:.digits$}")
            }
        };
        let (mut together, mut alone) = (0, 0);
        for _ in 0..100_000 {
            let fields: Vec<String> = (0..8).map(|_| field(&mut rng)).collect();
            // Fields after the first may be separated by a newline, or by other fields.
            let mut line = "9;".repeat(8);
            let mut ends = [0; 8];
            for (j, f) in fields.iter().enumerate() {
                line.push_str(["\n", ";", ";", ";-1.5;"][rng.below(4) as usize]);
                line.push_str(f);
                ends[j] = line.len();
            }
            let buffer = format!("{line}\n{}", "7".repeat(64));
            let mut out = [0f32; 8];
            let read = avx.eight(buffer.as_bytes(), ends, b';', &mut out);
            let each: Vec<Option<f32>> = (0..8)
                .map(|j| {
                    sse.number(buffer.as_bytes(), ends[j] - fields[j].len(), ends[j]).filter(|_| fields[j].len() <= 15)
                })
                .collect();
            if read {
                for j in 0..8 {
                    assert_eq!(Some(out[j].to_bits()), each[j].map(f32::to_bits), "{fields:?}");
                }
                together += 1;
            } else {
                assert!(each.iter().any(Option::is_none), "{fields:?} could be read at once");
                alone += 1;
            }
        }
        assert!(together > 40_000 && alone > 20_000, "{together} read at once, {alone} not");
    }
}
