//! Memory for the table's columns: zeroed by the system, so pages no row reaches are never
//! touched, and backed by 2 MiB pages where the system has them to spare.

/// Types for which all-zero bytes are a value.
///
/// # Safety
/// An implementor promises that a value of all-zero bytes is a valid `Self`.
pub unsafe trait Zero {}

// SAFETY: all-zero bytes are 0.0.
unsafe impl Zero for f32 {}
// SAFETY: all-zero bytes are 0.
unsafe impl Zero for i64 {}

/// `n` zeros in memory the system hands out zeroed; `None` when that much address space cannot
/// be had.
pub fn zeros<T: Zero>(n: usize) -> Option<Vec<T>> {
    if n == 0 {
        return Some(Vec::new());
    }
    let layout = std::alloc::Layout::array::<T>(n).ok()?;
    // SAFETY: `layout` has a non-zero size.
    let data = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<T>();
    if data.is_null() {
        return None;
    }
    huge_pages(data.cast(), layout.size());
    // SAFETY: allocated by the global allocator with `T`'s layout for `n` elements, all zero
    // bytes, which `Zero` promises is a value of `T`.
    Some(unsafe { Vec::from_raw_parts(data, n, n) })
}

/// Asks for 2 MiB pages for the whole 2 MiB stretches of a fresh allocation, when the system
/// has free ones to spare: a column is then faulted in a few times instead of thousands. Where
/// free 2 MiB blocks are short, asking could stall the first touch while the kernel compacts
/// memory, so it is left alone.
fn huge_pages(data: *mut u8, size: usize) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = (data as usize).next_multiple_of(HUGE);
        let end = (data as usize + size) / HUGE * HUGE;
        if end <= start || free_huge_blocks().is_none_or(|free| free < 2 * (end - start) / HUGE) {
            return;
        }
        // SAFETY: advice on whole pages of an allocation this process owns; it changes how
        // they are backed, not what they hold.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (data, size);
}

/// Free blocks of physical memory of 2 MiB and more, counted in 2 MiB, from /proc/buddyinfo
/// (one line per zone: the free blocks of 4 KiB × 2^order, order 0 first).
#[cfg(target_os = "linux")]
fn free_huge_blocks() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/buddyinfo").ok()?;
    let mut free = 0usize;
    for line in text.lines() {
        let counts = line.split_once("zone")?.1.split_whitespace().skip(1);
        for (order, count) in counts.enumerate().skip(9) {
            free = free.saturating_add(count.parse::<usize>().ok()? << (order - 9));
        }
    }
    Some(free)
}

#[cfg(test)]
mod tests {
    #[test]
    fn zeros_are_zero_and_as_long_as_asked() {
        // Past 4 MiB, so the huge-page advice has whole pages to ask for.
        let floats = super::zeros::<f32>(3 << 20).unwrap();
        assert_eq!(floats.len(), 3 << 20);
        assert!(floats.iter().all(|&x| x == 0.0));
        assert_eq!(super::zeros::<i64>(5).unwrap(), vec![0; 5]);
        assert!(super::zeros::<i64>(0).unwrap().is_empty());
        assert!(super::zeros::<i64>(usize::MAX / 4).is_none());
    }
}
