// The geometry of a 2-D pooling, shared by the CPU and CUDA kernels (csrc/cpu/pool.h,
// csrc/cuda/pool.h): `planes` = N*C independent h x w planes, kernel kh x kw, stride sh x sw,
// padding ph x pw, floor-mode output.
#pragma once
#include "common/types.h"

namespace fastlayers {

struct Pool2dGeometry {
  index_t planes, h, w, kh, kw, sh, sw, ph, pw;
  index_t oh() const { return (h + 2 * ph - kh) / sh + 1; }
  index_t ow() const { return (w + 2 * pw - kw) / sw + 1; }
};

}  // namespace fastlayers
