// AVX-512 kernel of the pixels-in-lanes direct convolution (reasoning: conv_pixels.h). Compiled
// with -mavx512f ...; conv_pixels.cpp calls it only when active_isa() says avx512.
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <utility>

#include "cpu/conv_pixels.h"

namespace fastlayers::cpu {

namespace {

constexpr int kPixconvMaxTapsInternal = 25;

// The padded image: plane c, row i, column j = x[c][i - pad_h][j - pad_w] (0 outside), rows
// [i0, i1), Wp floats a row. Without padding x is read in place (copy == false).
struct Padded {
  index_t Hp, Wp, plane;
  bool copy;
};

// slack (backward-weight): always a copy, each row with 32 floats of zeros after it, so that
// whole-vector loads stay in their row. (Masked loads read x in place; in backward-weight, one per
// FMA, those that crossed a page made the CNN's conv1 3.8x slower.)
Padded padded_geom(const Conv2dShape& s, bool slack = false) {
  Padded g;
  g.copy = slack || s.pad_h != 0 || s.pad_w != 0;
  g.Hp = s.H + 2 * s.pad_h;
  g.Wp = g.copy ? (s.W + 2 * s.pad_w + (slack ? 32 : 0) + 15) / 16 * 16 : s.W;
  g.plane = g.Hp * g.Wp;
  return g;
}

void pad_rows(const Conv2dShape& s, const Padded& g, const float* x, float* xp, index_t i0, index_t i1) {
  for (index_t c = 0; c < s.C; ++c)
    for (index_t i = i0; i < i1; ++i) {
      float* row = xp + c * g.plane + i * g.Wp;
      const index_t ih = i - s.pad_h;
      if (ih < 0 || ih >= s.H) {
        std::fill(row, row + g.Wp, 0.0f);
        continue;
      }
      std::fill(row, row + s.pad_w, 0.0f);
      std::copy(x + (c * s.H + ih) * s.W, x + (c * s.H + ih + 1) * s.W, row + s.pad_w);
      std::fill(row + s.pad_w + s.W, row + g.Wp, 0.0f);
    }
}

// Output rows [p0, p1): TAPS = C*R*S input vectors per 16-pixel segment, then per output channel
// TAPS FMAs (four channels at a time: independent chains) and one masked store. The loads are
// masked to the segment's own pixels (nq; 2 nq - 1 floats for stride 2), so that they never read
// past a row: x can be read in place.
template <int TAPS, int STRIDE>
void rows(const Conv2dShape& s, const Padded& g, const float* xp, const float* w, const float* bias,
          const float* res, bool relu, float* y, index_t p0, index_t p1) {
  const index_t K = s.K, Q = s.Q, PQ = s.P * s.Q, R = s.R, S = s.S;
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512 zero = _mm512_setzero_ps();
  // Offsets of the taps in the padded image (per segment start).
  index_t off[TAPS];
  for (index_t c = 0, tap = 0; c < s.C; ++c)
    for (index_t r = 0; r < R; ++r)
      for (index_t t = 0; t < S; ++t, ++tap) off[tap] = c * g.plane + r * g.Wp + t;
  for (index_t p = p0; p < p1; ++p)
    for (index_t q0 = 0; q0 < Q; q0 += 16) {
      const int nq = static_cast<int>(std::min<index_t>(16, Q - q0));
      const __mmask16 mask = static_cast<__mmask16>((1u << nq) - 1);
      const int span = 2 * nq - 1;  // stride 2: floats from the first pixel to the last
      const __mmask16 lo = static_cast<__mmask16>((1u << std::min(span, 16)) - 1);
      const __mmask16 hi = static_cast<__mmask16>((1u << std::max(span - 16, 0)) - 1);
      const float* base = xp + p * STRIDE * g.Wp + q0 * STRIDE;
      __m512 xv[TAPS];
      for (int tap = 0; tap < TAPS; ++tap) {
        if (STRIDE == 1) {
          xv[tap] = _mm512_maskz_loadu_ps(mask, base + off[tap]);
        } else {
          xv[tap] = _mm512_permutex2var_ps(_mm512_maskz_loadu_ps(lo, base + off[tap]), even,
                                           _mm512_maskz_loadu_ps(hi, base + off[tap] + 16));
        }
      }
      float* yq = y + p * Q + q0;
      const float* rq = res != nullptr ? res + p * Q + q0 : nullptr;
      auto finish = [&](__m512 v, index_t k) {
        if (rq != nullptr) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, rq + k * PQ));
        if (relu) v = _mm512_max_ps(zero, v);  // the second operand when NaN: NaN stays NaN, as the op
        _mm512_mask_storeu_ps(yq + k * PQ, mask, v);
      };
      index_t k = 0;
      for (; k + 4 <= K; k += 4) {
        __m512 a0 = bias != nullptr ? _mm512_set1_ps(bias[k]) : zero;
        __m512 a1 = bias != nullptr ? _mm512_set1_ps(bias[k + 1]) : zero;
        __m512 a2 = bias != nullptr ? _mm512_set1_ps(bias[k + 2]) : zero;
        __m512 a3 = bias != nullptr ? _mm512_set1_ps(bias[k + 3]) : zero;
        const float* wk = w + k * TAPS;
        for (int tap = 0; tap < TAPS; ++tap) {
          a0 = _mm512_fmadd_ps(_mm512_set1_ps(wk[tap]), xv[tap], a0);
          a1 = _mm512_fmadd_ps(_mm512_set1_ps(wk[TAPS + tap]), xv[tap], a1);
          a2 = _mm512_fmadd_ps(_mm512_set1_ps(wk[2 * TAPS + tap]), xv[tap], a2);
          a3 = _mm512_fmadd_ps(_mm512_set1_ps(wk[3 * TAPS + tap]), xv[tap], a3);
        }
        finish(a0, k), finish(a1, k + 1), finish(a2, k + 2), finish(a3, k + 3);
      }
      for (; k < K; ++k) {
        __m512 a = bias != nullptr ? _mm512_set1_ps(bias[k]) : zero;
        for (int tap = 0; tap < TAPS; ++tap) a = _mm512_fmadd_ps(_mm512_set1_ps(w[k * TAPS + tap]), xv[tap], a);
        finish(a, k);
      }
    }
}

