// Backward-data's pixel-major column matrix back into grad_x (conv.cpp's bd_pixel_major path):
// colsT (pixels x C/groups*R*S, taps (c, r, t)) holds, for each output pixel, what its taps send
// back to the input; with unit column dilation the S taps of one (c, r) land on S consecutive
// floats of a grad_x row, so each pixel adds C/groups*R runs. Internal to csrc/cpu/conv.cpp.
#pragma once
#include <algorithm>

#include "common/conv_shape.h"
#include "common/types.h"

namespace fastlayers::cpu {

// grad_x (one image and group, C/groups planes) += the runs of pixels [j0, j1); colsT row j - j0
// is pixel j's, `ld` floats apart.
void col2im_runs(const Conv2dShape& s, const float* colsT, index_t ld, index_t j0, index_t j1, float* gx);

// The loop both versions share: add_run(dst, src, t_lo, t_hi) adds src[t] into dst[t] for t in
// [t_lo, t_hi) (the taps whose column is inside the image). Pixels m = ceil(S / sw) apart have
// disjoint runs, so a row's pixels go in m interleaved passes: no add then reads floats that the
// one before is still storing (a store-forwarding stall per run otherwise).
template <class AddRun>
inline void for_each_run(const Conv2dShape& s, const float* colsT, index_t ld, index_t j0, index_t j1, float* gx,
                         AddRun add_run) {
  const index_t Q = s.Q, Cg = s.C / s.groups, m = (s.S + s.stride_w - 1) / s.stride_w;
  for (index_t p = j0 / Q; p <= (j1 - 1) / Q; ++p) {
    const index_t qa = std::max<index_t>(j0 - p * Q, 0), qb = std::min(j1 - p * Q, Q);
    for (index_t first = qa; first < std::min(qa + m, qb); ++first)
      for (index_t q = first; q < qb; q += m) {
        const float* src = colsT + (p * Q + q - j0) * ld;
        const index_t iw0 = q * s.stride_w - s.pad_w;
        const index_t t_lo = std::max<index_t>(0, -iw0), t_hi = std::min(s.S, s.W - iw0);
        if (t_hi <= t_lo) continue;
        for (index_t c = 0; c < Cg; ++c)
          for (index_t r = 0; r < s.R; ++r) {
            const index_t ih = p * s.stride_h + r * s.dil_h - s.pad_h;
            if (ih >= 0 && ih < s.H) add_run(gx + (c * s.H + ih) * s.W + iw0, src + (c * s.R + r) * s.S, t_lo, t_hi);
          }
      }
  }
}

}  // namespace fastlayers::cpu
