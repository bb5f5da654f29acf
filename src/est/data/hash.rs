//! The hash behind `hash_buckets` and `crossed` columns. It is part of a model's meaning, so it
//! is fixed forever: FNV-1a 64 over the bytes, then the SplitMix64 finaliser, modulo the bucket
//! count. Crosses hash the little-endian bytes of their sources' bucket ids, in order.

use crate::rng::mix;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a 64 of `bytes`, then SplitMix64's finaliser.
pub fn hash64(bytes: &[u8]) -> u64 {
    let mut h = FNV_OFFSET;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(FNV_PRIME);
    }
    mix(h)
}

/// The bucket of a string value.
pub fn bucket(value: &str, buckets: u64) -> i64 {
    (hash64(value.as_bytes()) % buckets) as i64
}

/// The bucket of a combination of ids.
pub fn cross(ids: &[i64], buckets: u64) -> i64 {
    let mut bytes = Vec::with_capacity(ids.len() * 8);
    for id in ids {
        bytes.extend_from_slice(&id.to_le_bytes());
    }
    (hash64(&bytes) % buckets) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_never_change() {
        // Checkpoints depend on these values: they must hold on every machine and version.
        assert_eq!(hash64(b""), mix(FNV_OFFSET));
        // Values from an independent Python implementation of the same definition.
        assert_eq!(bucket("Biscoe", 1000), 611);
        assert_eq!(bucket("Dream", 1000), 337);
        assert_eq!(cross(&[0, 1], 16), 13);
        assert_eq!(cross(&[2, 1], 1000), cross(&[2, 1], 1000));
        assert_ne!(cross(&[0, 1], 1 << 40), cross(&[1, 0], 1 << 40));
    }
}