using RowsFn = void (*)(const Conv2dShape&, const Padded&, const float*, const float*, const float*, const float*, bool,
                        float*, index_t, index_t);

template <int STRIDE, std::size_t... I>
constexpr std::array<RowsFn, sizeof...(I)> rows_table(std::index_sequence<I...>) {
  return {&rows<static_cast<int>(I) + 1, STRIDE>...};
}

// Backward-weight: acc[k][tap] (16 lanes each: a lane is a pixel position within its 16-pixel
// segment) += grad_out segment of k * the tap's input vector. Register blocks of TK channels x TT
// taps (TK + TT vectors loaded per segment for TK * TT FMAs: reloading every tap's input for each
// channel made the loads the limit, 3.8x slower on the CNN's conv1); the block's sums are loaded
// and stored once per image. The caller sums the lanes.
template <int TK, int TT, int STRIDE>
void bw_block(const Conv2dShape& s, const Padded& g, const float* src, const float* gyn, const index_t* off,
              index_t k0, float* acc, index_t taps, index_t tap0) {
  const index_t P = s.P, Q = s.Q;
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  (void)even;
  __m512 a[TK][TT];
  #pragma GCC unroll 8
  for (int i = 0; i < TK; ++i)
    #pragma GCC unroll 8
    for (int j = 0; j < TT; ++j) a[i][j] = _mm512_loadu_ps(acc + ((k0 + i) * taps + tap0 + j) * 16);
  index_t o[TT];
  #pragma GCC unroll 8
  for (int j = 0; j < TT; ++j) o[j] = off[tap0 + j];
  // The unroll pragmas: without them GCC kept a copy of the accumulators on the stack and stored
  // all of them every iteration (store-bound: 3.8x slower on the CNN's conv1).
  for (index_t p = 0; p < P; ++p)
    for (index_t q0 = 0; q0 < Q; q0 += 16) {
      const int nq = static_cast<int>(std::min<index_t>(16, Q - q0));
      const __mmask16 mask = static_cast<__mmask16>((1u << nq) - 1);
      const float* base = src + p * STRIDE * g.Wp + q0 * STRIDE;
      __m512 xv[TT], gv[TK];
      // Whole-vector loads from the padded copy (rows with 32 floats of slack): the lanes past the
      // segment meet grad_out's zeros.
      #pragma GCC unroll 8
      for (int j = 0; j < TT; ++j)
        xv[j] = STRIDE == 1 ? _mm512_loadu_ps(base + o[j])
                            : _mm512_permutex2var_ps(_mm512_loadu_ps(base + o[j]), even,
                                                     _mm512_loadu_ps(base + o[j] + 16));
      #pragma GCC unroll 8
      for (int i = 0; i < TK; ++i) gv[i] = _mm512_maskz_loadu_ps(mask, gyn + ((k0 + i) * P + p) * Q + q0);
      #pragma GCC unroll 8
      for (int i = 0; i < TK; ++i)
        #pragma GCC unroll 8
        for (int j = 0; j < TT; ++j) a[i][j] = _mm512_fmadd_ps(gv[i], xv[j], a[i][j]);
    }
  #pragma GCC unroll 8
  for (int i = 0; i < TK; ++i)
    #pragma GCC unroll 8
    for (int j = 0; j < TT; ++j) _mm512_storeu_ps(acc + ((k0 + i) * taps + tap0 + j) * 16, a[i][j]);
}

