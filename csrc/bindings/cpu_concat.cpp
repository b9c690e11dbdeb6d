#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <vector>

#include "bindings/cpu_bindings.h"
#include "bindings/pointers.h"
#include "cpu/concat.h"

namespace py = pybind11;

namespace fastlayers::bindings {

// pieces: one address (or NumPy array) per piece, widths: floats per row of each piece (its size
// along the axis times the inner size), outer: rows. Validated by fastlayers.ops.cat / split.
void bind_cpu_concat(py::module_& m) {
  m.def("cat_forward", [](const std::vector<Address>& pieces, const std::vector<index_t>& widths, Address y,
                          index_t outer) {
    if (pieces.size() != widths.size()) throw py::value_error("cat: one width per piece");
    std::vector<const float*> src(pieces.size());
    for (std::size_t p = 0; p < pieces.size(); ++p) src[p] = in(pieces[p]);
    py::gil_scoped_release nogil;
    cpu::cat_forward(src.data(), widths.data(), static_cast<index_t>(src.size()), out(y), outer);
  });
  m.def("cat_backward", [](Address go, const std::vector<Address>& pieces, const std::vector<index_t>& widths,
                           index_t outer) {
    if (pieces.size() != widths.size()) throw py::value_error("cat_backward: one width per piece");
    std::vector<float*> dst(pieces.size());
    for (std::size_t p = 0; p < pieces.size(); ++p) dst[p] = out(pieces[p]);
    py::gil_scoped_release nogil;
    cpu::cat_backward(in(go), dst.data(), widths.data(), static_cast<index_t>(dst.size()), outer);
  });
}

}  // namespace fastlayers::bindings
