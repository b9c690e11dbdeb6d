#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>

#include "bindings/cpu_bindings.h"
#include "bindings/pointers.h"
#include "cpu/conv.h"

namespace py = pybind11;

namespace fastlayers::bindings {

namespace {

// The geometry travels as one 16-int tuple (converted before the GIL is released):
// (N, C, H, W, K, R, S, P, Q, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups).
using ShapeArgs = std::array<index_t, 16>;

cpu::Conv2dShape to_shape(const ShapeArgs& a) {
  return cpu::Conv2dShape{a[0], a[1], a[2],  a[3],  a[4],  a[5],  a[6],  a[7],
                          a[8], a[9], a[10], a[11], a[12], a[13], a[14], a[15]};
}

void check(bool ok) {
  // The Python op sizes the workspace with conv2d_workspace_floats; this is only a safety net.
  if (!ok) throw py::value_error("conv2d: workspace smaller than conv2d_workspace_floats() asks for");
}

}  // namespace

void bind_cpu_conv(py::module_& m) {
  m.def("conv2d_workspace_floats", [](const ShapeArgs& shape, int pass, int threads) {
    if (pass < 0 || pass > 2) throw py::value_error("pass must be 0, 1 or 2");
    return cpu::conv2d_workspace_floats(to_shape(shape), static_cast<cpu::ConvPass>(pass), threads);
  });
  m.def("conv2d_forward", [](Address x, Address w, Address b, Address y,
                             Address ws, index_t ws_floats, const ShapeArgs& shape) {
    bool ok;
    {
      py::gil_scoped_release nogil;
      ok = cpu::conv2d_forward(to_shape(shape), in(x), in(w), in(b), out(y), out(ws), ws_floats);
    }
    check(ok);
  });
  m.def("conv2d_backward_data", [](Address go, Address w, Address gx, Address ws,
                                   index_t ws_floats, const ShapeArgs& shape) {
    bool ok;
    {
      py::gil_scoped_release nogil;
      ok = cpu::conv2d_backward_data(to_shape(shape), in(go), in(w), out(gx), out(ws), ws_floats);
    }
    check(ok);
  });
  m.def("conv2d_backward_weight", [](Address go, Address x, Address gw, Address gb,
                                     Address ws, index_t ws_floats, const ShapeArgs& shape) {
    bool ok;
    {
      py::gil_scoped_release nogil;
      ok = cpu::conv2d_backward_weight(to_shape(shape), in(go), in(x), out(gw), out(gb), out(ws),
                                       ws_floats);
    }
    check(ok);
  });
}

}  // namespace fastlayers::bindings
