#include <pybind11/pybind11.h>

#include "bindings/cuda_bindings.h"
#include "bindings/pointers.h"
#include "cuda/interpolate.h"

namespace py = pybind11;

namespace fastlayers::bindings {

// Same names and arguments as csrc/bindings/cpu_interpolate.cpp, plus the CuPy stream last.
void bind_cuda_interpolate(py::module_& m) {
  const auto nogil = py::call_guard<py::gil_scoped_release>();
  m.def("interpolate_forward", [](Address x, Address y, index_t planes, index_t in_h, index_t in_w, index_t out_h,
                                  index_t out_w, int mode, bool align, float scale_h, float scale_w, Address s) {
    cuda::interpolate_forward(in(x), out(y), InterpGeometry{planes, in_h, in_w, out_h, out_w, mode, align, scale_h, scale_w},
                              stream_of(s));
  }, nogil);
  m.def("interpolate_backward", [](Address go, Address gi, index_t planes, index_t in_h, index_t in_w, index_t out_h,
                                   index_t out_w, int mode, bool align, float scale_h, float scale_w, Address s) {
    cuda::interpolate_backward(in(go), out(gi), InterpGeometry{planes, in_h, in_w, out_h, out_w, mode, align, scale_h, scale_w},
                               stream_of(s));
  }, nogil);
}

}  // namespace fastlayers::bindings
