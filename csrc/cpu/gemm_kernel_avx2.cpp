// AVX2 + FMA SGEMM micro-kernel: a 6 x 16 tile of C in 12 ymm accumulators (the classic Haswell
// shape: 12 FMAs per k step against 2 B loads and 6 broadcasts).
// Compiled with -mavx2 -mfma; gemm.cpp calls it only when active_isa() says avx2 or better.
// Beside it, as in the AVX-512 file: edge tiles that compute only their rows and columns, and
// transposing packers for A and B^T. No B-in-place row tile (few_rows): written the AVX-512 way
// (6 rows x 16 columns, B read from the matrix) it lost to packing on Zen 3 (512 KiB L2), one
// thread, paired medians, packed / in place: 100x200x784 0.49 / 0.71 ms, 200x1024x64 0.37 /
// 0.55 ms, and conv backward-data's 800x576x32 0.37 / 0.41 ms; it won only for a few row tiles
// (25x576x32 15 / 12 us).
#include <immintrin.h>

#include <algorithm>

#include "cpu/gemm_kernel.h"
#include "cpu/gemm_small.h"
#include "cpu/simd_avx2.h"

namespace fastlayers::cpu::gemm_detail {
namespace {

constexpr int MR = 6, NR = 16;

// Where a micro-kernel reads its rows of op(A): a packed panel (k-major, MR floats per k), or A
// itself, row-major with row stride lda (alpha == 1 and A not transposed: nothing to pack).
struct PackedA {
  const float* a;
  [[gnu::always_inline]] const float* at(int i, index_t k) const { return a + k * MR + i; }
};
struct RowsOfA {
  const float* a;
  index_t lda;
  [[gnu::always_inline]] const float* at(int i, index_t k) const { return a + i * lda + k; }
};

template <class ASrc>
[[gnu::always_inline]] inline void kernel_6x16_t(index_t kc, ASrc A, const float* b, float* c, index_t ldc,
                                                 float beta) {
  __m256 c0[MR], c1[MR];
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) c0[i] = c1[i] = _mm256_setzero_ps();
  for (index_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      const __m256 ai = _mm256_broadcast_ss(A.at(i, k));
      c0[i] = _mm256_fmadd_ps(ai, b0, c0[i]);
      c1[i] = _mm256_fmadd_ps(ai, b1, c1[i]);
    }
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

void kernel_6x16(index_t kc, const float* a, const float* b, float* c, index_t ldc, float beta) {
  kernel_6x16_t(kc, PackedA{a}, b, c, ldc, beta);
}

void kernel_6x16_rows(index_t kc, const float* a, index_t lda, const float* b, float* c, index_t ldc,
                      float beta) {
  kernel_6x16_t(kc, RowsOfA{a, lda}, b, c, ldc, beta);
}

using S = simd::Avx2;

// Edge tiles: M rows (1..6, compile-time so the sums stay in registers) and NV vectors of
// columns, the last one cut to `last` floats. M = 64 (10 x 6 + 4) or N = 200 (12 x 16 + 8) cost
// what they compute instead of a full tile into scratch and a scalar copy out.
template <int M, int NV, class ASrc>
void kernel_edge_t(index_t kc, ASrc A, const float* b, float* c, index_t ldc, float beta, int last) {
  __m256 acc[M][NV];
#pragma GCC unroll 6
  for (int i = 0; i < M; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm256_setzero_ps();
  index_t k = 0;
  if constexpr (NV == 1 && M >= 3) {
    // One vector of columns (N = 200: 12 x 16 + 8) leaves M sums, each waiting on its own FMA's
    // latency; even and odd k go to separate sums, added at the end.
    __m256 odd[M];
#pragma GCC unroll 6
    for (int i = 0; i < M; ++i) odd[i] = _mm256_setzero_ps();
    for (; k + 1 < kc; k += 2) {
      const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + NR);
#pragma GCC unroll 6
      for (int i = 0; i < M; ++i) {
        acc[i][0] = _mm256_fmadd_ps(_mm256_broadcast_ss(A.at(i, k)), b0, acc[i][0]);
        odd[i] = _mm256_fmadd_ps(_mm256_broadcast_ss(A.at(i, k + 1)), b1, odd[i]);
      }
      b += 2 * NR;
    }
#pragma GCC unroll 6
    for (int i = 0; i < M; ++i) acc[i][0] = _mm256_add_ps(acc[i][0], odd[i]);
  }
  for (; k < kc; ++k) {
    __m256 bv[NV];
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) bv[v] = _mm256_load_ps(b + 8 * v);
#pragma GCC unroll 6
    for (int i = 0; i < M; ++i) {
      const __m256 ai = _mm256_broadcast_ss(A.at(i, k));
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm256_fmadd_ps(ai, bv[v], acc[i][v]);
    }
    b += NR;
  }
  const __m256 vb = _mm256_set1_ps(beta);
#pragma GCC unroll 6
  for (int i = 0; i < M; ++i) {
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) {
      float* ci = c + i * ldc + 8 * v;
      const int n = v == NV - 1 ? last : 8;
      __m256 r = acc[i][v];
      if (beta != 0.0f) r = _mm256_fmadd_ps(vb, S::load_n(ci, n), r);
      S::store_n(ci, r, n);
    }
  }
}

