// AVX2 + FMA SGEMM micro-kernel: a 6 x 16 tile of C in 12 ymm accumulators (the classic Haswell
// shape: 12 FMAs per k step against 2 B loads and 6 broadcasts).
// Compiled with -mavx2 -mfma; gemm.cpp calls it only when active_isa() says avx2 or better.
#include <immintrin.h>

#include "cpu/gemm_kernel.h"
#include "cpu/gemm_small.h"

namespace fastlayers::cpu::gemm_detail {
namespace {

constexpr int MR = 6, NR = 16;

void kernel_6x16(index_t kc, const float* a, const float* b, float* c, index_t ldc, float beta) {
  __m256 c0[MR], c1[MR];
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) c0[i] = c1[i] = _mm256_setzero_ps();
  for (index_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      const __m256 ai = _mm256_broadcast_ss(a + i);
      c0[i] = _mm256_fmadd_ps(ai, b0, c0[i]);
      c1[i] = _mm256_fmadd_ps(ai, b1, c1[i]);
    }
    a += MR;
    b += NR;
  }
  if (beta == 0.0f) {
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      _mm256_storeu_ps(c + i * ldc, c0[i]);
      _mm256_storeu_ps(c + i * ldc + 8, c1[i]);
    }
  } else {
    const __m256 vb = _mm256_set1_ps(beta);
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      _mm256_storeu_ps(c + i * ldc, _mm256_fmadd_ps(vb, _mm256_loadu_ps(c + i * ldc), c0[i]));
      _mm256_storeu_ps(c + i * ldc + 8, _mm256_fmadd_ps(vb, _mm256_loadu_ps(c + i * ldc + 8), c1[i]));
    }
  }
}

}  // namespace

KernelInfo kernel_avx2() { return {kernel_6x16, nullptr, nullptr, nullptr, MR, NR, 256, 144, 3072, small_m::gemm}; }

}  // namespace fastlayers::cpu::gemm_detail
