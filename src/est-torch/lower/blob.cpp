// A tensor over memory that Rust allocated, which libtorch hands back to Rust when its last
// user lets go: tch's own `from_blob` only borrows, with no way to free.
#include <ATen/ops/from_blob.h>

#include <cstddef>
#include <cstdint>

// `element`: 0 for float32, 1 for int64. libtorch calls `release(owner)` once, when the memory
// is no longer used. A null result means no tensor; `owner` may have been released on the way,
// so the caller must not free it.
extern "C" at::Tensor *est_tensor_over(void *data, const int64_t *sizes, size_t dims, int element,
                                       void (*release)(void *), void *owner) {
  try {
    auto options = at::TensorOptions().dtype(element == 0 ? at::kFloat : at::kLong);
    auto deleter = [release, owner](void *) { release(owner); };
    return new at::Tensor(at::from_blob(data, at::IntArrayRef(sizes, dims), deleter, options));
  } catch (...) {
    return nullptr;
  }
}
