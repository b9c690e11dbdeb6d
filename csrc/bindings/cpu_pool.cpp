#include <pybind11/pybind11.h>

#include "bindings/cpu_bindings.h"
#include "bindings/pointers.h"
#include "cpu/pool.h"

namespace py = pybind11;

namespace fastlayers::bindings {

namespace {

using G = cpu::Pool2dGeometry;
using A = cpu::AdaptivePool2dGeometry;

// Geometry arguments, in this order, for every windowed pool: planes (N*C), h, w, kh, kw, sh, sw,
// ph, pw, dh, dw, oh, ow; for the adaptive pools: planes, h, w, oh, ow. The Python op has validated
// and bounded them (csrc/common/pool_geometry.h).
#define FL_POOL_GEOMETRY_ARGS                                                                             \
  index_t planes, index_t h, index_t w, index_t kh, index_t kw, index_t sh, index_t sw, index_t ph,     \
      index_t pw, index_t dh, index_t dw, index_t oh, index_t ow
#define FL_POOL_GEOMETRY G{planes, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow}

}  // namespace

void bind_cpu_pool(py::module_& m) {
  const auto nogil = py::call_guard<py::gil_scoped_release>();
  // indices: an int64 buffer or 0 (none).
  m.def("max_pool2d_forward", [](Address x, Address y, Address indices, FL_POOL_GEOMETRY_ARGS) {
    cpu::max_pool2d_forward(in(x), out(y), out_i64(indices), FL_POOL_GEOMETRY);
  }, nogil);
  // workspace: unused on the CPU (the CUDA twin takes an int64 scratch of planes*oh*ow from the caller).
  m.def("max_pool2d_backward", [](Address go, Address x, Address gi, Address /*workspace*/,
                                  FL_POOL_GEOMETRY_ARGS) {
    cpu::max_pool2d_backward(in(go), in(x), out(gi), FL_POOL_GEOMETRY);
  }, nogil);
  // Returns the number of indices outside [-1, h*w) (they add nothing).
  m.def("max_pool2d_backward_indices", [](Address go, Address indices, Address gi, FL_POOL_GEOMETRY_ARGS) {
    return cpu::max_pool2d_backward_indices(in(go), in_i64(indices), out(gi), planes, h * w, oh * ow);
  }, nogil);
  // divisor_override: 0 for none.
  m.def("avg_pool2d_forward", [](Address x, Address y, FL_POOL_GEOMETRY_ARGS, bool count_include_pad,
                                 double divisor_override) {
    cpu::avg_pool2d_forward(in(x), out(y), FL_POOL_GEOMETRY, count_include_pad, divisor_override);
  }, nogil);
  m.def("avg_pool2d_backward", [](Address go, Address gi, FL_POOL_GEOMETRY_ARGS, bool count_include_pad,
                                  double divisor_override) {
    cpu::avg_pool2d_backward(in(go), out(gi), FL_POOL_GEOMETRY, count_include_pad, divisor_override);
  }, nogil);
  m.def("lp_pool2d_forward", [](Address x, Address y, FL_POOL_GEOMETRY_ARGS, double p) {
    cpu::lp_pool2d_forward(in(x), out(y), FL_POOL_GEOMETRY, p);
  }, nogil);
  m.def("lp_pool2d_backward", [](Address go, Address x, Address gi, FL_POOL_GEOMETRY_ARGS, double p) {
    cpu::lp_pool2d_backward(in(go), in(x), out(gi), FL_POOL_GEOMETRY, p);
  }, nogil);

  m.def("adaptive_avg_pool2d_forward", [](Address x, Address y, index_t planes, index_t h, index_t w,
                                          index_t oh, index_t ow) {
    cpu::adaptive_avg_pool2d_forward(in(x), out(y), A{planes, h, w, oh, ow});
  }, nogil);
  m.def("adaptive_avg_pool2d_backward", [](Address go, Address gi, index_t planes, index_t h, index_t w,
                                           index_t oh, index_t ow) {
    cpu::adaptive_avg_pool2d_backward(in(go), out(gi), A{planes, h, w, oh, ow});
  }, nogil);
  m.def("adaptive_max_pool2d_forward", [](Address x, Address y, Address indices, index_t planes, index_t h,
                                          index_t w, index_t oh, index_t ow) {
    cpu::adaptive_max_pool2d_forward(in(x), out(y), out_i64(indices), A{planes, h, w, oh, ow});
  }, nogil);
  m.def("adaptive_max_pool2d_backward", [](Address go, Address x, Address gi, Address /*workspace*/,
                                           index_t planes, index_t h, index_t w, index_t oh, index_t ow) {
    cpu::adaptive_max_pool2d_backward(in(go), in(x), out(gi), A{planes, h, w, oh, ow});
  }, nogil);
  m.def("adaptive_max_pool2d_backward_indices", [](Address go, Address indices, Address gi, index_t planes,
                                                   index_t h, index_t w, index_t oh, index_t ow) {
    return cpu::max_pool2d_backward_indices(in(go), in_i64(indices), out(gi), planes, h * w, oh * ow);
  }, nogil);

  // Return the number of indices outside [0, out_h*out_w) (skipped).
  m.def("max_unpool2d_forward", [](Address x, Address indices, Address y, index_t planes, index_t in_hw,
                                   index_t out_hw) {
    return cpu::max_unpool2d_forward(in(x), in_i64(indices), out(y), planes, in_hw, out_hw);
  }, nogil);
  m.def("max_unpool2d_backward", [](Address go, Address indices, Address gx, index_t planes, index_t in_hw,
                                    index_t out_hw) {
    return cpu::max_unpool2d_backward(in(go), in_i64(indices), out(gx), planes, in_hw, out_hw);
  }, nogil);

  m.def("global_avg_pool2d_forward", [](Address x, Address y, index_t planes, index_t hw) {
    cpu::global_avg_pool2d_forward(in(x), out(y), planes, hw);
  }, nogil);
  m.def("global_avg_pool2d_backward", [](Address go, Address gi, index_t planes, index_t hw) {
    cpu::global_avg_pool2d_backward(in(go), out(gi), planes, hw);
  }, nogil);
}

}  // namespace fastlayers::bindings
