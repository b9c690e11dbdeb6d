#include <pybind11/pybind11.h>

#include "bindings/cuda_bindings.h"
#include "bindings/pointers.h"
#include "cuda/elementwise.h"

namespace py = pybind11;

namespace fastlayers::bindings {

void bind_cuda_elementwise(py::module_& m) {
  m.def("add_forward", [](Address a, Address b, Address y, index_t n,
                          Address s) {
    cuda::add_forward(in(a), in(b), out(y), n, stream_of(s));
  }, py::call_guard<py::gil_scoped_release>());
}

}  // namespace fastlayers::bindings
