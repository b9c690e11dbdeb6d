#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <string>

#include "bindings/cpu_bindings.h"
#include "bindings/pointers.h"
#include "cpu/conv3d.h"
#include "cpu/conv_transpose.h"

namespace py = pybind11;

namespace fastlayers::bindings {

namespace {

void check(bool ok, const char* op) {
  // The Python op sizes the workspace with the *_workspace_floats function; this is a safety net.
  if (!ok) throw py::value_error(std::string(op) + ": workspace smaller than its *_workspace_floats() asks for");
}

ConvPass to_pass(int pass) {
  if (pass < 0 || pass > 2) throw py::value_error("pass must be 0, 1 or 2");
  return static_cast<ConvPass>(pass);
}

}  // namespace

// conv3d (22-int shape tuple, csrc/common/conv3d_shape.h) and conv_transpose2d (the 16-int conv2d
// tuple of the conv2d it is the input gradient of, csrc/cpu/conv_transpose.h). The Python ops
// (ops/conv3d.py, ops/conv_transpose.py) have validated everything.
void bind_cpu_conv3d(py::module_& m) {
  m.def("conv3d_workspace_floats", [](const Conv3dShapeArgs& shape, int pass, int threads) {
    return cpu::conv3d_workspace_floats(to_conv3d_shape(shape), to_pass(pass), threads);
  });
  m.def("conv3d_forward", [](Address x, Address w, Address b, Address y, Address ws, index_t ws_floats,
                             const Conv3dShapeArgs& shape) {
    bool ok;
    {
      py::gil_scoped_release nogil;
      ok = cpu::conv3d_forward(to_conv3d_shape(shape), in(x), in(w), in(b), out(y), out(ws), ws_floats);
    }
    check(ok, "conv3d");
  });
  m.def("conv3d_backward_data", [](Address go, Address w, Address gx, Address ws, index_t ws_floats,
                                   const Conv3dShapeArgs& shape) {
    bool ok;
    {
      py::gil_scoped_release nogil;
      ok = cpu::conv3d_backward_data(to_conv3d_shape(shape), in(go), in(w), out(gx), out(ws), ws_floats);
    }
    check(ok, "conv3d_backward_data");
  });
  m.def("conv3d_backward_weight", [](Address go, Address x, Address gw, Address gb, Address ws, index_t ws_floats,
                                     const Conv3dShapeArgs& shape) {
    bool ok;
    {
      py::gil_scoped_release nogil;
      ok = cpu::conv3d_backward_weight(to_conv3d_shape(shape), in(go), in(x), out(gw), out(gb), out(ws), ws_floats);
    }
    check(ok, "conv3d_backward_weight");
  });

  m.def("conv_transpose2d_workspace_floats", [](const Conv2dShapeArgs& shape, int pass, int threads) {
    return cpu::conv_transpose2d_workspace_floats(to_conv2d_shape(shape), to_pass(pass), threads);
  });
  m.def("conv_transpose2d_forward", [](Address x, Address w, Address b, Address y, Address ws, index_t ws_floats,
                                       const Conv2dShapeArgs& shape) {
    bool ok;
    {
      py::gil_scoped_release nogil;
      ok = cpu::conv_transpose2d_forward(to_conv2d_shape(shape), in(x), in(w), in(b), out(y), out(ws), ws_floats);
    }
    check(ok, "conv_transpose2d");
  });
  m.def("conv_transpose2d_backward_data", [](Address go, Address w, Address gx, Address ws, index_t ws_floats,
                                             const Conv2dShapeArgs& shape) {
    bool ok;
    {
      py::gil_scoped_release nogil;
      ok = cpu::conv_transpose2d_backward_data(to_conv2d_shape(shape), in(go), in(w), out(gx), out(ws), ws_floats);
    }
    check(ok, "conv_transpose2d_backward_data");
  });
  m.def("conv_transpose2d_backward_weight", [](Address go, Address x, Address gw, Address gb, Address ws,
                                               index_t ws_floats, const Conv2dShapeArgs& shape) {
    bool ok;
    {
      py::gil_scoped_release nogil;
      ok = cpu::conv_transpose2d_backward_weight(to_conv2d_shape(shape), in(go), in(x), out(gw), out(gb), out(ws),
                                                 ws_floats);
    }
    check(ok, "conv_transpose2d_backward_weight");
  });
}

}  // namespace fastlayers::bindings
