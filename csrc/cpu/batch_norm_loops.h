// The loops behind BatchNormKernels (batch_norm.h). Included only by batch_norm.cpp,
// batch_norm_avx2.cpp and batch_norm_avx512.cpp, each compiled with its own ISA flags; everything
// here has internal linkage and calls nothing from the standard library, so no copy built for a
// wider ISA can be shared with (and run by) a narrower one. Plain loops that GCC vectorises at -O3;
// the sums keep many independent partial sums (vector registers) so they are not bound by the
// latency of one add chain. No OpenMP inside: the driver splits the work.
#pragma once

#include "cpu/batch_norm.h"

namespace fastlayers::cpu {
namespace {

constexpr int kAcc = 64;  // partial sums per reduction: 4 zmm / 8 ymm / 16 xmm registers

// Sum of a power-of-two array of partial sums, pairwise.
inline float fold(float* acc, int n) {
  for (int w = n / 2; w > 0; w /= 2)
    for (int j = 0; j < w; ++j) acc[j] += acc[j + w];
  return acc[0];
}

// The moments of one contiguous piece, in two passes (the second from L1, the driver keeps
// pieces <= 16 KiB): m = the mean by a float sum, then the sums about m. The driver turns them
// into a mean and a sum of squared deviations in double (mean = m + d1/L, M2 = d2 - d1^2/L), so
// the rounding of m costs nothing, and no large mean is ever squared.
void run_moments_loop(const float* x, const float* dy, index_t L, PieceSums* out) {
  float acc[kAcc] = {};
  index_t i = 0;
  for (; i + kAcc <= L; i += kAcc)
    for (int j = 0; j < kAcc; ++j) acc[j] += x[i + j];
  float tail = 0.0f;
  for (; i < L; ++i) tail += x[i];
  const float m = (fold(acc, kAcc) + tail) / static_cast<float>(L);

  constexpr int K = kAcc / 2;
  float a1[K] = {}, a2[K] = {};
  if (dy == nullptr) {
    for (i = 0; i + K <= L; i += K)
      for (int j = 0; j < K; ++j) {
        const float d = x[i + j] - m;
        a1[j] += d;
        a2[j] += d * d;
      }
    float t1 = 0.0f, t2 = 0.0f;
    for (; i < L; ++i) {
      const float d = x[i] - m;
      t1 += d;
      t2 += d * d;
    }
    *out = PieceSums{m, fold(a1, K) + t1, fold(a2, K) + t2, 0.0f, 0.0f};
    return;
  }
  float a3[K] = {}, a4[K] = {};
  for (i = 0; i + K <= L; i += K)
    for (int j = 0; j < K; ++j) {
      const float d = x[i + j] - m, g = dy[i + j];
      a1[j] += d;
      a2[j] += d * d;
      a3[j] += g;
      a4[j] += g * d;
    }
  float t1 = 0.0f, t2 = 0.0f, t3 = 0.0f, t4 = 0.0f;
  for (; i < L; ++i) {
    const float d = x[i] - m, g = dy[i];
    t1 += d;
    t2 += d * d;
    t3 += g;
    t4 += g * d;
  }
  *out = PieceSums{m, fold(a1, K) + t1, fold(a2, K) + t2, fold(a3, K) + t3, fold(a4, K) + t4};
}

// Column sums of a block of `rows` rows (row stride ld) and W columns: s[j] = sum over the rows.
void col_sums_loop(const float* x, index_t rows, index_t ld, index_t W, float* s) {
  for (index_t j = 0; j < W; ++j) s[j] = 0.0f;
  for (index_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ld;
#pragma omp simd
    for (index_t j = 0; j < W; ++j) s[j] += xr[j];
  }
}

// The same block's sums about the column means m[j]: d1, d2 and, with dy, sdy and sdyx.
void col_moments_loop(const float* x, const float* dy, index_t rows, index_t ld, index_t W,
                      const float* m, float* d1, float* d2, float* sdy, float* sdyx) {
  for (index_t j = 0; j < W; ++j) d1[j] = d2[j] = sdy[j] = sdyx[j] = 0.0f;
  for (index_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ld;
    if (dy == nullptr) {
#pragma omp simd
      for (index_t j = 0; j < W; ++j) {
        const float d = xr[j] - m[j];
        d1[j] += d;
        d2[j] += d * d;
      }
    } else {
      const float* gr = dy + r * ld;
#pragma omp simd
      for (index_t j = 0; j < W; ++j) {
        const float d = xr[j] - m[j], g = gr[j];
        d1[j] += d;
        d2[j] += d * d;
        sdy[j] += g;
        sdyx[j] += g * d;
      }
    }
  }
}

// y = (x - m) * a + b: the mean subtracted before scaling, so a large mean cancels exactly (x - m
// is exact when x is near m); the driver folds the float mean's rounding error into b.
void normalise_run_loop(const float* x, float* y, index_t L, float m, float a, float b) {
#pragma omp simd
  for (index_t i = 0; i < L; ++i) y[i] = (x[i] - m) * a + b;
}

void normalise_cols_loop(const float* x, float* y, index_t W, const ColCoeffs* k) {
#pragma omp simd
  for (index_t j = 0; j < W; ++j) y[j] = (x[j] - k->m[j]) * k->a[j] + k->b[j];
}

// dx = a*dy + b*(x - m) + c   (training-mode backward)
void backward_run_loop(const float* dy, const float* x, float* dx, index_t L, float a, float b, float m,
                       float c) {
#pragma omp simd
  for (index_t i = 0; i < L; ++i) dx[i] = a * dy[i] + (b * (x[i] - m) + c);
}

void backward_cols_loop(const float* dy, const float* x, float* dx, index_t W, const ColCoeffs* k) {
#pragma omp simd
  for (index_t j = 0; j < W; ++j)
    dx[j] = k->a[j] * dy[j] + (k->b[j] * (x[j] - k->m[j]) + k->c[j]);
}

// dx = a*dy   (eval-mode backward: the statistics are constants)
void scale_run_loop(const float* dy, float* dx, index_t L, float a) {
#pragma omp simd
  for (index_t i = 0; i < L; ++i) dx[i] = a * dy[i];
}

void scale_cols_loop(const float* dy, float* dx, index_t W, const ColCoeffs* k) {
#pragma omp simd
  for (index_t j = 0; j < W; ++j) dx[j] = k->a[j] * dy[j];
}

BatchNormKernels make_batch_norm_kernels() {
  BatchNormKernels k;
  k.run_moments = run_moments_loop;
  k.col_sums = col_sums_loop;
  k.col_moments = col_moments_loop;
  k.normalise_run = normalise_run_loop;
  k.normalise_cols = normalise_cols_loop;
  k.backward_run = backward_run_loop;
  k.backward_cols = backward_cols_loop;
  k.scale_run = scale_run_loop;
  k.scale_cols = scale_cols_loop;
  return k;
}

}  // namespace
}  // namespace fastlayers::cpu
