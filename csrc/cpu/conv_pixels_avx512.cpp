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

// The padded image: plane c, row i, column j = x[c][i - pad_h][j - pad_w] (0 outside), rows
// [i0, i1), Wp floats a row. Without padding x is read in place (copy == false).
struct Padded {
  index_t Hp, Wp, plane;
  bool copy;
};

Padded padded_geom(const Conv2dShape& s) {
  Padded g;
  g.copy = s.pad_h != 0 || s.pad_w != 0;
  g.Hp = s.H + 2 * s.pad_h;
  g.Wp = g.copy ? (s.W + 2 * s.pad_w + 15) / 16 * 16 : s.W;
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

}  // namespace

constexpr int kPixconvMaxTaps = 25;

index_t pixconv_padded_floats_avx512(const Conv2dShape& s) {
  const Padded g = padded_geom(s);
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

}  // namespace fastlayers::cpu
