// Internal to the SGEMM driver: C = alpha * A * op(B) + beta * C for a few rows (M <= kSmallM, A not
// transposed) without packing. Batch-1 inference is all such calls (1 x 1024 times 1024 x 200): the
// packed path would copy the whole of B into panels to use it once, ten times the work of the
// product itself. Written as plain loops over fixed-width lanes, so the same source compiles to
// SSE2, AVX2 or AVX-512 (instantiated in gemm.cpp and the ISA files, picked like the
// micro-kernels) and every ISA adds in the same order (FMA contraction aside).
#pragma once
#include <algorithm>

#include "common/types.h"

namespace fastlayers::cpu::gemm_detail {

constexpr index_t kSmallM = 4;

namespace small_m {

constexpr int kLanes = 16;      // dot-product accumulators per row (op(B) = B^T case)
constexpr index_t kCols = 256;  // columns of C per block (op(B) = B case), kept in registers / L1

inline float store(float acc, float alpha, float beta, const float* c) {
  return beta == 0.0f ? alpha * acc : alpha * acc + beta * *c;
}

// C[i, j] = alpha * dot(A[i, :], B[j, :]) + beta * C[i, j]: B (N x K) rows are contiguous.
template <int MM>
inline void dots(index_t N, index_t K, float alpha, const float* A, index_t lda, const float* B,
                 index_t ldb, float beta, float* C, index_t ldc) {
  for (index_t j = 0; j < N; ++j) {
    const float* b = B + j * ldb;
    float lanes[MM][kLanes] = {};
    index_t k = 0;
    for (; k + kLanes <= K; k += kLanes)
      for (int i = 0; i < MM; ++i)
        for (int l = 0; l < kLanes; ++l) lanes[i][l] += A[i * lda + k + l] * b[k + l];
    for (int i = 0; i < MM; ++i) {
      for (index_t kk = k; kk < K; ++kk) lanes[i][kk - k] += A[i * lda + kk] * b[kk];
      // Pairwise over the lanes: fixed order, and better accuracy than one running sum.
      for (int w = kLanes / 2; w > 0; w /= 2)
        for (int l = 0; l < w; ++l) lanes[i][l] += lanes[i][l + w];
      C[i * ldc + j] = store(lanes[i][0], alpha, beta, C + i * ldc + j);
    }
  }
}

// C[i, :] = alpha * sum_k A[i, k] B[k, :] + beta * C[i, :]: rows of B are contiguous.
template <int MM>
inline void axpys(index_t N, index_t K, float alpha, const float* A, index_t lda, const float* B,
                  index_t ldb, float beta, float* C, index_t ldc) {
  for (index_t j0 = 0; j0 < N; j0 += kCols) {
    const index_t n = std::min(kCols, N - j0);
    float acc[MM][kCols];
    for (int i = 0; i < MM; ++i)
      for (index_t j = 0; j < n; ++j) acc[i][j] = 0.0f;
    for (index_t k = 0; k < K; ++k) {
      const float* b = B + k * ldb + j0;
      for (int i = 0; i < MM; ++i) {
        const float a = A[i * lda + k];
        for (index_t j = 0; j < n; ++j) acc[i][j] += a * b[j];
      }
    }
    for (int i = 0; i < MM; ++i)
      for (index_t j = 0; j < n; ++j) C[i * ldc + j0 + j] = store(acc[i][j], alpha, beta, C + i * ldc + j0 + j);
  }
}

template <int MM>
inline void rows(bool trans_b, index_t N, index_t K, float alpha, const float* A, index_t lda,
                 const float* B, index_t ldb, float beta, float* C, index_t ldc) {
  if (trans_b) {
    dots<MM>(N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  } else {
    axpys<MM>(N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  }
}

// M <= kSmallM rows in groups the compiler fully unrolls.
inline void gemm(bool trans_b, index_t M, index_t N, index_t K, float alpha, const float* A,
                 index_t lda, const float* B, index_t ldb, float beta, float* C, index_t ldc) {
  index_t i = 0;
  for (; i + 2 <= M; i += 2) rows<2>(trans_b, N, K, alpha, A + i * lda, lda, B, ldb, beta, C + i * ldc, ldc);
  if (i < M) rows<1>(trans_b, N, K, alpha, A + i * lda, lda, B, ldb, beta, C + i * ldc, ldc);
}

}  // namespace small_m

}  // namespace fastlayers::cpu::gemm_detail
