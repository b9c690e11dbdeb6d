#include <pybind11/pybind11.h>

#include "bindings/cpu_bindings.h"
#include "bindings/pointers.h"
#include "cpu/elementwise.h"

namespace py = pybind11;

namespace fastlayers::bindings {

void bind_cpu_elementwise(py::module_& m) {
  m.def("add_forward", [](Address a, Address b, Address y, index_t n) {
    cpu::add_forward(in(a), in(b), out(y), n);
  }, py::call_guard<py::gil_scoped_release>());
}

}  // namespace fastlayers::bindings
