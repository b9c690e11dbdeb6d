// AVX-512 SGEMM micro-kernel: a 14 x 32 tile of C in 28 zmm accumulators. Per k step it loads two
// B vectors and broadcasts 14 A values (embedded-broadcast FMAs), 28 FMAs against 16 loads, which
// keeps both FMA pipes busy with 4-cycle latency hidden by 28 independent chains.
// Compiled with -mavx512f ...; gemm.cpp calls it only when active_isa() says avx512.
#include <immintrin.h>

#include "cpu/gemm_kernel.h"
#include "cpu/gemm_small.h"

namespace fastlayers::cpu::gemm_detail {
namespace {

constexpr int MR = 14, NR = 32;

void kernel_14x32(index_t kc, const float* a, const float* b, float* c, index_t ldc, float beta) {
  __m512 c0[MR], c1[MR];
#pragma GCC unroll 14
  for (int i = 0; i < MR; ++i) c0[i] = c1[i] = _mm512_setzero_ps();
  for (index_t k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
#pragma GCC unroll 14
    for (int i = 0; i < MR; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i]);
      c0[i] = _mm512_fmadd_ps(ai, b0, c0[i]);
      c1[i] = _mm512_fmadd_ps(ai, b1, c1[i]);
    }
    a += MR;
    b += NR;
  }
  if (beta == 0.0f) {
#pragma GCC unroll 14
    for (int i = 0; i < MR; ++i) {
      _mm512_storeu_ps(c + i * ldc, c0[i]);
      _mm512_storeu_ps(c + i * ldc + 16, c1[i]);
    }
  } else if (beta == 1.0f) {
#pragma GCC unroll 14
    for (int i = 0; i < MR; ++i) {
      _mm512_storeu_ps(c + i * ldc, _mm512_add_ps(c0[i], _mm512_loadu_ps(c + i * ldc)));
      _mm512_storeu_ps(c + i * ldc + 16, _mm512_add_ps(c1[i], _mm512_loadu_ps(c + i * ldc + 16)));
    }
  } else {
    const __m512 vb = _mm512_set1_ps(beta);
#pragma GCC unroll 14
    for (int i = 0; i < MR; ++i) {
      _mm512_storeu_ps(c + i * ldc, _mm512_fmadd_ps(vb, _mm512_loadu_ps(c + i * ldc), c0[i]));
      _mm512_storeu_ps(c + i * ldc + 16,
                       _mm512_fmadd_ps(vb, _mm512_loadu_ps(c + i * ldc + 16), c1[i]));
    }
  }
}

// Edge tiles: M rows (1..14, a compile-time count so the accumulators stay in registers) and NV
// vectors of columns, the last one masked to n. Rows past M are padding in Ap and are skipped, so
// M = 100 (7 x 14 + 2) or N = 10 cost what they compute, not a full 14 x 32 tile.
template <int M, int NV>
void kernel_edge_t(index_t kc, const float* a, const float* b, float* c, index_t ldc, float beta,
                   __mmask16 last) {
  __m512 acc[M][NV];
#pragma GCC unroll 14
  for (int i = 0; i < M; ++i)
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
  for (index_t k = 0; k < kc; ++k) {
    __m512 bv[NV];
    for (int v = 0; v < NV; ++v) bv[v] = _mm512_load_ps(b + 16 * v);
#pragma GCC unroll 14
    for (int i = 0; i < M; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i]);
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
    }
    a += MR;
    b += NR;
  }
  const __m512 vb = _mm512_set1_ps(beta);
#pragma GCC unroll 14
  for (int i = 0; i < M; ++i) {
    for (int v = 0; v < NV; ++v) {
      float* ci = c + i * ldc + 16 * v;
      const __mmask16 mk = v == NV - 1 ? last : static_cast<__mmask16>(0xffff);
      __m512 r = acc[i][v];
      if (beta != 0.0f) r = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mk, ci), r);
      _mm512_mask_storeu_ps(ci, mk, r);
    }
  }
}

template <int M>
void edge_rows(index_t kc, const float* a, const float* b, float* c, index_t ldc, float beta,
               index_t n) {
  const index_t tail = n > 16 ? n - 16 : n;
  const __mmask16 last = static_cast<__mmask16>((1u << tail) - 1u);
  if (n > 16)
    kernel_edge_t<M, 2>(kc, a, b, c, ldc, beta, last);
  else
    kernel_edge_t<M, 1>(kc, a, b, c, ldc, beta, last);
}

