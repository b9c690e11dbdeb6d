// The 16-lane vector operations that kernels written once for both ISAs (templates on a `S`
// parameter, e.g. conv_winograd_c16_kernels.h) call; simd_avx2.h has the same names for 8 lanes.
// Include only from *_avx512.cpp files (the ones compiled with AVX-512 enabled).
#pragma once
#include <immintrin.h>

#include <cstddef>

#include "cpu/avx512_util.h"

namespace fastlayers::cpu::simd {

struct Avx512 {
  using V = __m512;
  static constexpr int L = 16;  // lanes

  static V zero() { return _mm512_setzero_ps(); }
  static V set1(float a) { return _mm512_set1_ps(a); }
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static __mmask16 mask(int n) { return static_cast<__mmask16>((1u << n) - 1); }
  // The first n lanes (0 < n <= L) from p, the rest 0; and the first n lanes of v to p.
  static V load_n(const float* p, int n) { return _mm512_maskz_loadu_ps(mask(n), p); }
  static void store_n(float* p, V v, int n) { _mm512_mask_storeu_ps(p, mask(n), v); }
  // Lanes [0, n1) from p, lanes [n1, n) from p + delta (their own offsets: lane l at p[delta + l]),
  // the rest 0: a run of pixels that carries on into the next row of a wider buffer.
  static V load_split(const float* p, int n1, std::ptrdiff_t delta, int n) {
    return _mm512_mask_loadu_ps(_mm512_maskz_loadu_ps(mask(n1), p), static_cast<__mmask16>(mask(n) & ~mask(n1)),
                                p + delta);
  }
  // v[l] = p[l * stride]
  static V gather(const float* p, int stride) {
    const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                           _mm512_set1_epi32(stride));
    return _mm512_i32gather_ps(idx, p, 4);
  }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static V sub(V a, V b) { return _mm512_sub_ps(a, b); }
  static V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }   // a b + c
  static V fnmadd(V a, V b, V c) { return _mm512_fnmadd_ps(a, b, c); } // c - a b
  static V max(V a, V b) { return _mm512_max_ps(a, b); }  // b where either is NaN (as maxps)
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  // max(a, b), NaN if either is NaN.
  static V nan_max(V a, V b) { return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q), _mm512_max_ps(a, b), a); }
  // Nonzero when a lane of v is a NaN (v - v is NaN exactly for NaN and inf).
  static unsigned unordered(V v) { return _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q); }
  // The even lanes of the 2L floats a:b (a stride-2 row segment).
  static V even_of(V a, V b) {
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    return _mm512_permutex2var_ps(a, even, b);
  }
  // The 32 floats e0 o0 e1 o1 ... e15 o15: lo gets the first 16, hi the last 16.
  static void interleave(V e, V o, V& lo, V& hi) {
    const __m512i first = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i second = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    lo = _mm512_permutex2var_ps(e, first, o);
    hi = _mm512_permutex2var_ps(e, second, o);
  }
  // r[i] holds row i on entry, column i on exit (L x L).
  static void transpose(V r[L]) { avx512::transpose16(r); }
};

}  // namespace fastlayers::cpu::simd
