//! A column's values: parsed into memory, or mapped from a parsed-data cache entry, so that a
//! cached start copies none of a million rows' ids (they are most of an entry's bytes).

use std::fmt;
use std::ops::{Deref, DerefMut};

/// Values laid out as a slice: a vector, or a private, copy-on-write mapping of part of a file.
pub struct Values<T: Copy> {
    /// The values, when they are not mapped.
    owned: Vec<T>,
    /// The mapping and the count of values in it, when they are.
    mapped: Option<(memmap2::MmapMut, usize)>,
}

impl<T: Copy> Values<T> {
    /// `len` values of `T` at byte `offset` of `file`, mapped privately: writes stay in this
    /// process's memory.
    ///
    /// # Safety
    /// Every bit pattern of `size_of::<T>()` bytes is a `T`; `offset` is a multiple of `T`'s
    /// alignment (mappings start on a page, and keep the offset within it); nothing truncates
    /// the file while the mapping lives (cache entries are replaced by renaming, never rewritten).
    pub(crate) unsafe fn mapped(file: &std::fs::File, offset: u64, len: usize) -> std::io::Result<Values<T>> {
        if len == 0 {
            return Ok(Vec::new().into());
        }
        let bytes = len.checked_mul(size_of::<T>()).ok_or(std::io::ErrorKind::InvalidInput)?;
        if !offset.is_multiple_of(align_of::<T>() as u64) {
            return Err(std::io::ErrorKind::InvalidInput.into());
        }
        // SAFETY: the caller's promise that the file is not cut short meanwhile.
        let map = unsafe { memmap2::MmapOptions::new().offset(offset).len(bytes).map_copy(file)? };
        Ok(Values { owned: Vec::new(), mapped: Some((map, len)) })
    }

    /// The values as a vector, copied when they are mapped.
    pub fn into_vec(self) -> Vec<T> {
        match self.mapped {
            Some(_) => self.to_vec(),
            None => self.owned,
        }
    }

    /// The values as a vector to grow, copied first when they are mapped.
    pub fn to_mut(&mut self) -> &mut Vec<T> {
        if self.mapped.is_some() {
            self.owned = self.to_vec();
            self.mapped = None;
        }
        &mut self.owned
    }

    /// Whether the values are mapped from a file.
    pub fn is_mapped(&self) -> bool {
        self.mapped.is_some()
    }
}

impl<T: Copy> Deref for Values<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        match &self.mapped {
            // SAFETY: `mapped`'s promises: `len` aligned values of `T` in a live mapping.
            Some((map, len)) => unsafe { std::slice::from_raw_parts(map.as_ptr().cast::<T>(), *len) },
            None => &self.owned,
        }
    }
}

impl<T: Copy> DerefMut for Values<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        match &mut self.mapped {
            // SAFETY: as `deref`; the private mapping is this value's alone, and writes to it
            // never reach the file.
            Some((map, len)) => unsafe { std::slice::from_raw_parts_mut(map.as_mut_ptr().cast::<T>(), *len) },
            None => &mut self.owned,
        }
    }
}

impl<T: Copy> From<Vec<T>> for Values<T> {
    fn from(owned: Vec<T>) -> Values<T> {
        Values { owned, mapped: None }
    }
}

impl<T: Copy> FromIterator<T> for Values<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Values<T> {
        iter.into_iter().collect::<Vec<T>>().into()
    }
}

impl<T: Copy> Default for Values<T> {
    fn default() -> Values<T> {
        Vec::new().into()
    }
}

impl<T: Copy> Clone for Values<T> {
    fn clone(&self) -> Values<T> {
        self.to_vec().into()
    }
}

impl<T: Copy + fmt::Debug> fmt::Debug for Values<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: Copy + PartialEq> PartialEq for Values<T> {
    fn eq(&self, other: &Values<T>) -> bool {
        **self == **other
    }
}

impl<T: Copy + PartialEq> PartialEq<Vec<T>> for Values<T> {
    fn eq(&self, other: &Vec<T>) -> bool {
        **self == **other
    }
}

#[cfg(test)]
mod tests {
    use super::Values;
    use std::io::Write;

    #[test]
    fn mapped_values_read_the_file_and_writes_stay_in_memory() {
        let mut file = tempfile::tempfile().unwrap();
        let ids: Vec<i64> = (0..1000).map(|i| i * 3 - 7).collect();
        file.write_all(&[0; 8]).unwrap();
        for id in &ids {
            file.write_all(&id.to_le_bytes()).unwrap();
        }
        // SAFETY: i64 takes any bits; 8 is aligned; the file is this test's own.
        let mut mapped = unsafe { Values::<i64>::mapped(&file, 8, ids.len()) }.unwrap();
        assert!(mapped.is_mapped());
        assert_eq!(&mapped[..], &ids[..]);
        mapped[0] = 42;
        // SAFETY: as above.
        let again = unsafe { Values::<i64>::mapped(&file, 8, ids.len()) }.unwrap();
        assert_eq!(again[0], -7, "a write reached the file");
        assert_eq!(mapped.clone().into_vec()[0], 42);
        mapped.to_mut().push(1);
        assert!(!mapped.is_mapped());
        assert_eq!(mapped.len(), 1001);
        // SAFETY: as above.
        assert!(unsafe { Values::<i64>::mapped(&file, 4, 2) }.is_err(), "a misaligned offset");
    }
}
