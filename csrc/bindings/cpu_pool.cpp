#include <pybind11/pybind11.h>

#include "bindings/cpu_bindings.h"
#include "bindings/pointers.h"
#include "cpu/pool.h"

namespace py = pybind11;

namespace fastlayers::bindings {

// Geometry arguments, in this order, for every windowed pool:
// planes (N*C), h, w, kh, kw, sh, sw, ph, pw. The Python op has validated them.
void bind_cpu_pool(py::module_& m) {
  const auto nogil = py::call_guard<py::gil_scoped_release>();
  using G = cpu::Pool2dGeometry;
  m.def("max_pool2d_forward", [](Address x, Address y, index_t planes, index_t h, index_t w,
                                 index_t kh, index_t kw, index_t sh, index_t sw, index_t ph, index_t pw) {
    cpu::max_pool2d_forward(in(x), out(y), G{planes, h, w, kh, kw, sh, sw, ph, pw});
  }, nogil);
  m.def("max_pool2d_backward", [](Address go, Address x, Address gi, index_t planes,
                                  index_t h, index_t w, index_t kh, index_t kw, index_t sh, index_t sw,
                                  index_t ph, index_t pw) {
    cpu::max_pool2d_backward(in(go), in(x), out(gi), G{planes, h, w, kh, kw, sh, sw, ph, pw});
  }, nogil);
  m.def("avg_pool2d_forward", [](Address x, Address y, index_t planes, index_t h, index_t w,
                                 index_t kh, index_t kw, index_t sh, index_t sw, index_t ph, index_t pw,
                                 bool count_include_pad) {
    cpu::avg_pool2d_forward(in(x), out(y), G{planes, h, w, kh, kw, sh, sw, ph, pw}, count_include_pad);
  }, nogil);
  m.def("avg_pool2d_backward", [](Address go, Address gi, index_t planes, index_t h, index_t w,
                                  index_t kh, index_t kw, index_t sh, index_t sw, index_t ph, index_t pw,
                                  bool count_include_pad) {
    cpu::avg_pool2d_backward(in(go), out(gi), G{planes, h, w, kh, kw, sh, sw, ph, pw}, count_include_pad);
  }, nogil);
  m.def("lp_pool2d_forward", [](Address x, Address y, index_t planes, index_t h, index_t w,
                                index_t kh, index_t kw, index_t sh, index_t sw, index_t ph, index_t pw,
                                double p) {
    cpu::lp_pool2d_forward(in(x), out(y), G{planes, h, w, kh, kw, sh, sw, ph, pw}, p);
  }, nogil);
  m.def("lp_pool2d_backward", [](Address go, Address x, Address gi, index_t planes,
                                 index_t h, index_t w, index_t kh, index_t kw, index_t sh, index_t sw,
                                 index_t ph, index_t pw, double p) {
    cpu::lp_pool2d_backward(in(go), in(x), out(gi), G{planes, h, w, kh, kw, sh, sw, ph, pw}, p);
  }, nogil);
  m.def("global_avg_pool2d_forward", [](Address x, Address y, index_t planes, index_t hw) {
    cpu::global_avg_pool2d_forward(in(x), out(y), planes, hw);
  }, nogil);
  m.def("global_avg_pool2d_backward", [](Address go, Address gi, index_t planes, index_t hw) {
    cpu::global_avg_pool2d_backward(in(go), out(gi), planes, hw);
  }, nogil);
}

}  // namespace fastlayers::bindings
