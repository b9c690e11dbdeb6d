// The geometry of a 3-D pooling, shared by the CPU and CUDA kernels (csrc/cpu/pool3d.h,
// csrc/cuda/pool3d.h) and their bindings: `planes` = N*C independent d x h x w volumes; per axis a
// kernel k, stride s, padding p, dilation (max pool; 1 for avg) and the output size o, which the
// caller (python/fastlayers/ops/pool3d.py) has computed (floor or ceil mode) and checked: o >= 1,
// p <= k/2, every window starting inside the input or its left padding, and k*dilation, padded
// extents and output sizes below 2^40, so no index the kernels form can overflow 64 bits.
#pragma once
#include <array>

#include "common/types.h"

namespace fastlayers {

struct Pool3dGeometry {
  index_t planes, d, h, w;
  index_t kd, kh, kw, sd, sh, sw, pd, ph, pw, dd, dh, dw;
  index_t od, oh, ow;
};

// As the Python op passes it: (planes, d, h, w, kd, kh, kw, sd, sh, sw, pd, ph, pw, dd, dh, dw, od, oh, ow).
using Pool3dGeometryArgs = std::array<index_t, 19>;

inline Pool3dGeometry to_pool3d_geometry(const Pool3dGeometryArgs& a) {
  return Pool3dGeometry{a[0],  a[1],  a[2],  a[3],  a[4],  a[5],  a[6],  a[7],  a[8], a[9],
                        a[10], a[11], a[12], a[13], a[14], a[15], a[16], a[17], a[18]};
}

}  // namespace fastlayers
