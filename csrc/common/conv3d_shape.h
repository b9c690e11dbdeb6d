// The geometry of a 3-D convolution (NCDHW, weights (K, C/groups, T, R, S)), shared by the CPU and
// CUDA kernels (csrc/cpu/conv3d.h, csrc/cuda/conv3d.h) and their bindings. Checked by the caller
// (python/fastlayers/ops/conv3d.py): sizes > 0, outputs >= 1, C and K divisible by groups, and every
// padded extent (D + 2*pad_d, ...) below 2^31, so that no index the kernels form (o*stride - pad +
// tap*dilation, at most one padded extent) can overflow 64 bits.
#pragma once
#include <array>

#include "common/types.h"

namespace fastlayers {

struct Conv3dShape {
  index_t N, C, D, H, W;                // input
  index_t K, T, R, S;                   // filters: K outputs, T x R x S taps
  index_t OD, P, Q;                     // output depth, height, width
  index_t stride_d, stride_h, stride_w;  // > 0
  index_t pad_d, pad_h, pad_w;          // >= 0
  index_t dil_d, dil_h, dil_w;          // > 0
  index_t groups;                       // > 0, divides C and K
};

// The geometry as the Python op passes it, one 22-int tuple: (N, C, D, H, W, K, T, R, S, OD, P, Q,
// stride_d, stride_h, stride_w, pad_d, pad_h, pad_w, dil_d, dil_h, dil_w, groups).
using Conv3dShapeArgs = std::array<index_t, 22>;

inline Conv3dShape to_conv3d_shape(const Conv3dShapeArgs& a) {
  return Conv3dShape{a[0],  a[1],  a[2],  a[3],  a[4],  a[5],  a[6],  a[7],  a[8],  a[9],  a[10],
                     a[11], a[12], a[13], a[14], a[15], a[16], a[17], a[18], a[19], a[20], a[21]};
}

// Stride 1, no padding, no dilation: every tap of every output voxel is inside the input.
inline bool is_plain(const Conv3dShape& s) {
  return s.stride_d == 1 && s.stride_h == 1 && s.stride_w == 1 && s.pad_d == 0 && s.pad_h == 0 && s.pad_w == 0 &&
         s.dil_d == 1 && s.dil_h == 1 && s.dil_w == 1;
}

}  // namespace fastlayers
