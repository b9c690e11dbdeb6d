#include <pybind11/pybind11.h>

#include "bindings/cuda_bindings.h"
#include "bindings/pointers.h"
#include "cuda/pool.h"

namespace py = pybind11;

namespace fastlayers::bindings {

// Same names and arguments as csrc/bindings/cpu_pool.cpp, plus the CuPy stream last. Geometry, in
// this order, for every windowed pool: planes (N*C), h, w, kh, kw, sh, sw, ph, pw. The Python op has
// validated them.
void bind_cuda_pool(py::module_& m) {
  const auto nogil = py::call_guard<py::gil_scoped_release>();
  using G = cuda::Pool2dGeometry;
  m.def("max_pool2d_forward", [](Address x, Address y, index_t planes, index_t h, index_t w,
                                 index_t kh, index_t kw, index_t sh, index_t sw, index_t ph, index_t pw,
                                 Address s) {
    cuda::max_pool2d_forward(in(x), out(y), G{planes, h, w, kh, kw, sh, sw, ph, pw}, stream_of(s));
  }, nogil);
  m.def("max_pool2d_backward", [](Address go, Address x, Address gi, index_t planes,
                                  index_t h, index_t w, index_t kh, index_t kw, index_t sh, index_t sw,
                                  index_t ph, index_t pw, Address s) {
    cuda::max_pool2d_backward(in(go), in(x), out(gi), G{planes, h, w, kh, kw, sh, sw, ph, pw}, stream_of(s));
  }, nogil);
  m.def("avg_pool2d_forward", [](Address x, Address y, index_t planes, index_t h, index_t w,
                                 index_t kh, index_t kw, index_t sh, index_t sw, index_t ph, index_t pw,
                                 bool count_include_pad, Address s) {
    cuda::avg_pool2d_forward(in(x), out(y), G{planes, h, w, kh, kw, sh, sw, ph, pw}, count_include_pad,
                             stream_of(s));
  }, nogil);
  m.def("avg_pool2d_backward", [](Address go, Address gi, index_t planes, index_t h, index_t w,
                                  index_t kh, index_t kw, index_t sh, index_t sw, index_t ph, index_t pw,
                                  bool count_include_pad, Address s) {
    cuda::avg_pool2d_backward(in(go), out(gi), G{planes, h, w, kh, kw, sh, sw, ph, pw}, count_include_pad,
                              stream_of(s));
  }, nogil);
  m.def("lp_pool2d_forward", [](Address x, Address y, index_t planes, index_t h, index_t w,
                                index_t kh, index_t kw, index_t sh, index_t sw, index_t ph, index_t pw,
                                double p, Address s) {
    cuda::lp_pool2d_forward(in(x), out(y), G{planes, h, w, kh, kw, sh, sw, ph, pw}, p, stream_of(s));
  }, nogil);
  m.def("lp_pool2d_backward", [](Address go, Address x, Address gi, index_t planes,
                                 index_t h, index_t w, index_t kh, index_t kw, index_t sh, index_t sw,
                                 index_t ph, index_t pw, double p, Address s) {
    cuda::lp_pool2d_backward(in(go), in(x), out(gi), G{planes, h, w, kh, kw, sh, sw, ph, pw}, p,
                             stream_of(s));
  }, nogil);
  m.def("global_avg_pool2d_forward", [](Address x, Address y, index_t planes, index_t hw,
                                        Address s) {
    cuda::global_avg_pool2d_forward(in(x), out(y), planes, hw, stream_of(s));
  }, nogil);
  m.def("global_avg_pool2d_backward", [](Address go, Address gi, index_t planes, index_t hw,
                                         Address s) {
    cuda::global_avg_pool2d_backward(in(go), out(gi), planes, hw, stream_of(s));
  }, nogil);
}

}  // namespace fastlayers::bindings