template <int M, class ASrc>
void edge_rows(index_t kc, ASrc A, const float* b, float* c, index_t ldc, float beta, index_t n) {
  if (n > 8)
    kernel_edge_t<M, 2>(kc, A, b, c, ldc, beta, static_cast<int>(n - 8));
  else
    kernel_edge_t<M, 1>(kc, A, b, c, ldc, beta, static_cast<int>(n));
}

template <class ASrc>
void edge_t(index_t kc, ASrc A, const float* b, float* c, index_t ldc, float beta, index_t m, index_t n) {
  switch (m) {
    case 1: return edge_rows<1>(kc, A, b, c, ldc, beta, n);
    case 2: return edge_rows<2>(kc, A, b, c, ldc, beta, n);
    case 3: return edge_rows<3>(kc, A, b, c, ldc, beta, n);
    case 4: return edge_rows<4>(kc, A, b, c, ldc, beta, n);
    case 5: return edge_rows<5>(kc, A, b, c, ldc, beta, n);
    default: return edge_rows<6>(kc, A, b, c, ldc, beta, n);
  }
}

void kernel_edge(index_t kc, const float* a, const float* b, float* c, index_t ldc, float beta,
                 index_t m, index_t n) {
  edge_t(kc, PackedA{a}, b, c, ldc, beta, m, n);
}

void kernel_edge_rows(index_t kc, const float* a, index_t lda, const float* b, float* c, index_t ldc,
                      float beta, index_t m, index_t n) {
  edge_t(kc, RowsOfA{a, lda}, b, c, ldc, beta, m, n);
}

// Bp[k*16 + j] = B[j*ldb + k] for j < 16, k < kc: 8 x 8 blocks transposed in registers (the
// linear layer's x * w^T packs w this way; the portable packer reads one float per row step).
void pack_bt_16(index_t kc, const float* B, index_t ldb, float* Bp) {
  for (index_t k = 0; k < kc; k += 8) {
    const int w = static_cast<int>(std::min<index_t>(8, kc - k));
    for (int h = 0; h < 2; ++h) {
      __m256 r[8];
#pragma GCC unroll 8
      for (int j = 0; j < 8; ++j) r[j] = S::load_n(B + (h * 8 + j) * ldb + k, w);
      S::transpose(r);
      for (int kk = 0; kk < w; ++kk) _mm256_store_ps(Bp + (k + kk) * NR + h * 8, r[kk]);
    }
  }
}

// Ap[k*6 + i] = alpha * A[i*lda + k] for i < m (zero for m <= i < 6), k < kc: rows read 8 k at
// a time and transposed in registers (x and grad_out in the linear layer pack this way).
void pack_an_6(index_t kc, const float* A, index_t lda, float alpha, index_t m, float* Ap) {
  const __m256 va = _mm256_set1_ps(alpha);
  for (index_t k = 0; k < kc; k += 8) {
    const int w = static_cast<int>(std::min<index_t>(8, kc - k));
    __m256 r[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i)
      r[i] = i < m ? _mm256_mul_ps(va, S::load_n(A + i * lda + k, w)) : _mm256_setzero_ps();
    S::transpose(r);
    for (int kk = 0; kk < w; ++kk) S::store_n(Ap + (k + kk) * MR, r[kk], MR);
  }
}

}  // namespace

// Edges and packers against the bare kernel (one thread, Zen 3, paired medians of 300): the
// dense layer's 64x200x1024 (x * w^T) 0.55 -> 0.46 ms, 64x120x400 153 -> 112 us, 100x64x800 (B
// as stored) 207 -> 183 us.
KernelInfo kernel_avx2() {
  return {kernel_6x16, kernel_edge, pack_bt_16, pack_an_6, MR, NR, 256, 144, 3072, small_m::gemm, nullptr, nullptr,
          kernel_6x16_rows, kernel_edge_rows, 1024};
}

}  // namespace fastlayers::cpu::gemm_detail
