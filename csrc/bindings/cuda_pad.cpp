#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "bindings/cuda_bindings.h"
#include "bindings/pad_args.h"
#include "bindings/pointers.h"
#include "cuda/pad.h"

namespace py = pybind11;

namespace fastlayers::bindings {

// Same names and arguments as csrc/bindings/cpu_pad.cpp, plus the CuPy stream last.
void bind_cuda_pad(py::module_& m) {
  m.def("pad_forward", [](Address x, Address y, int mode, const std::vector<index_t>& in_sizes,
                          const std::vector<index_t>& out_sizes, const std::vector<index_t>& lo, float value,
                          Address s) {
    const PadGeometry g = to_pad_geometry(mode, in_sizes, out_sizes, lo);
    py::gil_scoped_release nogil;
    cuda::pad_forward(in(x), out(y), g, value, stream_of(s));
  });
  m.def("pad_backward", [](Address go, Address gi, int mode, const std::vector<index_t>& in_sizes,
                           const std::vector<index_t>& out_sizes, const std::vector<index_t>& lo, Address s) {
    const PadGeometry g = to_pad_geometry(mode, in_sizes, out_sizes, lo);
    if (mode != kPadConstant && g.rank > 4)
      throw py::value_error("pad_backward: reflect/replicate/circular take at most 4 merged dimensions");
    py::gil_scoped_release nogil;
    cuda::pad_backward(in(go), out(gi), g, stream_of(s));
  });
}

}  // namespace fastlayers::bindings
