// 12 independent FMA chains in ymm registers (16 available: 12 chains + 2 constants).
#include <immintrin.h>

#include "cpu/probe.h"

namespace fastlayers::cpu {

float fma_chains_avx2(index_t iters) {
  const __m256 mul = _mm256_set1_ps(0.999999f);
  const __m256 add = _mm256_set1_ps(1e-7f);
  __m256 acc[kFmaChains];
  for (int k = 0; k < kFmaChains; ++k) acc[k] = _mm256_set1_ps(1.0f + 0.01f * k);
  for (index_t i = 0; i < iters; ++i) {
#pragma GCC unroll 12
    for (int k = 0; k < kFmaChains; ++k) acc[k] = _mm256_fmadd_ps(acc[k], mul, add);
  }
  __m256 sum = acc[0];
  for (int k = 1; k < kFmaChains; ++k) sum = _mm256_add_ps(sum, acc[k]);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, sum);
  float total = 0.0f;
  for (float v : lanes) total += v;
  return total;
}

}  // namespace fastlayers::cpu
