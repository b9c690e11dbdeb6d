#include <pybind11/pybind11.h>

#include "bindings/cuda_bindings.h"
#include "bindings/pointers.h"
#include "cuda/pool.h"

namespace py = pybind11;

namespace fastlayers::bindings {

namespace {

using G = cuda::Pool2dGeometry;
using A = cuda::AdaptivePool2dGeometry;

// Geometry, in this order, for every windowed pool: planes (N*C), h, w, kh, kw, sh, sw, ph, pw, dh, dw,
// oh, ow; adaptive pools: planes, h, w, oh, ow. The Python op has validated and bounded them.
#define FL_POOL_GEOMETRY_ARGS                                                                             \
  index_t planes, index_t h, index_t w, index_t kh, index_t kw, index_t sh, index_t sw, index_t ph,     \
      index_t pw, index_t dh, index_t dw, index_t oh, index_t ow
#define FL_POOL_GEOMETRY G{planes, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow}

}  // namespace

// Same names and arguments as csrc/bindings/cpu_pool.cpp, plus the CuPy stream last. The functions
// that on the CPU return a count of out-of-range indices return None here: the GPU kernels skip such
// indices, and counting them would need a host synchronisation.
void bind_cuda_pool(py::module_& m) {
  const auto nogil = py::call_guard<py::gil_scoped_release>();
  m.def("max_pool2d_forward", [](Address x, Address y, Address indices, FL_POOL_GEOMETRY_ARGS, Address s) {
    cuda::max_pool2d_forward(in(x), out(y), out_i64(indices), FL_POOL_GEOMETRY, stream_of(s));
  }, nogil);
  m.def("max_pool2d_backward", [](Address go, Address x, Address gi, Address workspace, FL_POOL_GEOMETRY_ARGS,
                                  Address s) {
    cuda::max_pool2d_backward(in(go), in(x), out(gi), out_i64(workspace), FL_POOL_GEOMETRY, stream_of(s));
  }, nogil);
  m.def("max_pool2d_backward_indices", [](Address go, Address indices, Address gi, FL_POOL_GEOMETRY_ARGS,
                                          Address s) {
    cuda::max_pool2d_backward_indices(in(go), in_i64(indices), out(gi), FL_POOL_GEOMETRY, stream_of(s));
  }, nogil);
  m.def("avg_pool2d_forward", [](Address x, Address y, FL_POOL_GEOMETRY_ARGS, bool count_include_pad,
                                 double divisor_override, Address s) {
    cuda::avg_pool2d_forward(in(x), out(y), FL_POOL_GEOMETRY, count_include_pad, divisor_override, stream_of(s));
  }, nogil);
  m.def("avg_pool2d_backward", [](Address go, Address gi, FL_POOL_GEOMETRY_ARGS, bool count_include_pad,
                                  double divisor_override, Address s) {
    cuda::avg_pool2d_backward(in(go), out(gi), FL_POOL_GEOMETRY, count_include_pad, divisor_override,
                              stream_of(s));
  }, nogil);
  m.def("lp_pool2d_forward", [](Address x, Address y, FL_POOL_GEOMETRY_ARGS, double p, Address s) {
    cuda::lp_pool2d_forward(in(x), out(y), FL_POOL_GEOMETRY, p, stream_of(s));
  }, nogil);
  m.def("lp_pool2d_backward", [](Address go, Address x, Address gi, FL_POOL_GEOMETRY_ARGS, double p,
                                 Address s) {
    cuda::lp_pool2d_backward(in(go), in(x), out(gi), FL_POOL_GEOMETRY, p, stream_of(s));
  }, nogil);

  m.def("adaptive_avg_pool2d_forward", [](Address x, Address y, index_t planes, index_t h, index_t w,
                                          index_t oh, index_t ow, Address s) {
    cuda::adaptive_avg_pool2d_forward(in(x), out(y), A{planes, h, w, oh, ow}, stream_of(s));
  }, nogil);
  m.def("adaptive_avg_pool2d_backward", [](Address go, Address gi, index_t planes, index_t h, index_t w,
                                           index_t oh, index_t ow, Address s) {
    cuda::adaptive_avg_pool2d_backward(in(go), out(gi), A{planes, h, w, oh, ow}, stream_of(s));
  }, nogil);
  m.def("adaptive_max_pool2d_forward", [](Address x, Address y, Address indices, index_t planes, index_t h,
                                          index_t w, index_t oh, index_t ow, Address s) {
    cuda::adaptive_max_pool2d_forward(in(x), out(y), out_i64(indices), A{planes, h, w, oh, ow}, stream_of(s));
  }, nogil);
  m.def("adaptive_max_pool2d_backward", [](Address go, Address x, Address gi, Address workspace, index_t planes,
                                           index_t h, index_t w, index_t oh, index_t ow, Address s) {
    cuda::adaptive_max_pool2d_backward(in(go), in(x), out(gi), out_i64(workspace), A{planes, h, w, oh, ow},
                                       stream_of(s));
  }, nogil);
  m.def("adaptive_max_pool2d_backward_indices", [](Address go, Address indices, Address gi, index_t planes,
                                                   index_t h, index_t w, index_t oh, index_t ow, Address s) {
    cuda::adaptive_max_pool2d_backward_indices(in(go), in_i64(indices), out(gi), A{planes, h, w, oh, ow},
                                               stream_of(s));
  }, nogil);

  m.def("max_unpool2d_forward", [](Address x, Address indices, Address y, index_t planes, index_t in_hw,
                                   index_t out_hw, Address s) {
    cuda::max_unpool2d_forward(in(x), in_i64(indices), out(y), planes, in_hw, out_hw, stream_of(s));
  }, nogil);
  m.def("max_unpool2d_backward", [](Address go, Address indices, Address gx, index_t planes, index_t in_hw,
                                    index_t out_hw, Address s) {
    cuda::max_unpool2d_backward(in(go), in_i64(indices), out(gx), planes, in_hw, out_hw, stream_of(s));
  }, nogil);

  m.def("global_avg_pool2d_forward", [](Address x, Address y, index_t planes, index_t hw, Address s) {
    cuda::global_avg_pool2d_forward(in(x), out(y), planes, hw, stream_of(s));
  }, nogil);
  m.def("global_avg_pool2d_backward", [](Address go, Address gi, index_t planes, index_t hw, Address s) {
    cuda::global_avg_pool2d_backward(in(go), out(gi), planes, hw, stream_of(s));
  }, nogil);
}

}  // namespace fastlayers::bindings
