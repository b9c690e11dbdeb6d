#include <pybind11/pybind11.h>

#include <cstdint>

#include "bindings/cuda_bindings.h"
#include "bindings/pointers.h"
#include "cuda/dropout.h"

namespace py = pybind11;

namespace fastlayers::bindings {

// Same names and argument lists as csrc/bindings/cpu_dropout.cpp, plus the stream.
void bind_cuda_dropout(py::module_& m) {
  using P = Address;
  const auto nogil = py::call_guard<py::gil_scoped_release>();
  m.def("dropout_forward", [](P x, P y, index_t n, std::uint64_t seed, std::uint32_t threshold,
                              float scale, P s) {
    cuda::dropout_forward(in(x), out(y), n, seed, threshold, scale, stream_of(s));
  }, nogil);
  m.def("dropout_backward", [](P g, P gi, index_t n, std::uint64_t seed, std::uint32_t threshold,
                               float scale, P s) {
    cuda::dropout_backward(in(g), out(gi), n, seed, threshold, scale, stream_of(s));
  }, nogil);
  m.def("dropout_mask", [](P mask, index_t n, std::uint64_t seed, std::uint32_t threshold, P s) {
    cuda::dropout_mask(out(mask), n, seed, threshold, stream_of(s));
  }, nogil);
}

}  // namespace fastlayers::bindings