void kernel_edge(index_t kc, const float* a, const float* b, float* c, index_t ldc, float beta,
                 index_t m, index_t n) {
  switch (m) {
    case 1: return edge_rows<1>(kc, a, b, c, ldc, beta, n);
    case 2: return edge_rows<2>(kc, a, b, c, ldc, beta, n);
    case 3: return edge_rows<3>(kc, a, b, c, ldc, beta, n);
    case 4: return edge_rows<4>(kc, a, b, c, ldc, beta, n);
    case 5: return edge_rows<5>(kc, a, b, c, ldc, beta, n);
    case 6: return edge_rows<6>(kc, a, b, c, ldc, beta, n);
    case 7: return edge_rows<7>(kc, a, b, c, ldc, beta, n);
    case 8: return edge_rows<8>(kc, a, b, c, ldc, beta, n);
    case 9: return edge_rows<9>(kc, a, b, c, ldc, beta, n);
    case 10: return edge_rows<10>(kc, a, b, c, ldc, beta, n);
    case 11: return edge_rows<11>(kc, a, b, c, ldc, beta, n);
    case 12: return edge_rows<12>(kc, a, b, c, ldc, beta, n);
    case 13: return edge_rows<13>(kc, a, b, c, ldc, beta, n);
    default: return edge_rows<14>(kc, a, b, c, ldc, beta, n);
  }
}

// 16 x 16 in-register transpose: r[i] holds row i on entry, column i on exit.
inline void transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    r[i] = _mm512_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
    r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
    r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int i = 0; i < 4; ++i) {
    t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
    t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xdd);
    t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
    t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xdd);
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
    r[i + 4] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0x88);
    r[i + 12] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0xdd);
  }
}

// Bp[k*32 + j] = B[j*ldb + k] for j < 32, k < kc: transposes 16 x 16 blocks in registers
// (the linear layer's x * w^T packs w this way on every call).
void pack_bt_32(index_t kc, const float* B, index_t ldb, float* Bp) {
  index_t k = 0;
  for (; k + 16 <= kc; k += 16) {
    for (int h = 0; h < 2; ++h) {
      __m512 r[16];
      for (int j = 0; j < 16; ++j) r[j] = _mm512_loadu_ps(B + (h * 16 + j) * ldb + k);
      transpose16(r);
      for (int kk = 0; kk < 16; ++kk) _mm512_store_ps(Bp + (k + kk) * NR + h * 16, r[kk]);
    }
  }
  if (k < kc) {
    const __mmask16 mask = static_cast<__mmask16>((1u << (kc - k)) - 1u);
    for (int h = 0; h < 2; ++h) {
      __m512 r[16];
      for (int j = 0; j < 16; ++j) r[j] = _mm512_maskz_loadu_ps(mask, B + (h * 16 + j) * ldb + k);
      transpose16(r);
      for (index_t kk = 0; kk < kc - k; ++kk) _mm512_store_ps(Bp + (k + kk) * NR + h * 16, r[kk]);
    }
  }
}

// Ap[k*14 + i] = alpha * A[i*lda + k] for i < m (zero for m <= i < 14), k < kc: rows are read
// 16 k at a time and transposed in registers (x and grad_out in the linear layer pack this way).
void pack_an_14(index_t kc, const float* A, index_t lda, float alpha, index_t m, float* Ap) {
  const __m512 va = _mm512_set1_ps(alpha);
  const __mmask16 rows = static_cast<__mmask16>((1u << MR) - 1u);
  for (index_t k = 0; k < kc; k += 16) {
    const index_t w = kc - k < 16 ? kc - k : 16;
    const __mmask16 mask = static_cast<__mmask16>((1u << w) - 1u);
    __m512 r[16];
    for (index_t i = 0; i < 16; ++i)
      r[i] = i < m ? _mm512_mul_ps(va, _mm512_maskz_loadu_ps(mask, A + i * lda + k))
                   : _mm512_setzero_ps();
    transpose16(r);
    // 14-wide rows overlap the next row's start; writing in order keeps the later values.
    for (index_t kk = 0; kk < w; ++kk) _mm512_mask_storeu_ps(Ap + (k + kk) * MR, rows, r[kk]);
  }
}

}  // namespace

KernelInfo kernel_avx512() { return {kernel_14x32, kernel_edge, pack_bt_32, pack_an_14, MR, NR, 384, 336, 3072, small_m::gemm}; }

}  // namespace fastlayers::cpu::gemm_detail
