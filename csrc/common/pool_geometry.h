// The geometry of a 2-D pooling, shared by the CPU and CUDA kernels (csrc/cpu/pool.h,
// csrc/cuda/pool.h): `planes` = N*C independent h x w planes, kernel kh x kw, stride sh x sw,
// padding ph x pw, dilation dh x dw, output oh x ow.
//
// The output size is computed and every value bounded by the Python op (fastlayers/ops/pool.py,
// PyTorch's pooling_output_shape with ceil_mode), so the kernels never derive it: ceil_mode is only
// "oh, ow may include a last window that runs past the padded input". What the caller guarantees,
// and what keeps all index arithmetic below 2^63: sizes >= 1; 0 <= ph <= kh/2, 0 <= pw <= kw/2; the
// effective kernel (kh-1)*dh+1 <= 2^62 (likewise w); h, w < 2^48; oh, ow >= 1 (when planes > 0);
// (oh-1)*sh < h + ph (every window starts inside the input or its left padding); and the stride is
// at most 2^62 (the op clamps an irrelevant stride when oh == 1). Products of two kernel extents can
// exceed 2^63: they are formed in double (avg divisors, the Lp factor).
#pragma once
#include "common/types.h"

namespace fastlayers {

struct Pool2dGeometry {
  index_t planes, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow;
  // Extent of a window in input cells, dilation included.
  index_t ekh() const { return (kh - 1) * dh + 1; }
  index_t ekw() const { return (kw - 1) * dw + 1; }
  // Windows tile the plane from the top-left with no overlap, gap or padding: each input cell lies in
  // at most one window (the last row/column of windows may be cut short by ceil_mode).
  bool tiled() const { return sh == kh && sw == kw && ph == 0 && pw == 0 && dh == 1 && dw == 1; }
};

// Adaptive pooling: output cell i covers input rows [floor(i*h/oh), ceil((i+1)*h/oh)), likewise for
// columns. The op guarantees h*oh and w*ow < 2^62.
struct AdaptivePool2dGeometry {
  index_t planes, h, w, oh, ow;
};

}  // namespace fastlayers
