#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <cstdint>

#include "bindings/cpu_bindings.h"
#include "bindings/pointers.h"
#include "common/philox.h"
#include "cpu/dropout.h"

namespace py = pybind11;

namespace fastlayers::bindings {

void bind_cpu_dropout(py::module_& m) {
  const auto nogil = py::call_guard<py::gil_scoped_release>();
  m.def("dropout_forward", [](Address x, Address y, index_t n, std::uint64_t seed,
                              std::uint32_t threshold, float scale) {
    cpu::dropout_forward(in(x), out(y), n, seed, threshold, scale);
  }, nogil);
  m.def("dropout_backward", [](Address g, Address gi, index_t n, std::uint64_t seed,
                               std::uint32_t threshold, float scale) {
    cpu::dropout_backward(in(g), out(gi), n, seed, threshold, scale);
  }, nogil);
  m.def("dropout_mask", [](Address mask, index_t n, std::uint64_t seed, std::uint32_t threshold) {
    cpu::dropout_mask(out(mask), n, seed, threshold);
  }, nogil);
  // The bare generator, for the known-answer tests against Random123's vectors.
  m.def("philox4x32_10", [](std::array<std::uint32_t, 4> ctr, std::array<std::uint32_t, 2> key) {
    philox::philox4x32_10(ctr[0], ctr[1], ctr[2], ctr[3], key[0], key[1]);
    return ctr;
  }, py::arg("counter"), py::arg("key"));
}

}  // namespace fastlayers::bindings
