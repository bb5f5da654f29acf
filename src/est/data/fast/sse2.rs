//! The delimiters and newlines among 64 bytes, sixteen at a time with SSE2, which every x86_64
//! processor has; a portable loop elsewhere.

/// One bit per delimiter or newline in `chunk`, byte 0 lowest.
#[inline(always)]
pub fn separators(chunk: &[u8; 64], delimiter: u8) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        // SAFETY: SSE2 is part of x86_64; the four 16-byte loads lie in the 64-byte `chunk`.
        unsafe {
            let (d, n) = (_mm_set1_epi8(delimiter as i8), _mm_set1_epi8(b'\n' as i8));
            let mut mask = 0u64;
            for k in 0..4 {
                let v = _mm_loadu_si128(chunk.as_ptr().add(16 * k).cast());
                let hit = _mm_or_si128(_mm_cmpeq_epi8(v, d), _mm_cmpeq_epi8(v, n));
                mask |= u64::from(_mm_movemask_epi8(hit) as u16) << (16 * k);
            }
            mask
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    portable(chunk, delimiter)
}

/// `separators` a byte at a time.
pub fn portable(bytes: &[u8], delimiter: u8) -> u64 {
    bytes.iter().enumerate().fold(0, |m, (i, &b)| m | (u64::from(b == delimiter || b == b'\n') << i))
}

#[cfg(test)]
mod tests {
    #[test]
    fn sixty_four_bytes_at_once_find_what_one_at_a_time_finds() {
        let mut rng = crate::rng::Rng::new(3);
        for _ in 0..10_000 {
            let chunk: [u8; 64] = std::array::from_fn(|_| b",;\n\r a1."[rng.below(8) as usize]);
            for delimiter in [b',', b';'] {
                assert_eq!(super::separators(&chunk, delimiter), super::portable(&chunk, delimiter));
            }
        }
    }
}
