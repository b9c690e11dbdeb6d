#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <vector>

#include "bindings/cuda_bindings.h"
#include "bindings/pointers.h"
#include "cuda/concat.h"

namespace py = pybind11;

namespace fastlayers::bindings {

// Same names and arguments as csrc/bindings/cpu_concat.cpp (pieces as device addresses), plus the
// CuPy stream last.
void bind_cuda_concat(py::module_& m) {
  m.def("cat_forward", [](const std::vector<Address>& pieces, const std::vector<index_t>& widths, Address y,
                          index_t outer, Address s) {
    if (pieces.size() != widths.size()) throw py::value_error("cat: one width per piece");
    std::vector<const float*> src(pieces.size());
    for (std::size_t p = 0; p < pieces.size(); ++p) src[p] = in(pieces[p]);
    py::gil_scoped_release nogil;
    cuda::cat_forward(src.data(), widths.data(), static_cast<index_t>(src.size()), out(y), outer, stream_of(s));
  });
  m.def("cat_backward", [](Address go, const std::vector<Address>& pieces, const std::vector<index_t>& widths,
                           index_t outer, Address s) {
    if (pieces.size() != widths.size()) throw py::value_error("cat_backward: one width per piece");
    std::vector<float*> dst(pieces.size());
    for (std::size_t p = 0; p < pieces.size(); ++p) dst[p] = out(pieces[p]);
    py::gil_scoped_release nogil;
    cuda::cat_backward(in(go), dst.data(), widths.data(), static_cast<index_t>(dst.size()), outer, stream_of(s));
  });
}

}  // namespace fastlayers::bindings
