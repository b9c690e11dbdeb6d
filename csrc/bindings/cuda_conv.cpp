#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>

#include "bindings/cuda_bindings.h"
#include "bindings/conv_args.h"
#include "bindings/pointers.h"
#include "cuda/conv.h"
#include "cuda/conv_plan.h"

namespace py = pybind11;

namespace fastlayers::bindings {

// Same names and arguments as the CPU bindings, plus the CuPy stream last (python/fastlayers/_backend.py
// appends it to every CUDA call, conv2d_workspace_floats included, which ignores it).
void bind_cuda_conv(py::module_& m) {
  const auto nogil = py::call_guard<py::gil_scoped_release>();
  m.def("conv2d_workspace_floats", [](const Conv2dShapeArgs& shape, int pass, int threads, Address) {
    if (pass < 0 || pass > 2) throw py::value_error("pass must be 0, 1 or 2");
    const index_t n = cuda::conv2d_workspace_floats(checked_conv2d_shape(shape), static_cast<cuda::ConvPass>(pass), threads);
    if (n < 0) throw py::value_error("conv2d: the workspace size overflows int64 for this geometry");
    return n;
  });
  // The tile the launcher would choose for `pass` on a device with `sms` multiprocessors (sm_90
  // limits otherwise): host-only, for benchmarks/cuda_plan.py.
  m.def("conv2d_plan", [](const Conv2dShapeArgs& shape, int pass, int sms) {
    if (pass < 0 || pass > 2) throw py::value_error("pass must be 0, 1 or 2");
    if (sms <= 0) throw py::value_error("sms must be positive");
    namespace cp = cuda::conv_plan;
    cuda::DeviceProfile dev;
    dev.sms = sms;
    const auto cpass = static_cast<cuda::ConvPass>(pass);
    const cp::Plan p = cp::choose(to_conv2d_shape(shape), cpass, dev);
    const cp::Tile& t = cp::tile_of(cpass, p.tile);
    py::dict d;
    d["pass"] = cp::pass_name(cpass);
    d["tile_id"] = p.tile;
    d["tile"] = cp::tile_name(cpass, p.tile);
    d["bm"] = t.bm, d["bn"] = t.bn, d["tm"] = t.tm, d["tn"] = t.tn, d["bk"] = t.bk;
    d["threads"] = t.threads();
    d["min_blocks"] = t.min_blocks;
    d["smem_bytes"] = t.smem_bytes();
    d["M"] = p.M, d["N"] = p.N, d["z_count"] = p.z_count;
    d["grid"] = py::make_tuple(p.grid_x, p.grid_y, p.grid_z);
    d["blocks"] = p.blocks;
    d["splits"] = p.splits;
    d["bias_splits"] = p.bias_splits;
    d["useful_flops"] = p.useful_flops;
    d["issued_flops"] = p.issued_flops;
    d["efficiency"] = p.efficiency();
    d["blocks_per_sm"] = p.blocks_per_sm;
    d["waves"] = p.waves;
    d["model_seconds"] = p.model_seconds;
    return d;
  }, py::arg("shape"), py::arg("pass_"), py::arg("sms") = 132);
  // The GPU kernels never run short of workspace (backward_weight splits fewer ways), so they
  // always return true; the result is ignored.
  m.def("conv2d_forward", [](Address x, Address w, Address b, Address y,
                             Address ws, index_t ws_floats, const Conv2dShapeArgs& shape, Address s) {
    cuda::conv2d_forward(checked_conv2d_shape(shape), in(x), in(w), in(b), out(y), out(ws), ws_floats,
                         stream_of(s));
  }, nogil);
  m.def("conv2d_backward_data", [](Address go, Address w, Address gx, Address ws,
                                   index_t ws_floats, const Conv2dShapeArgs& shape, Address s) {
    cuda::conv2d_backward_data(checked_conv2d_shape(shape), in(go), in(w), out(gx), out(ws), ws_floats, stream_of(s));
  }, nogil);
  m.def("conv2d_backward_weight", [](Address go, Address x, Address gw, Address gb,
                                     Address ws, index_t ws_floats, const Conv2dShapeArgs& shape,
                                     Address s) {
    cuda::conv2d_backward_weight(checked_conv2d_shape(shape), in(go), in(x), out(gw), out(gb), out(ws),
                                 ws_floats, stream_of(s));
  }, nogil);
}

}  // namespace fastlayers::bindings
