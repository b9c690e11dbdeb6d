// AVX-512 col2im_runs (conv_col2im.h): a run of up to 16 floats is one masked load, add and store
// (the portable loop spent ~3 of AlexNet conv1's 15 ms backward-data on loop control, 1 thread).
#include <immintrin.h>

#include "cpu/conv_col2im.h"

namespace fastlayers::cpu {

void col2im_runs_avx512(const Conv2dShape& s, const float* colsT, index_t ld, index_t j0, index_t j1, float* gx) {
  for_each_run(s, colsT, ld, j0, j1, gx, [](float* d, const float* v, index_t lo, index_t hi) {
    for (index_t t = lo; t < hi; t += 16) {
      const __mmask16 m = static_cast<__mmask16>((1u << std::min<index_t>(16, hi - t)) - 1u);
      _mm512_mask_storeu_ps(d + t, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, d + t), _mm512_maskz_loadu_ps(m, v + t)));
    }
  });
}

}  // namespace fastlayers::cpu
