#include <pybind11/pybind11.h>

#include "bindings/cpu_bindings.h"
#include "bindings/pointers.h"
#include "cpu/activation.h"

namespace py = pybind11;

namespace fastlayers::bindings {

void bind_cpu_activation(py::module_& m) {
  const auto nogil = py::call_guard<py::gil_scoped_release>();
  m.def("relu_forward", [](std::uintptr_t x, std::uintptr_t y, index_t n) {
    cpu::relu_forward(in(x), out(y), n);
  }, nogil);
  m.def("relu_backward", [](std::uintptr_t g, std::uintptr_t x, std::uintptr_t gi, index_t n) {
    cpu::relu_backward(in(g), in(x), out(gi), n);
  }, nogil);
}

}  // namespace fastlayers::bindings
