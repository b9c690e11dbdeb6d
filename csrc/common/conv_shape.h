// The geometry of a 2-D convolution, shared by the CPU and CUDA kernels (csrc/cpu/conv.h,
// csrc/cuda/conv.h) and their bindings. Checked at the boundary (python/fastlayers/ops/conv.py,
// then conv2d_shape_error in the bindings): sizes > 0 (N >= 0), P/Q as the formula gives them,
// C and K divisible by groups, and every extent and product below kMaxConvElements, so the
// kernels may assume it (and assert it in debug builds).
#pragma once
#include <array>

#include "common/checked.h"
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

// Every extent and product the kernels form stays at or below this (python/fastlayers/ops/conv.py
// MAX_ELEMENTS is the same number): 2^48 floats is a petabyte, and it leaves 2^15 of headroom below
// int64 for the kernels' small constant factors and sums.
constexpr index_t kMaxConvElements = index_t{1} << 48;

// nullptr when the kernels accept s, else what is wrong with it. Checks what the Python op checks
// (in exact integers there), plus that a stride is at most its padded extent and a dilation at most
// its padded extent (the op clamps both where they do not change the result).
inline const char* conv2d_shape_error(const Conv2dShape& s) {
  if (s.N < 0 || s.C < 1 || s.H < 1 || s.W < 1 || s.K < 1 || s.R < 1 || s.S < 1)
    return "sizes must be positive (N >= 0)";
  if (s.stride_h < 1 || s.stride_w < 1 || s.dil_h < 1 || s.dil_w < 1 || s.pad_h < 0 || s.pad_w < 0)
    return "strides and dilations must be >= 1, paddings >= 0";
  if (s.groups < 1 || s.C % s.groups != 0 || s.K % s.groups != 0) return "groups must divide C and K";
  const index_t L = kMaxConvElements;
  if (s.H > L || s.W > L || s.pad_h > L || s.pad_w > L) return "an extent passes 2^48";
  const index_t Hp = s.H + 2 * s.pad_h, Wp = s.W + 2 * s.pad_w;  // < 2^50: no overflow
  if (Hp > L || Wp > L) return "the padded input passes 2^48 per axis";
  if (s.stride_h > Hp || s.stride_w > Wp || s.dil_h > Hp || s.dil_w > Wp || s.R > Hp || s.S > Wp)
    return "a stride, dilation or kernel extent passes the padded input";
  // dil * (R - 1) + 1 <= Hp, tested without forming a product that could overflow.
  if (s.R - 1 > (Hp - 1) / s.dil_h || s.S - 1 > (Wp - 1) / s.dil_w) return "the dilated kernel passes the padded input";
  const index_t eh = s.dil_h * (s.R - 1) + 1, ew = s.dil_w * (s.S - 1) + 1;
  if (s.P != (Hp - eh) / s.stride_h + 1 || s.Q != (Wp - ew) / s.stride_w + 1) return "P and Q do not match the geometry";
  // Products: the padded planes, one image's im2col matrix, the output, the input and the weights.
  const CheckedSize CK = s.C > s.K ? s.C : s.K, Cg = s.C / s.groups;
  const CheckedSize products[] = {CK * Hp * Wp, Cg * s.R * s.S * s.P * s.Q,
                                  CheckedSize(s.N) * s.K * s.P * s.Q, CheckedSize(s.N) * s.C * s.H * s.W,
                                  CheckedSize(s.K) * Cg * s.R * s.S};
  for (const CheckedSize& p : products)
    if (!p.ok() || p.value() > L) return "a derived size (padded planes, im2col matrix, output, input or weights) passes 2^48 elements";
  return nullptr;
}

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
