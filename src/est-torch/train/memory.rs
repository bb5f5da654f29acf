//! CPU tensors' memory as Rust slices, for the passes the written-out step and the one-pass
//! Adagrad make over it: the one place est-torch reads libtorch's memory directly. Each
//! function checks the layout itself; the caller's promise is that nothing else touches the
//! memory while the slice lives.

use tch::{Device, Kind, Tensor};

/// Whether `t` is a contiguous CPU tensor of `kind`, so its `numel()` elements lie in order at
/// its data pointer.
fn plain(t: &Tensor, kind: Kind) -> bool {
    t.device() == Device::Cpu && t.kind() == kind && t.is_contiguous()
}

/// The elements of a contiguous float CPU tensor, to write; `None` for any other tensor.
///
/// # Safety
/// Nothing else may read or write `t`'s memory while the slice lives: no other slice of it, no
/// libtorch operation on it or on a tensor that shares it.
// The tensor is a handle to memory libtorch owns, not the memory: the caller's promise, not the
// borrow, is what makes the slice the only access.
#[allow(clippy::mut_from_ref)]
pub unsafe fn floats_mut(t: &Tensor) -> Option<&mut [f32]> {
    if !plain(t, Kind::Float) {
        return None;
    }
    if t.numel() == 0 {
        return Some(&mut []);
    }
    // SAFETY: `plain` says the `numel()` floats lie in order at the data pointer; the caller
    // promises this is the only access to them while the slice lives.
    Some(unsafe { std::slice::from_raw_parts_mut(t.data_ptr().cast::<f32>(), t.numel()) })
}

/// The elements of a contiguous float CPU tensor, to read; `None` for any other tensor.
///
/// # Safety
/// Nothing may write `t`'s memory while the slice lives.
pub unsafe fn floats(t: &Tensor) -> Option<&[f32]> {
    if !plain(t, Kind::Float) {
        return None;
    }
    if t.numel() == 0 {
        return Some(&[]);
    }
    // SAFETY: as in `floats_mut`; the caller promises there is no writer.
    Some(unsafe { std::slice::from_raw_parts(t.data_ptr().cast::<f32>(), t.numel()) })
}

/// The elements of a contiguous int64 CPU tensor, to read; `None` for any other tensor.
///
/// # Safety
/// Nothing may write `t`'s memory while the slice lives.
pub unsafe fn longs(t: &Tensor) -> Option<&[i64]> {
    if !plain(t, Kind::Int64) {
        return None;
    }
    if t.numel() == 0 {
        return Some(&[]);
    }
    // SAFETY: as in `floats_mut`, for 8-byte elements; the caller promises there is no writer.
    Some(unsafe { std::slice::from_raw_parts(t.data_ptr().cast::<i64>(), t.numel()) })
}
