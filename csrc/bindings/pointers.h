// The bindings take buffers as addresses plus sizes: the Python op layer has already checked
// shapes, dtypes and devices and allocated the outputs, so one call shape serves NumPy arrays
// (CPU) and CuPy arrays (CUDA). See python/fastlayers/_backend.py.
//
// An Address argument accepts a Python int (a raw address: CuPy's data.ptr, a stream, or 0 for
// "none"). In the CPU module it also accepts a NumPy array, whose data pointer is read here in
// C++ — about 1 µs cheaper per array than asking NumPy for it from Python, which matters for the
// many small calls of batch-1 work. The CUDA module (compiled with FASTLAYERS_DEVICE_ADDRESSES)
// refuses a NumPy array with a TypeError: its host pointer handed to a kernel as a device pointer
// would be an illegal-address fault at best.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>

namespace fastlayers::bindings {

// Address 0 (a Python 0 or None-meaning-0) converts to nullptr: optional buffers such as a bias.
// kHostArrays: NumPy arrays are accepted (the CPU module).
template <bool kHostArrays>
struct AddressOf {
  std::uintptr_t value = 0;
};

#ifdef FASTLAYERS_DEVICE_ADDRESSES
using Address = AddressOf<false>;
#else
using Address = AddressOf<true>;
#endif

template <bool H>
inline const float* in(AddressOf<H> a) {
  return reinterpret_cast<const float*>(a.value);
}
template <bool H>
inline float* out(AddressOf<H> a) {
  return reinterpret_cast<float*>(a.value);
}
template <bool H>
inline const std::int64_t* in_i64(AddressOf<H> a) {
  return reinterpret_cast<const std::int64_t*>(a.value);
}
template <bool H>
inline std::int64_t* out_i64(AddressOf<H> a) {
  return reinterpret_cast<std::int64_t*>(a.value);
}

}  // namespace fastlayers::bindings

namespace pybind11::detail {

template <bool kHostArrays>
struct type_caster<fastlayers::bindings::AddressOf<kHostArrays>> {
  PYBIND11_TYPE_CASTER(fastlayers::bindings::AddressOf<kHostArrays>,
                       const_name<kHostArrays>("int | numpy.ndarray", "int"));

  bool load(handle src, bool /*convert*/) {
    PyObject* obj = src.ptr();
    if (PyLong_Check(obj)) {
      const unsigned long long raw = PyLong_AsUnsignedLongLong(obj);
      if (PyErr_Occurred()) {  // negative or too large: not an address
        PyErr_Clear();
        return false;
      }
      value.value = static_cast<std::uintptr_t>(raw);
      return true;
    }
    if (isinstance<array>(src)) {
      if (!kHostArrays)
        throw type_error("fastlayers CUDA kernel: got a NumPy (host) array where a device pointer is expected; "
                         "pass a CuPy array's .data.ptr (the fastlayers ops do this for CuPy arrays)");
      value.value = reinterpret_cast<std::uintptr_t>(reinterpret_borrow<array>(src).data());
      return true;
    }
    return false;
  }

  static handle cast(fastlayers::bindings::AddressOf<kHostArrays> src, return_value_policy, handle) {
    return PyLong_FromUnsignedLongLong(src.value);
  }
};

}  // namespace pybind11::detail
