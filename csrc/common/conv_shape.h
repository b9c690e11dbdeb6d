// The geometry of a 2-D convolution, shared by the CPU and CUDA kernels (csrc/cpu/conv.h,
// csrc/cuda/conv.h) and their bindings. Checked by the caller: sizes > 0, P/Q >= 1, C and K
// divisible by groups.
#pragma once
#include <array>

#include "common/types.h"

namespace fastlayers {

struct Conv2dShape {
  index_t N, C, H, W;          // input
  index_t K, R, S;             // filters: K outputs, R x S taps
  index_t P, Q;                // output height and width
  index_t stride_h, stride_w;  // > 0
  index_t pad_h, pad_w;        // >= 0
  index_t dil_h, dil_w;        // > 0
  index_t groups;              // > 0, divides C and K
};

enum class ConvPass { forward = 0, backward_data = 1, backward_weight = 2 };

// Stride 1, no padding, no dilation: every tap of every output pixel is inside the image.
inline bool is_plain(const Conv2dShape& s) {
  return s.stride_h == 1 && s.stride_w == 1 && s.pad_h == 0 && s.pad_w == 0 && s.dil_h == 1 && s.dil_w == 1;
}

// The geometry as the Python op passes it, one 16-int tuple:
// (N, C, H, W, K, R, S, P, Q, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups).
using Conv2dShapeArgs = std::array<index_t, 16>;

inline Conv2dShape to_conv2d_shape(const Conv2dShapeArgs& a) {
  return Conv2dShape{a[0], a[1], a[2],  a[3],  a[4],  a[5],  a[6],  a[7],
                     a[8], a[9], a[10], a[11], a[12], a[13], a[14], a[15]};
}

}  // namespace fastlayers
