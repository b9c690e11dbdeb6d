// The bindings take buffers as raw addresses (Python ints) and sizes: the Python op layer has
// already checked shapes, dtypes and devices and allocated the outputs, so the same call shape
// serves NumPy arrays (CPU) and CuPy arrays (CUDA). See python/fastlayers/_backend.py.
#pragma once
#include <cstdint>

namespace fastlayers::bindings {

inline const float* in(std::uintptr_t address) { return reinterpret_cast<const float*>(address); }
inline float* out(std::uintptr_t address) { return reinterpret_cast<float*>(address); }
inline const std::int64_t* in_i64(std::uintptr_t address) {
  return reinterpret_cast<const std::int64_t*>(address);
}
inline std::int64_t* out_i64(std::uintptr_t address) { return reinterpret_cast<std::int64_t*>(address); }

}  // namespace fastlayers::bindings
