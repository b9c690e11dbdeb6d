#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <stdexcept>
#include <vector>

#include "bindings/cuda_bindings.h"
#include "bindings/pointers.h"
#include "cuda/elementwise.h"

namespace py = pybind11;

namespace fastlayers::bindings {

namespace {
using Dims = std::vector<index_t>;

int check_dims(const Dims& shape, const Dims& s1, const Dims& s2) {
  if (shape.empty() || shape.size() > static_cast<size_t>(cuda::kMaxBroadcastDims) ||
      s1.size() != shape.size() || s2.size() != shape.size())
    throw std::invalid_argument("broadcast geometry: 1 to 8 dimensions, one stride per dimension");
  return static_cast<int>(shape.size());
}
}  // namespace

// Same names and argument lists as csrc/bindings/cpu_elementwise.cpp, plus the stream.
void bind_cuda_elementwise(py::module_& m) {
  const auto nogil = py::call_guard<py::gil_scoped_release>();
  m.def("add_forward", [](Address a, Address b, Address y, index_t n, Address s) {
    cuda::add_forward(in(a), in(b), out(y), n, stream_of(s));
  }, nogil);
  m.attr("max_broadcast_dims") = cuda::kMaxBroadcastDims;
  m.def("binary_broadcast_forward", [](int op, Address a, Address b, Address y, const Dims& shape,
                                       const Dims& sa, const Dims& sb, float alpha, Address s) {
    const int nd = check_dims(shape, sa, sb);
    cuda::binary_broadcast_forward(op, in(a), in(b), out(y), nd, shape.data(), sa.data(), sb.data(),
                                   alpha, stream_of(s));
  }, nogil);
  m.def("sum_broadcast", [](Address g, Address o, const Dims& shape, const Dims& so, float alpha,
                            Address s) {
    const int nd = check_dims(shape, so, so);
    cuda::sum_broadcast(in(g), out(o), nd, shape.data(), so.data(), alpha, stream_of(s));
  }, nogil);
}

}  // namespace fastlayers::bindings
