#include <pybind11/pybind11.h>

#include "bindings/cpu_bindings.h"
#include "bindings/pointers.h"
#include "cpu/interpolate.h"

namespace py = pybind11;

namespace fastlayers::bindings {

// Geometry, in this order: planes (N*C), in_h, in_w, out_h, out_w, mode (0 nearest, 1 linear),
// align_corners, scale_h, scale_w (float32, computed by fastlayers.ops.interpolate as PyTorch does).
void bind_cpu_interpolate(py::module_& m) {
  const auto nogil = py::call_guard<py::gil_scoped_release>();
  m.def("interpolate_forward", [](Address x, Address y, index_t planes, index_t in_h, index_t in_w, index_t out_h,
                                  index_t out_w, int mode, bool align, float scale_h, float scale_w) {
    cpu::interpolate_forward(in(x), out(y), InterpGeometry{planes, in_h, in_w, out_h, out_w, mode, align, scale_h, scale_w});
  }, nogil);
  m.def("interpolate_backward", [](Address go, Address gi, index_t planes, index_t in_h, index_t in_w, index_t out_h,
                                   index_t out_w, int mode, bool align, float scale_h, float scale_w) {
    cpu::interpolate_backward(in(go), out(gi), InterpGeometry{planes, in_h, in_w, out_h, out_w, mode, align, scale_h, scale_w});
  }, nogil);
}

}  // namespace fastlayers::bindings
