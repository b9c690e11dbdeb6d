#include <pybind11/pybind11.h>

#include "bindings/cuda_bindings.h"
#include "bindings/pointers.h"

namespace py = pybind11;

namespace fastlayers::bindings {

void bind_cuda_conv(py::module_& m) {}

}  // namespace fastlayers::bindings
