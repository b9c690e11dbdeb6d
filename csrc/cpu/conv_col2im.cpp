// col2im_runs (conv_col2im.h): the portable loop, and the dispatch to the AVX-512 one.
#include "cpu/conv_col2im.h"

#include "cpu/cpu_features.h"

namespace fastlayers::cpu {

#if defined(__x86_64__) || defined(_M_X64)
void col2im_runs_avx512(const Conv2dShape& s, const float* colsT, index_t ld, index_t j0, index_t j1, float* gx);
#endif

void col2im_runs(const Conv2dShape& s, const float* colsT, index_t ld, index_t j0, index_t j1, float* gx) {
#if defined(__x86_64__) || defined(_M_X64)
  if (active_isa() == Isa::avx512) return col2im_runs_avx512(s, colsT, ld, j0, j1, gx);
#endif
  for_each_run(s, colsT, ld, j0, j1, gx, [](float* __restrict d, const float* __restrict v, index_t lo, index_t hi) {
#pragma omp simd
    for (index_t t = lo; t < hi; ++t) d[t] += v[t];
  });
}

}  // namespace fastlayers::cpu
