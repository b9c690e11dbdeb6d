// The bindings take buffers as addresses plus sizes: the Python op layer has already checked
// shapes, dtypes and devices and allocated the outputs, so one call shape serves NumPy arrays
// (CPU) and CuPy arrays (CUDA). See python/fastlayers/_backend.py.
//
// An Address argument accepts a Python int (a raw address: CuPy's data.ptr, a stream, or 0 for
// "none") or a NumPy array, whose data pointer is read here in C++ — about 1 µs cheaper per array
// than asking NumPy for it from Python, which matters for the many small calls of batch-1 work.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>

namespace fastlayers::bindings {

// Address 0 (a Python 0 or None-meaning-0) converts to nullptr: optional buffers such as a bias.
struct Address {
  std::uintptr_t value = 0;
};

inline const float* in(Address a) { return reinterpret_cast<const float*>(a.value); }
inline float* out(Address a) { return reinterpret_cast<float*>(a.value); }
inline const std::int64_t* in_i64(Address a) { return reinterpret_cast<const std::int64_t*>(a.value); }
inline std::int64_t* out_i64(Address a) { return reinterpret_cast<std::int64_t*>(a.value); }

}  // namespace fastlayers::bindings

namespace pybind11::detail {

template <>
struct type_caster<fastlayers::bindings::Address> {
  PYBIND11_TYPE_CASTER(fastlayers::bindings::Address, const_name("int | numpy.ndarray"));

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
      value.value = reinterpret_cast<std::uintptr_t>(reinterpret_borrow<array>(src).data());
      return true;
    }
    return false;
  }

  static handle cast(fastlayers::bindings::Address src, return_value_policy, handle) {
    return PyLong_FromUnsignedLongLong(src.value);
  }
};

}  // namespace pybind11::detail
