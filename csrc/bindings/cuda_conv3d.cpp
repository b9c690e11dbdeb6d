#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>

#include "bindings/cuda_bindings.h"
#include "bindings/pointers.h"
#include "cuda/conv3d.h"
#include "cuda/conv_transpose.h"
#include "cuda/pool3d.h"

namespace py = pybind11;

namespace fastlayers::bindings {

namespace {

ConvPass to_pass(int pass) {
  if (pass < 0 || pass > 2) throw py::value_error("pass must be 0, 1 or 2");
  return static_cast<ConvPass>(pass);
}

}  // namespace

// conv3d, conv_transpose2d and the 3-D pools: the CPU bindings' names and arguments
// (cpu_conv3d.cpp, cpu_pool3d.cpp) plus the CuPy stream last. The GPU passes never run short of
// workspace, so their boolean results are ignored.
void bind_cuda_conv3d(py::module_& m) {
  const auto nogil = py::call_guard<py::gil_scoped_release>();
  m.def("conv3d_workspace_floats", [](const Conv3dShapeArgs& shape, int pass, int threads, Address) {
    return cuda::conv3d_workspace_floats(to_conv3d_shape(shape), to_pass(pass), threads);
  });
  m.def("conv3d_forward", [](Address x, Address w, Address b, Address y, Address ws, index_t ws_floats,
                             const Conv3dShapeArgs& shape, Address s) {
    cuda::conv3d_forward(to_conv3d_shape(shape), in(x), in(w), in(b), out(y), out(ws), ws_floats, stream_of(s));
  }, nogil);
  m.def("conv3d_backward_data", [](Address go, Address w, Address gx, Address ws, index_t ws_floats,
                                   const Conv3dShapeArgs& shape, Address s) {
    cuda::conv3d_backward_data(to_conv3d_shape(shape), in(go), in(w), out(gx), out(ws), ws_floats, stream_of(s));
  }, nogil);
  m.def("conv3d_backward_weight", [](Address go, Address x, Address gw, Address gb, Address ws, index_t ws_floats,
                                     const Conv3dShapeArgs& shape, Address s) {
    cuda::conv3d_backward_weight(to_conv3d_shape(shape), in(go), in(x), out(gw), out(gb), out(ws), ws_floats,
                                 stream_of(s));
  }, nogil);

  m.def("conv_transpose2d_workspace_floats", [](const Conv2dShapeArgs& shape, int pass, int threads, Address) {
    return cuda::conv_transpose2d_workspace_floats(to_conv2d_shape(shape), to_pass(pass), threads);
  });
  m.def("conv_transpose2d_forward", [](Address x, Address w, Address b, Address y, Address ws, index_t ws_floats,
                                       const Conv2dShapeArgs& shape, Address s) {
    cuda::conv_transpose2d_forward(to_conv2d_shape(shape), in(x), in(w), in(b), out(y), out(ws), ws_floats,
                                   stream_of(s));
  }, nogil);
  m.def("conv_transpose2d_backward_data", [](Address go, Address w, Address gx, Address ws, index_t ws_floats,
                                             const Conv2dShapeArgs& shape, Address s) {
    cuda::conv_transpose2d_backward_data(to_conv2d_shape(shape), in(go), in(w), out(gx), out(ws), ws_floats,
                                         stream_of(s));
  }, nogil);
  m.def("conv_transpose2d_backward_weight", [](Address go, Address x, Address gw, Address gb, Address ws,
                                               index_t ws_floats, const Conv2dShapeArgs& shape, Address s) {
    cuda::conv_transpose2d_backward_weight(to_conv2d_shape(shape), in(go), in(x), out(gw), out(gb), out(ws),
                                           ws_floats, stream_of(s));
  }, nogil);

  m.def("max_pool3d_forward", [](Address x, Address y, Address indices, const Pool3dGeometryArgs& g, Address s) {
    cuda::max_pool3d_forward(in(x), out(y), out_i64(indices), to_pool3d_geometry(g), stream_of(s));
  }, nogil);
  m.def("max_pool3d_backward", [](Address go, Address x, Address gi, const Pool3dGeometryArgs& g, Address s) {
    cuda::max_pool3d_backward(in(go), in(x), out(gi), to_pool3d_geometry(g), stream_of(s));
  }, nogil);
  m.def("max_pool3d_backward_indices", [](Address go, Address indices, Address gi, const Pool3dGeometryArgs& g,
                                          Address s) {
    cuda::max_pool3d_backward_indices(in(go), in_i64(indices), out(gi), to_pool3d_geometry(g), stream_of(s));
  }, nogil);
  m.def("avg_pool3d_forward", [](Address x, Address y, const Pool3dGeometryArgs& g, bool count_include_pad,
                                 index_t divisor_override, Address s) {
    cuda::avg_pool3d_forward(in(x), out(y), to_pool3d_geometry(g), count_include_pad, divisor_override, stream_of(s));
  }, nogil);
  m.def("avg_pool3d_backward", [](Address go, Address gi, const Pool3dGeometryArgs& g, bool count_include_pad,
                                  index_t divisor_override, Address s) {
    cuda::avg_pool3d_backward(in(go), out(gi), to_pool3d_geometry(g), count_include_pad, divisor_override,
                              stream_of(s));
  }, nogil);
}

}  // namespace fastlayers::bindings
