#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>

#include "bindings/cpu_bindings.h"
#include "bindings/conv_args.h"
#include "bindings/pointers.h"
#include "cpu/conv.h"

namespace py = pybind11;

namespace fastlayers::bindings {

namespace {

void check(bool ok) {
  // The Python op sizes the workspace with conv2d_workspace_floats; this is only a safety net.
  if (!ok) throw py::value_error("conv2d: workspace smaller than conv2d_workspace_floats() asks for");
}

}  // namespace

void bind_cpu_conv(py::module_& m) {
  m.attr("CONV_MAX_ELEMENTS") = kMaxConvElements;  // python/fastlayers/ops/conv.py MAX_ELEMENTS
  m.def("conv2d_workspace_floats", [](const Conv2dShapeArgs& shape, int pass, int threads) {
    if (pass < 0 || pass > 2) throw py::value_error("pass must be 0, 1 or 2");
    if (threads < 1) throw py::value_error("threads must be >= 1");
    const index_t n = cpu::conv2d_workspace_floats(checked_conv2d_shape(shape), static_cast<cpu::ConvPass>(pass), threads);
    if (n < 0) throw py::value_error("conv2d: the workspace size overflows int64 for this geometry");
    return n;
  });
  m.def("conv2d_forward", [](Address x, Address w, Address b, Address y,
                             Address ws, index_t ws_floats, const Conv2dShapeArgs& shape) {
    const Conv2dShape s = checked_conv2d_shape(shape);
    bool ok;
    {
      py::gil_scoped_release nogil;
      ok = cpu::conv2d_forward(s, in(x), in(w), in(b), out(y), out(ws), ws_floats);
    }
    check(ok);
  });
  m.def("conv2d_backward_data", [](Address go, Address w, Address gx, Address ws,
                                   index_t ws_floats, const Conv2dShapeArgs& shape) {
    const Conv2dShape s = checked_conv2d_shape(shape);
    bool ok;
    {
      py::gil_scoped_release nogil;
      ok = cpu::conv2d_backward_data(s, in(go), in(w), out(gx), out(ws), ws_floats);
    }
    check(ok);
  });
  m.def("conv2d_backward_weight", [](Address go, Address x, Address gw, Address gb,
                                     Address ws, index_t ws_floats, const Conv2dShapeArgs& shape) {
    const Conv2dShape s = checked_conv2d_shape(shape);
    bool ok;
    {
      py::gil_scoped_release nogil;
      ok = cpu::conv2d_backward_weight(s, in(go), in(x), out(gw), out(gb), out(ws),
                                       ws_floats);
    }
    check(ok);
  });
}

}  // namespace fastlayers::bindings
