// The pad geometry as the Python op passes it (mode, input sizes, output sizes, left pads), turned
// into PadGeometry for both backends' bindings. The op has validated it; this re-checks only what
// would make the kernel read or write out of bounds in a way the op cannot rule out by construction.
#pragma once
#include <pybind11/pybind11.h>

#include <vector>

#include "common/pad_geometry.h"

namespace fastlayers::bindings {

inline PadGeometry to_pad_geometry(int mode, const std::vector<index_t>& in, const std::vector<index_t>& out,
                                   const std::vector<index_t>& lo) {
  const auto rank = in.size();
  if (rank == 0 || rank > static_cast<std::size_t>(kPadMaxRank) || out.size() != rank || lo.size() != rank)
    throw pybind11::value_error("pad: geometry must have 1 to 8 dimensions with matching in/out/lo lengths");
  if (mode < kPadConstant || mode > kPadCircular) throw pybind11::value_error("pad: unknown mode code");
  PadGeometry g;
  g.rank = static_cast<int>(rank);
  g.mode = mode;
  for (std::size_t d = 0; d < rank; ++d) {
    if (in[d] < 0 || out[d] < 0) throw pybind11::value_error("pad: negative size in the geometry");
    g.in[d] = in[d];
    g.out[d] = out[d];
    g.lo[d] = lo[d];
  }
  return g;
}

}  // namespace fastlayers::bindings
