#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "bindings/cpu_bindings.h"
#include "bindings/pad_args.h"
#include "bindings/pointers.h"
#include "cpu/pad.h"

namespace py = pybind11;

namespace fastlayers::bindings {

// Geometry, in this order: mode (0 constant, 1 reflect, 2 replicate, 3 circular), then the input
// sizes, output sizes and left pads per (merged) dimension. Validated by fastlayers.ops.pad.
void bind_cpu_pad(py::module_& m) {
  m.def("pad_forward", [](Address x, Address y, int mode, const std::vector<index_t>& in_sizes,
                          const std::vector<index_t>& out_sizes, const std::vector<index_t>& lo, float value) {
    const PadGeometry g = to_pad_geometry(mode, in_sizes, out_sizes, lo);
    py::gil_scoped_release nogil;
    cpu::pad_forward(in(x), out(y), g, value);
  });
  m.def("pad_backward", [](Address go, Address gi, int mode, const std::vector<index_t>& in_sizes,
                           const std::vector<index_t>& out_sizes, const std::vector<index_t>& lo) {
    const PadGeometry g = to_pad_geometry(mode, in_sizes, out_sizes, lo);
    py::gil_scoped_release nogil;
    cpu::pad_backward(in(go), out(gi), g);
  });
}

}  // namespace fastlayers::bindings
