//! Vectors (and columns mapped from the parsed-data cache) handed to libtorch as CPU tensors
//! without a copy (blob.cpp beside this file): the tensor owns the memory and frees it through
//! Rust when its last user lets go. A large dataset then needs its pages once, not once more for
//! the tensor.

use std::ffi::{c_int, c_void};

use est::data::Values;
use tch::{Kind, TchError, Tensor};

/// A vector libtorch now owns.
enum Owned {
    Float(Vec<f32>),
    Long(Values<i64>),
}

extern "C" {
    fn est_tensor_over(
        data: *mut c_void,
        sizes: *const i64,
        dims: usize,
        element: c_int,
        release: extern "C" fn(*mut c_void),
        owner: *mut c_void,
    ) -> *mut torch_sys::C_tensor;
}

extern "C" fn release(owner: *mut c_void) {
    // SAFETY: `owner` came from `Box::into_raw` in `tensor`, and libtorch releases it once.
    let owned = unsafe { Box::from_raw(owner.cast::<Owned>()) };
    #[cfg(test)]
    tests::RELEASED.lock().unwrap().push(match &*owned {
        Owned::Float(v) => v.as_ptr() as usize,
        Owned::Long(v) => v.as_ptr() as usize,
    });
    drop(owned);
}

/// `values` as a float CPU tensor of `sizes`.
pub fn floats(values: Vec<f32>, sizes: &[i64]) -> Result<Tensor, TchError> {
    tensor(Owned::Float(values), sizes)
}

/// `values` as an int64 CPU tensor of `sizes`.
pub fn longs(values: impl Into<Values<i64>>, sizes: &[i64]) -> Result<Tensor, TchError> {
    tensor(Owned::Long(values.into()), sizes)
}

fn tensor(mut values: Owned, sizes: &[i64]) -> Result<Tensor, TchError> {
    let (data, len, element, kind) = match &mut values {
        Owned::Float(v) => (v.as_mut_ptr().cast::<c_void>(), v.len(), 0, Kind::Float),
        Owned::Long(v) => (v.as_mut_ptr().cast::<c_void>(), v.len(), 1, Kind::Int64),
    };
    if sizes.iter().any(|&s| s < 0) || sizes.iter().product::<i64>() as usize != len {
        return Err(TchError::Shape(format!("{len} values do not make a tensor of shape {sizes:?}")));
    }
    if len == 0 {
        return Tensor::f_empty(sizes, (kind, tch::Device::Cpu));
    }
    let owner = Box::into_raw(Box::new(values));
    // SAFETY: `data` points at `len` initialised elements of the kind named, inside `owner`,
    // which stays alive and unmoved until libtorch calls `release` on it.
    let tensor = unsafe { est_tensor_over(data, sizes.as_ptr(), sizes.len(), element, release, owner.cast()) };
    if tensor.is_null() {
        // The memory may be libtorch's already: leaving it is safer than freeing it twice.
        return Err(TchError::Torch("libtorch could not take over a tensor's memory".into()));
    }
    // SAFETY: a new `at::Tensor` on the heap, which the returned tensor now owns.
    Ok(unsafe { Tensor::from_ptr(tensor) })
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    /// The data pointers of the vectors released so far.
    pub static RELEASED: Mutex<Vec<usize>> = Mutex::new(Vec::new());
    fn releases(data: usize) -> usize {
        RELEASED.lock().unwrap().iter().filter(|&&d| d == data).count()
    }

    /// The tensor reads the vector's memory, views keep it alive, and it is freed exactly once,
    /// when the last of them goes.
    #[test]
    fn libtorch_frees_the_vector_once_when_done() {
        let values: Vec<f32> = (0..12).map(|i| i as f32).collect();
        let data = values.as_ptr() as usize;
        // Counted now: no other vector can be at this address while this one lives.
        let before = releases(data);
        let t = super::floats(values, &[3, 4]).unwrap();
        assert_eq!(t.data_ptr() as usize, data, "a copy was made");
        let view = t.narrow(0, 1, 2);
        drop(t);
        assert_eq!(Vec::<f32>::try_from(view.flatten(0, 1)).unwrap(), (4..12).map(|i| i as f32).collect::<Vec<_>>());
        assert_eq!(releases(data), before, "freed while a view was alive");
        drop(view);
        assert_eq!(releases(data), before + 1);
        let ids = super::longs(vec![7, -1], &[2]).unwrap();
        assert_eq!(Vec::<i64>::try_from(&ids).unwrap(), vec![7, -1]);
        assert!(super::floats(vec![1.0; 5], &[2, 3]).is_err());
    }
}
