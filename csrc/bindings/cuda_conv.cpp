#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>

#include "bindings/cuda_bindings.h"
#include "bindings/pointers.h"
#include "cuda/conv.h"

namespace py = pybind11;

namespace fastlayers::bindings {

namespace {

// The geometry travels as one 16-int tuple, as for the CPU (csrc/bindings/cpu_conv.cpp):
// (N, C, H, W, K, R, S, P, Q, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups).
using ShapeArgs = std::array<index_t, 16>;

cuda::Conv2dShape to_shape(const ShapeArgs& a) {
  return cuda::Conv2dShape{a[0], a[1], a[2],  a[3],  a[4],  a[5],  a[6],  a[7],
                           a[8], a[9], a[10], a[11], a[12], a[13], a[14], a[15]};
}

}  // namespace

// Same names and arguments as the CPU bindings, plus the CuPy stream last (python/fastlayers/_backend.py
// appends it to every CUDA call, conv2d_workspace_floats included, which ignores it).
void bind_cuda_conv(py::module_& m) {
  const auto nogil = py::call_guard<py::gil_scoped_release>();
  m.def("conv2d_workspace_floats", [](const ShapeArgs& shape, int pass, int threads, Address) {
    if (pass < 0 || pass > 2) throw py::value_error("pass must be 0, 1 or 2");
    return cuda::conv2d_workspace_floats(to_shape(shape), static_cast<cuda::ConvPass>(pass), threads);
  });
  // The GPU kernels never run short of workspace (backward_weight splits fewer ways), so they
  // always return true; the result is ignored.
  m.def("conv2d_forward", [](Address x, Address w, Address b, Address y,
                             Address ws, index_t ws_floats, const ShapeArgs& shape, Address s) {
    cuda::conv2d_forward(to_shape(shape), in(x), in(w), in(b), out(y), out(ws), ws_floats,
                         stream_of(s));
  }, nogil);
  m.def("conv2d_backward_data", [](Address go, Address w, Address gx, Address ws,
                                   index_t ws_floats, const ShapeArgs& shape, Address s) {
    cuda::conv2d_backward_data(to_shape(shape), in(go), in(w), out(gx), out(ws), ws_floats, stream_of(s));
  }, nogil);
  m.def("conv2d_backward_weight", [](Address go, Address x, Address gw, Address gb,
                                     Address ws, index_t ws_floats, const ShapeArgs& shape,
                                     Address s) {
    cuda::conv2d_backward_weight(to_shape(shape), in(go), in(x), out(gw), out(gb), out(ws),
                                 ws_floats, stream_of(s));
  }, nogil);
}

}  // namespace fastlayers::bindings
