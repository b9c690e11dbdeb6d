// The 8-lane (AVX2 + FMA) version of simd_avx512.h: the same names, for kernels written once as
// templates on `S`. Include only from *_avx2.cpp files (the ones compiled with -mavx2 -mfma).
#pragma once
#include <immintrin.h>

namespace fastlayers::cpu::simd {

struct Avx2 {
  using V = __m256;
  static constexpr int L = 8;  // lanes

  static V zero() { return _mm256_setzero_ps(); }
  static V set1(float a) { return _mm256_set1_ps(a); }
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  // Lane l of mask(n) is all ones for l < n (0 < n <= 8): a window into 8 ones then 8 zeros.
  static __m256i mask(int n) {
    alignas(32) static constexpr int kWindow[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kWindow + 8 - n));
  }
  [[gnu::always_inline]] static V load_n(const float* p, int n) {
    return n == L ? load(p) : _mm256_maskload_ps(p, mask(n));
  }
  // In pieces of 4, 2 and 1 floats rather than by vmaskmovps, a microcoded store on AMD's Zen 2
  // and 3 (Zen 3, one image, 1 thread: conv_hwc's 32 -> 64 3x3 stride 2 onto 7x7 22.8 -> 21.5 us).
  // Always inlined: a call would spill every live vector (all are caller-saved); GCC left it out of
  // line in conv_pixels' blocked rows, and their twelve sums went to the stack around each store
  // (the CNN's conv1, one image: 22.5 -> 14.2 us inlined).
  [[gnu::always_inline]] static void store_n(float* p, V v, int n) {
    if (n == L) return store(p, v);
    __m128 part = _mm256_castps256_ps128(v);
    if (n & 4) {
      _mm_storeu_ps(p, part);
      part = _mm256_extractf128_ps(v, 1);
      p += 4;
    }
    if (n & 2) {
      _mm_storel_pi(reinterpret_cast<__m64*>(p), part);
      part = _mm_movehl_ps(part, part);
      p += 2;
    }
    if (n & 1) _mm_store_ss(p, part);
  }
  static V gather(const float* p, int stride) {
    const __m256i idx = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(stride));
    return _mm256_i32gather_ps(p, idx, 4);
  }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static V sub(V a, V b) { return _mm256_sub_ps(a, b); }
  static V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V fnmadd(V a, V b, V c) { return _mm256_fnmadd_ps(a, b, c); }
  static V max(V a, V b) { return _mm256_max_ps(a, b); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  // max(a, b), NaN if either is NaN (maxps alone returns b when a is NaN).
  static V nan_max(V a, V b) { return _mm256_blendv_ps(_mm256_max_ps(a, b), a, _mm256_cmp_ps(a, a, _CMP_UNORD_Q)); }
  static unsigned unordered(V v) { return static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q))); }
  // The even lanes of the 16 floats a:b: a0 a2 b0 b2 | a4 a6 b4 b6, then the middle 64-bit pairs swapped.
  static V even_of(V a, V b) {
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0x88)), 0xD8));
  }
  // The 16 floats e0 o0 e1 o1 ... e7 o7: lo gets the first 8, hi the last 8.
  static void interleave(V e, V o, V& lo, V& hi) {
    const __m256 a = _mm256_unpacklo_ps(e, o), b = _mm256_unpackhi_ps(e, o);  // e0 o0 e1 o1 | e4 o4 e5 o5, ...
    lo = _mm256_permute2f128_ps(a, b, 0x20);
    hi = _mm256_permute2f128_ps(a, b, 0x31);
  }
  // Three planes to pixel-major (a 3-channel image to HWC): o[0..2] = a0 b0 c0 a1 b1 c1 ... a7 b7 c7.
  // Each output vector takes its lanes from the three sources permuted by one index vector.
  static void interleave3(V a, V b, V c, V o[3]) {
    const __m256i i0 = _mm256_setr_epi32(0, 0, 0, 1, 1, 1, 2, 2), i1 = _mm256_setr_epi32(2, 3, 3, 3, 4, 4, 4, 5),
                  i2 = _mm256_setr_epi32(5, 5, 6, 6, 6, 7, 7, 7);
    auto pick = [](V x, __m256i i) { return _mm256_permutevar8x32_ps(x, i); };
    o[0] = _mm256_blend_ps(_mm256_blend_ps(pick(a, i0), pick(b, i0), 0x92), pick(c, i0), 0x24);
    o[1] = _mm256_blend_ps(_mm256_blend_ps(pick(a, i1), pick(b, i1), 0x24), pick(c, i1), 0x49);
    o[2] = _mm256_blend_ps(_mm256_blend_ps(pick(a, i2), pick(b, i2), 0x49), pick(c, i2), 0x92);
  }
  // 8 x 8 transpose: r[i] holds row i on entry, column i on exit.
  static void transpose(V r[L]) {
    __m256 t[8];
    for (int i = 0; i < 8; i += 2) {
      t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
      t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    __m256 u[8];
    for (int i = 0; i < 8; i += 4) {
      u[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
      u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
      u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
      u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int i = 0; i < 4; ++i) {
      r[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
      r[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
    }
  }
};

}  // namespace fastlayers::cpu::simd