using BwBlockFn = void (*)(const Conv2dShape&, const Padded&, const float*, const float*, const index_t*, index_t,
                           float*, index_t, index_t);
constexpr int kBwTK = 4, kBwTT = 5;

template <int STRIDE, std::size_t... I>
constexpr std::array<BwBlockFn, sizeof...(I)> bw_block_table(std::index_sequence<I...>) {
  return {&bw_block<static_cast<int>(I) / kBwTT + 1, static_cast<int>(I) % kBwTT + 1, STRIDE>...};
}

void bw_images(const Conv2dShape& s, const float* x, const float* gy, index_t n0, index_t n1, float* acc, float* xp) {
  static constexpr auto table1 = bw_block_table<1>(std::make_index_sequence<kBwTK * kBwTT>{});
  static constexpr auto table2 = bw_block_table<2>(std::make_index_sequence<kBwTK * kBwTT>{});
  const auto& table = s.stride_h == 1 ? table1 : table2;
  const Padded g = padded_geom(s, true);
  const index_t K = s.K, taps = s.C * s.R * s.S;
  index_t off[kPixconvMaxTapsInternal];
  for (index_t c = 0, tap = 0; c < s.C; ++c)
    for (index_t r = 0; r < s.R; ++r)
      for (index_t t = 0; t < s.S; ++t, ++tap) off[tap] = c * g.plane + r * g.Wp + t;
  for (index_t n = n0; n < n1; ++n) {
    pad_rows(s, g, x + n * s.C * s.H * s.W, xp, 0, g.Hp);
    const float* src = xp;
    const float* gyn = gy + n * K * s.P * s.Q;
    for (index_t k0 = 0; k0 < K; k0 += kBwTK) {
      const index_t tk = std::min<index_t>(kBwTK, K - k0);
      for (index_t t0 = 0; t0 < taps; t0 += kBwTT) {
        const index_t tt = std::min<index_t>(kBwTT, taps - t0);
        table[(tk - 1) * kBwTT + (tt - 1)](s, g, src, gyn, off, k0, acc, taps, t0);
      }
    }
  }
}

}  // namespace

constexpr int kPixconvMaxTaps = kPixconvMaxTapsInternal;

index_t pixconv_padded_floats_avx512(const Conv2dShape& s, bool slack) {
  const Padded g = padded_geom(s, slack);
  return g.copy ? s.C * g.plane : 0;
}

void pixconv_forward_image_avx512(const Conv2dShape& s, const float* x, const float* w, const float* bias,
                                  const float* res, bool relu, float* y, float* ws, int t, int team) {
  static constexpr auto by_taps1 = rows_table<1>(std::make_index_sequence<kPixconvMaxTaps>{});
  static constexpr auto by_taps2 = rows_table<2>(std::make_index_sequence<kPixconvMaxTaps>{});
  const Padded g = padded_geom(s);
  if (g.copy) {
    pad_rows(s, g, x, ws, g.Hp * t / team, g.Hp * (t + 1) / team);
    if (team > 1) {
#pragma omp barrier
    }
  }
  const index_t taps = s.C * s.R * s.S;
  const RowsFn fn = (s.stride_h == 1 ? by_taps1 : by_taps2)[taps - 1];
  fn(s, g, g.copy ? ws : x, w, bias, res, relu, y, s.P * t / team, s.P * (t + 1) / team);
  if (team > 1) {
#pragma omp barrier
  }
}

// Backward-weight's partial sums for images [n0, n1) into acc (K * TAPS * 16 floats, added to).
void pixconv_backward_weight_images_avx512(const Conv2dShape& s, const float* x, const float* grad_out, index_t n0,
                                           index_t n1, float* acc, float* ws) {
  bw_images(s, x, grad_out, n0, n1, acc, ws);
}

}  // namespace fastlayers::cpu
