#include <pybind11/pybind11.h>

#include "bindings/cpu_bindings.h"
#include "bindings/pointers.h"

namespace py = pybind11;

namespace fastlayers::bindings {

void bind_cpu_elementwise(py::module_& m) {}

}  // namespace fastlayers::bindings
