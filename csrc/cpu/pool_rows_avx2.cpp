// AVX2 row kernel of the general max pool's values (any kernel, stride, padding, dilation, ceil_mode),
// chosen at run time by csrc/cpu/pool.cpp; row_max_vh there is its portable twin and states the
// method: the vertical max over the window's input rows into a row padded with -inf, then the
// horizontal max over the kw taps, 8 outputs at a time. NaN: max_ps drops a NaN already in the
// accumulator, so each pass ORs in an unordered mask (all-ones, a NaN) at the end.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <limits>

#include "cpu/pool_2x2.h"

namespace fastlayers::cpu::avx2 {

namespace {

inline __m256 fix_order(__m256 v) {  // see pool_2x2_avx2.cpp: undoes shuffle_ps's lane order
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(v), 0xD8));
}

// Taps of 8 consecutive outputs spaced `kStride` floats apart, starting at src (kStride 1 or 2).
template <int kStride>
inline __m256 taps(const float* src) {
  if constexpr (kStride == 1) {
    return _mm256_loadu_ps(src);
  } else {  // even floats of src[0..16), in shuffle order (fixed once per output vector)
    return _mm256_shuffle_ps(_mm256_loadu_ps(src), _mm256_loadu_ps(src + 8), 0x88);
  }
}

template <int kStride>
void hmax(const float* buf, float* y, index_t ow, index_t kw, index_t dw) {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  // A row of ow >= 8 outputs ends with one more step over its last 8, overlapping the previous one
  // (it rewrites the same values): cheaper than a scalar tail.
  index_t j = 0;
  for (; j + 8 <= ow || (j < ow && ow >= 8 && (j = ow - 8, true)); j += 8) {
    const float* src = buf + j * kStride;
    __m256 acc = taps<kStride>(src), nan = _mm256_cmp_ps(acc, acc, _CMP_UNORD_Q);
    for (index_t b = 1; b < kw; ++b) {
      const __m256 v = taps<kStride>(src + b * dw);
      acc = _mm256_max_ps(acc, v);
      nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    }
    acc = _mm256_or_ps(acc, nan);
    _mm256_storeu_ps(y + j, kStride == 2 ? fix_order(acc) : acc);
  }
  for (; j < ow; ++j) {  // tail
    float m = kNegInf;
    bool is_nan = false;
    for (index_t b = 0; b < kw; ++b) {
      const float v = buf[j * kStride + b * dw];
      is_nan |= v != v;
      m = v > m ? v : m;
    }
    y[j] = is_nan ? std::numeric_limits<float>::quiet_NaN() : m;
  }
}

}  // namespace

void max_pool_row_vh(const float* plane, index_t w, index_t r0, index_t r1, index_t dh, index_t pw, index_t sw,
                     index_t dw, index_t kw, index_t ow, float* buf, index_t len, float* y) {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  float* v = buf + pw;
  std::fill(buf, v, kNegInf);
  index_t c = 0;
  for (; c + 8 <= w || (c < w && w >= 8 && (c = w - 8, true)); c += 8) {
    __m256 acc = _mm256_loadu_ps(plane + r0 * w + c), nan = _mm256_cmp_ps(acc, acc, _CMP_UNORD_Q);
    for (index_t r = r0 + dh; r < r1; r += dh) {
      const __m256 x = _mm256_loadu_ps(plane + r * w + c);
      acc = _mm256_max_ps(acc, x);
      nan = _mm256_or_ps(nan, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
    }
    _mm256_storeu_ps(v + c, _mm256_or_ps(acc, nan));
  }
  for (; c < w; ++c) {
    float m = plane[r0 * w + c];
    for (index_t r = r0 + dh; r < r1; r += dh) m = pool_beats(plane[r * w + c], m) ? plane[r * w + c] : m;
    v[c] = m;
  }
  std::fill(v + w, buf + len, kNegInf);
  if (sw == 1) return hmax<1>(buf, y, ow, kw, dw);
  if (sw == 2) return hmax<2>(buf, y, ow, kw, dw);
  for (index_t j = 0; j < ow; ++j) {  // other strides: scalar (the vertical pass did most of the work)
    float m = buf[j * sw];
    for (index_t b = 1; b < kw; ++b) m = pool_beats(buf[j * sw + b * dw], m) ? buf[j * sw + b * dw] : m;
    y[j] = m;
  }
}

template <int kStride>
void argmax_chunks(const float* base, index_t w, index_t nrows, index_t dh, index_t dw, index_t kw, index_t n,
                   std::int32_t* loc) {
  for (index_t j = 0; j + 8 <= n || (j < n && n >= 8 && (j = n - 8, true)); j += 8) {
    const float* src = base + j * kStride;
    __m256 best = taps<kStride>(src);
    __m256i at = _mm256_setzero_si256();
    std::int32_t cell = 0;
    for (index_t rr = 0; rr < nrows; ++rr)
      for (index_t b = 0; b < kw; ++b, ++cell) {
        if (cell == 0) continue;
        const __m256 v = taps<kStride>(src + rr * dh * w + b * dw);
        const __m256 wins = _mm256_or_ps(_mm256_cmp_ps(v, best, _CMP_GT_OQ), _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
        best = _mm256_blendv_ps(best, v, wins);
        at = _mm256_castps_si256(
            _mm256_blendv_ps(_mm256_castsi256_ps(at), _mm256_castsi256_ps(_mm256_set1_epi32(cell)), wins));
      }
    __m256 out = _mm256_castsi256_ps(at);
    _mm256_storeu_ps(reinterpret_cast<float*>(loc + j), kStride == 2 ? fix_order(out) : out);
  }
}

// Interior windows of one output row: for n >= 8 outputs whose windows lie inside the plane, loc[j]
// gets the winner's cell number (row-major within the window, rows counted among the real ones) by
// the scan order and rule of pool_beats (exact: first maximum, last NaN). Strides 1 and 2; returns
// false (nothing done) otherwise or for n < 8.
bool max_pool_row_argmax(const float* base, index_t w, index_t nrows, index_t dh, index_t sw, index_t dw,
                         index_t kw, index_t n, std::int32_t* loc) {
  if (n < 8 || (sw != 1 && sw != 2)) return false;
  if (sw == 1)
    argmax_chunks<1>(base, w, nrows, dh, dw, kw, n, loc);
  else
    argmax_chunks<2>(base, w, nrows, dh, dw, kw, n, loc);
  return true;
}

}  // namespace fastlayers::cpu::avx2
