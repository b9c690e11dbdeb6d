// 12 independent FMA chains in zmm registers: enough in flight to cover FMA latency (4 cycles) times
// two FMA ports, so the loop runs at the core's FMA throughput.
#include <immintrin.h>

#include "cpu/probe.h"

namespace fastlayers::cpu {

float fma_chains_avx512(index_t iters) {
  const __m512 mul = _mm512_set1_ps(0.999999f);
  const __m512 add = _mm512_set1_ps(1e-7f);
  __m512 acc[kFmaChains];
  for (int k = 0; k < kFmaChains; ++k) acc[k] = _mm512_set1_ps(1.0f + 0.01f * k);
  for (index_t i = 0; i < iters; ++i) {
#pragma GCC unroll 12
    for (int k = 0; k < kFmaChains; ++k) acc[k] = _mm512_fmadd_ps(acc[k], mul, add);
  }
  __m512 sum = acc[0];
  for (int k = 1; k < kFmaChains; ++k) sum = _mm512_add_ps(sum, acc[k]);
  return _mm512_reduce_add_ps(sum);
}

}  // namespace fastlayers::cpu
