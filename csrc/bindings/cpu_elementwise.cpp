#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <stdexcept>
#include <vector>

#include "bindings/cpu_bindings.h"
#include "bindings/pointers.h"
#include "cpu/elementwise.h"

namespace py = pybind11;

namespace fastlayers::bindings {

namespace {
using Dims = std::vector<index_t>;

// The collapsed broadcast geometry from ops/elementwise.py: one size and one stride per operand
// for each dimension, at most kMaxBroadcastDims of them.
int check_dims(const Dims& shape, const Dims& s1, const Dims& s2) {
  if (shape.empty() || shape.size() > static_cast<size_t>(cpu::kMaxBroadcastDims) ||
      s1.size() != shape.size() || s2.size() != shape.size())
    throw std::invalid_argument("broadcast geometry: 1 to 8 dimensions, one stride per dimension");
  return static_cast<int>(shape.size());
}
}  // namespace

void bind_cpu_elementwise(py::module_& m) {
  const auto nogil = py::call_guard<py::gil_scoped_release>();
  m.def("add_forward", [](Address a, Address b, Address y, index_t n) {
    cpu::add_forward(in(a), in(b), out(y), n);
  }, nogil);
  m.attr("max_broadcast_dims") = cpu::kMaxBroadcastDims;
  // (The vectors are converted before the GIL is released: pybind11 casts arguments first.)
  m.def("binary_broadcast_forward", [](int op, Address a, Address b, Address y, const Dims& shape,
                                       const Dims& sa, const Dims& sb, float alpha) {
    const int nd = check_dims(shape, sa, sb);
    cpu::binary_broadcast_forward(op, in(a), in(b), out(y), nd, shape.data(), sa.data(), sb.data(), alpha);
  }, nogil);
  m.def("sum_broadcast", [](Address g, Address o, const Dims& shape, const Dims& so, float alpha) {
    const int nd = check_dims(shape, so, so);
    cpu::sum_broadcast(in(g), out(o), nd, shape.data(), so.data(), alpha);
  }, nogil);
}

}  // namespace fastlayers::bindings
