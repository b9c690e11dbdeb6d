// AVX2 2x2 stride-2 row kernels: 8 outputs (16 input columns) per step. A row of ow >= 8 outputs
// ends with one more step over its last 8 outputs, overlapping the previous one: the kernels only
// write values computed from their inputs, so recomputing a few is harmless and cheaper than a
// scalar tail (ow = 28 on a 56-wide plane). Rows shorter than 8 use the portable kernels. Deinterleaving even/odd columns with shuffle_ps leaves the outputs in the order
// o0 o1 o4 o5 | o2 o3 o6 o7 (per 128-bit lane); one 64-bit permute (0xD8, its own inverse) fixes it.
#include <immintrin.h>

#include <algorithm>

#include "cpu/pool_2x2.h"

namespace fastlayers::cpu::avx2 {

namespace {

inline __m256 fix_order(__m256 v) {
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(v), 0xD8));
}

// max that propagates NaN from either side (the all-ones pattern is a NaN).
inline __m256 nan_max(__m256 a, __m256 b) {
  return _mm256_or_ps(_mm256_max_ps(a, b), _mm256_cmp_ps(a, b, _CMP_UNORD_Q));
}

// Lanes where v displaces the running maximum m (see pool_beats).
inline __m256 beats(__m256 v, __m256 m) {
  return _mm256_or_ps(_mm256_cmp_ps(v, m, _CMP_GT_OQ), _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
}

}  // namespace

void max_pool_2x2_row(const float* r0, const float* r1, float* y, index_t ow) {
  if (ow < 8) return generic::max_pool_2x2_row(r0, r1, y, ow);
  for (index_t j = 0;; j = std::min(j + 8, ow - 8)) {
    const __m256 v0 = nan_max(_mm256_loadu_ps(r0 + 2 * j), _mm256_loadu_ps(r1 + 2 * j));
    const __m256 v1 = nan_max(_mm256_loadu_ps(r0 + 2 * j + 8), _mm256_loadu_ps(r1 + 2 * j + 8));
    const __m256 m = nan_max(_mm256_shuffle_ps(v0, v1, 0x88), _mm256_shuffle_ps(v0, v1, 0xDD));
    _mm256_storeu_ps(y + j, fix_order(m));
    if (j == ow - 8) break;
  }
}

void avg_pool_2x2_row(const float* r0, const float* r1, float* y, index_t ow) {
  const __m256 quarter = _mm256_set1_ps(0.25f);
  if (ow < 8) return generic::avg_pool_2x2_row(r0, r1, y, ow);
  for (index_t j = 0;; j = std::min(j + 8, ow - 8)) {
    const __m256 a0 = _mm256_loadu_ps(r0 + 2 * j), a1 = _mm256_loadu_ps(r0 + 2 * j + 8);
    const __m256 b0 = _mm256_loadu_ps(r1 + 2 * j), b1 = _mm256_loadu_ps(r1 + 2 * j + 8);
    // Same association as the portable kernel: (a + b) + (c + d), a b the top row.
    const __m256 top = _mm256_add_ps(_mm256_shuffle_ps(a0, a1, 0x88), _mm256_shuffle_ps(a0, a1, 0xDD));
    const __m256 bot = _mm256_add_ps(_mm256_shuffle_ps(b0, b1, 0x88), _mm256_shuffle_ps(b0, b1, 0xDD));
    _mm256_storeu_ps(y + j, fix_order(_mm256_mul_ps(_mm256_add_ps(top, bot), quarter)));
    if (j == ow - 8) break;
  }
}

// 4 <= ow < 8 (LeNet's 8x8 -> 4x4 pool): the same selection on 128-bit vectors, 4 outputs a step.
// SSE shuffles stay in order, so no fix_order. (The scalar kernel mispredicts a branch about once
// per window on real data: 1.4 ms for LeNet's pool2 backward, against ~0.1 ms here.)
void max_pool_2x2_backward_row_sse(const float* g, const float* r0, const float* r1, float* gi0, float* gi1,
                                   index_t ow) {
  const auto beats4 = [](__m128 v, __m128 m) { return _mm_or_ps(_mm_cmpgt_ps(v, m), _mm_cmpunord_ps(v, v)); };
  for (index_t j = 0;; j = std::min(j + 4, ow - 4)) {
    const __m128 a0 = _mm_loadu_ps(r0 + 2 * j), a1 = _mm_loadu_ps(r0 + 2 * j + 4);
    const __m128 b0 = _mm_loadu_ps(r1 + 2 * j), b1 = _mm_loadu_ps(r1 + 2 * j + 4);
    const __m128 A = _mm_shuffle_ps(a0, a1, 0x88), B = _mm_shuffle_ps(a0, a1, 0xDD);
    const __m128 C = _mm_shuffle_ps(b0, b1, 0x88), D = _mm_shuffle_ps(b0, b1, 0xDD);
    const __m128 G = _mm_loadu_ps(g + j);
    __m128 m = A;
    const __m128 sb = beats4(B, m);
    m = _mm_blendv_ps(m, B, sb);
    const __m128 sc = beats4(C, m);
    m = _mm_blendv_ps(m, C, sc);
    const __m128 sd = beats4(D, m);
    const __m128 later_cd = _mm_or_ps(sc, sd);
    const __m128 gA = _mm_andnot_ps(_mm_or_ps(sb, later_cd), G);
    const __m128 gB = _mm_andnot_ps(later_cd, _mm_and_ps(sb, G));
    const __m128 gC = _mm_andnot_ps(sd, _mm_and_ps(sc, G));
    const __m128 gD = _mm_and_ps(sd, G);
    _mm_storeu_ps(gi0 + 2 * j, _mm_unpacklo_ps(gA, gB));
    _mm_storeu_ps(gi0 + 2 * j + 4, _mm_unpackhi_ps(gA, gB));
    _mm_storeu_ps(gi1 + 2 * j, _mm_unpacklo_ps(gC, gD));
    _mm_storeu_ps(gi1 + 2 * j + 4, _mm_unpackhi_ps(gC, gD));
    if (j == ow - 4) break;
  }
}

