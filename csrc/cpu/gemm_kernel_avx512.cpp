// AVX-512 SGEMM micro-kernel: a 14 x 32 tile of C in 28 zmm accumulators. Per k step it loads two
// B vectors and broadcasts 14 A values (embedded-broadcast FMAs), 28 FMAs against 16 loads, which
// keeps both FMA pipes busy with 4-cycle latency hidden by 28 independent chains.
// Compiled with -mavx512f ...; gemm.cpp calls it only when active_isa() says avx512.
#include <immintrin.h>

#include "cpu/gemm_kernel.h"

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

}  // namespace

KernelInfo kernel_avx512() { return {kernel_14x32, pack_bt_32, MR, NR, 384, 336, 3072}; }

}  // namespace fastlayers::cpu::gemm_detail
