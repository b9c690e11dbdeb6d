#include "cpu/gemm.h"

namespace fastlayers::cpu {

// Placeholder: correct, cache-friendly i-k-j loops. The packed, blocked AVX-512/AVX2 version
// replaces this (see the CPU speed work).
void sgemm(bool trans_a, bool trans_b, index_t M, index_t N, index_t K, float alpha,
           const float* A, index_t lda, const float* B, index_t ldb, float beta, float* C,
           index_t ldc) {
#pragma omp parallel for schedule(static)
  for (index_t i = 0; i < M; ++i) {
    float* c = C + i * ldc;
    for (index_t j = 0; j < N; ++j) c[j] = beta == 0.0f ? 0.0f : beta * c[j];
    for (index_t k = 0; k < K; ++k) {
      const float a = alpha * (trans_a ? A[k * lda + i] : A[i * lda + k]);
      if (!trans_b) {
        const float* b = B + k * ldb;
        for (index_t j = 0; j < N; ++j) c[j] += a * b[j];
      } else {
        for (index_t j = 0; j < N; ++j) c[j] += a * B[j * ldb + k];
      }
    }
  }
}

}  // namespace fastlayers::cpu