void max_pool_2x2_backward_row(const float* g, const float* r0, const float* r1, float* gi0, float* gi1,
                               index_t ow) {
  if (ow < 4) return generic::max_pool_2x2_backward_row(g, r0, r1, gi0, gi1, ow);
  if (ow < 8) return max_pool_2x2_backward_row_sse(g, r0, r1, gi0, gi1, ow);
  for (index_t j = 0;; j = std::min(j + 8, ow - 8)) {
    const __m256 a0 = _mm256_loadu_ps(r0 + 2 * j), a1 = _mm256_loadu_ps(r0 + 2 * j + 8);
    const __m256 b0 = _mm256_loadu_ps(r1 + 2 * j), b1 = _mm256_loadu_ps(r1 + 2 * j + 8);
    // Window cells in scan order A B / C D, each in the shuffled output order.
    const __m256 A = _mm256_shuffle_ps(a0, a1, 0x88), B = _mm256_shuffle_ps(a0, a1, 0xDD);
    const __m256 C = _mm256_shuffle_ps(b0, b1, 0x88), D = _mm256_shuffle_ps(b0, b1, 0xDD);
    const __m256 G = fix_order(_mm256_loadu_ps(g + j));
    __m256 m = A;
    const __m256 sb = beats(B, m);
    m = _mm256_blendv_ps(m, B, sb);
    const __m256 sc = beats(C, m);
    m = _mm256_blendv_ps(m, C, sc);
    const __m256 sd = beats(D, m);
    // The winner is the last cell that displaced the maximum.
    const __m256 later_cd = _mm256_or_ps(sc, sd);
    const __m256 gA = _mm256_andnot_ps(_mm256_or_ps(sb, later_cd), G);
    const __m256 gB = _mm256_andnot_ps(later_cd, _mm256_and_ps(sb, G));
    const __m256 gC = _mm256_andnot_ps(sd, _mm256_and_ps(sc, G));
    const __m256 gD = _mm256_and_ps(sd, G);
    // unpacklo/hi of the shuffled order give input columns 0..7 and 8..15 directly.
    _mm256_storeu_ps(gi0 + 2 * j, _mm256_unpacklo_ps(gA, gB));
    _mm256_storeu_ps(gi0 + 2 * j + 8, _mm256_unpackhi_ps(gA, gB));
    _mm256_storeu_ps(gi1 + 2 * j, _mm256_unpacklo_ps(gC, gD));
    _mm256_storeu_ps(gi1 + 2 * j + 8, _mm256_unpackhi_ps(gC, gD));
    if (j == ow - 8) break;
  }
}

void avg_pool_2x2_backward_row(const float* g, float* gi0, float* gi1, index_t ow) {
  const __m256 quarter = _mm256_set1_ps(0.25f);
  if (ow < 8) return generic::avg_pool_2x2_backward_row(g, gi0, gi1, ow);
  for (index_t j = 0;; j = std::min(j + 8, ow - 8)) {
    const __m256 G = fix_order(_mm256_mul_ps(_mm256_loadu_ps(g + j), quarter));
    const __m256 lo = _mm256_unpacklo_ps(G, G), hi = _mm256_unpackhi_ps(G, G);
    _mm256_storeu_ps(gi0 + 2 * j, lo);
    _mm256_storeu_ps(gi0 + 2 * j + 8, hi);
    _mm256_storeu_ps(gi1 + 2 * j, lo);
    _mm256_storeu_ps(gi1 + 2 * j + 8, hi);
    if (j == ow - 8) break;
  }
}

}  // namespace fastlayers::cpu::avx2
