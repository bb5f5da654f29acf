//! CPU tensors' memory as Rust slices, for the passes the written-out step, the one-pass
//! Adagrad and a batch's gather make over it: the one place est-torch reads libtorch's memory
//! directly. Each
//! function checks the layout itself; the caller's promise is that nothing else touches the
//! memory while the slice lives.

use tch::{Device, Kind, Tensor};

/// Element types a tensor's memory is read as.
///
/// # Safety
/// `KIND` is libtorch's kind of exactly this type, and every bit pattern is a value of it.
pub unsafe trait Element: Copy {
    /// libtorch's kind for it.
    const KIND: Kind;
}

// SAFETY: libtorch's Float is an IEEE f32; every bit pattern is an f32.
unsafe impl Element for f32 {
    const KIND: Kind = Kind::Float;
}

// SAFETY: libtorch's Int64 is a two's-complement i64; every bit pattern is an i64.
unsafe impl Element for i64 {
    const KIND: Kind = Kind::Int64;
}

/// The `numel()` elements of `t` when it is a contiguous CPU tensor of `T`'s kind, in order at
/// its data pointer.
fn plain<T: Element>(t: &Tensor) -> Option<(*mut T, usize)> {
    let fits = t.device() == Device::Cpu && t.kind() == T::KIND && t.is_contiguous();
    fits.then(|| (t.data_ptr().cast::<T>(), t.numel()))
}

/// The elements of a contiguous CPU tensor of `T`'s kind, to read; `None` for any other tensor.
///
/// # Safety
/// Nothing may write `t`'s memory while the slice lives.
pub unsafe fn slice<T: Element>(t: &Tensor) -> Option<&[T]> {
    let (data, n) = plain::<T>(t)?;
    if n == 0 {
        return Some(&[]);
    }
    // SAFETY: `plain` says the `n` elements lie in order at `data`, and `Element` that any bits
    // are a value; the caller promises there is no writer.
    Some(unsafe { std::slice::from_raw_parts(data, n) })
}

/// The elements of a contiguous CPU tensor of `T`'s kind, to write; `None` for any other
/// tensor.
///
/// # Safety
/// Nothing else may read or write `t`'s memory while the slice lives: no other slice of it, no
/// libtorch operation on it or on a tensor that shares it.
// The tensor is a handle to memory libtorch owns, not the memory: the caller's promise, not the
// borrow, is what makes the slice the only access.
#[allow(clippy::mut_from_ref)]
pub unsafe fn slice_mut<T: Element>(t: &Tensor) -> Option<&mut [T]> {
    let (data, n) = plain::<T>(t)?;
    if n == 0 {
        return Some(&mut []);
    }
    // SAFETY: as in `slice`; the caller promises this is the only access while it lives.
    Some(unsafe { std::slice::from_raw_parts_mut(data, n) })
}

/// `values`' memory as bytes: their little-endian encoding on the little-endian machines est
/// builds for.
#[cfg(target_endian = "little")]
pub fn le_bytes(values: &[f32]) -> &[u8] {
    // SAFETY: an f32 is 4 bytes with no padding, any byte is a valid u8, and u8's alignment
    // is 1; the slice covers exactly `values`' memory and borrows it.
    unsafe { std::slice::from_raw_parts(values.as_ptr().cast::<u8>(), std::mem::size_of_val(values)) }
}

/// Little-endian floats as `f32`s, when the bytes are aligned for them.
#[cfg(target_endian = "little")]
pub fn to_f32s(bytes: &[u8]) -> Option<&[f32]> {
    // SAFETY: every bit pattern is an f32; `align_to` puts only aligned whole values in the
    // middle part, and an empty prefix and suffix mean it covers every byte.
    let (head, values, tail) = unsafe { bytes.align_to::<f32>() };
    (head.is_empty() && tail.is_empty()).then_some(values)
}
