#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "bindings/cpu_bindings.h"
#include "bindings/pointers.h"
#include "cpu/pool.h"
#include "cpu/pool3d.h"

namespace py = pybind11;

namespace fastlayers::bindings {

// Geometry: the 19-int tuple of csrc/common/pool3d_geometry.h, validated by ops/pool3d.py.
void bind_cpu_pool3d(py::module_& m) {
  const auto nogil = py::call_guard<py::gil_scoped_release>();
  m.def("max_pool3d_forward", [](Address x, Address y, Address indices, const Pool3dGeometryArgs& g) {
    cpu::max_pool3d_forward(in(x), out(y), out_i64(indices), to_pool3d_geometry(g));
  }, nogil);
  m.def("max_pool3d_backward", [](Address go, Address x, Address gi, const Pool3dGeometryArgs& g) {
    cpu::max_pool3d_backward(in(go), in(x), out(gi), to_pool3d_geometry(g));
  }, nogil);
  // grad_out added at max_pool3d's return_indices (flat over D*H*W): the 2-D kernel's scatter, one
  // plane being a whole volume. Returns the number of indices outside [-1, d*h*w) (they add nothing).
  m.def("max_pool3d_backward_indices", [](Address go, Address indices, Address gi, const Pool3dGeometryArgs& a) {
    const Pool3dGeometry g = to_pool3d_geometry(a);
    return cpu::max_pool2d_backward_indices(in(go), in_i64(indices), out(gi), g.planes, g.d * g.h * g.w,
                                            g.od * g.oh * g.ow);
  }, nogil);
  m.def("avg_pool3d_forward", [](Address x, Address y, const Pool3dGeometryArgs& g, bool count_include_pad,
                                 index_t divisor_override) {
    cpu::avg_pool3d_forward(in(x), out(y), to_pool3d_geometry(g), count_include_pad, divisor_override);
  }, nogil);
  m.def("avg_pool3d_backward", [](Address go, Address gi, const Pool3dGeometryArgs& g, bool count_include_pad,
                                  index_t divisor_override) {
    cpu::avg_pool3d_backward(in(go), out(gi), to_pool3d_geometry(g), count_include_pad, divisor_override);
  }, nogil);
}

}  // namespace fastlayers::bindings
