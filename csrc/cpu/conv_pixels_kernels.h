// Kernels of the pixels-in-lanes direct convolution (reasoning: conv_pixels.h), written once as
// templates on the vector ISA `S` (simd_avx512.h: 16 pixels a vector, simd_avx2.h: 8) and
// instantiated by conv_pixels_avx512.cpp and conv_pixels_avx2.cpp. Include only from those two.
#pragma once
#include <algorithm>
#include <array>
#include <utility>

#include "cpu/conv_pixels.h"

// Internal linkage (the unnamed namespace): the two files compile these with different ISA flags.
namespace fastlayers::cpu::pixconv {
namespace {

constexpr int kPixconvMaxTapsInternal = 25;

using Padded = PixconvPadded;  // its geometry: pixconv_padded (conv_pixels.cpp), the same for both ISAs
inline Padded padded_geom(const Conv2dShape& s, bool slack = false) { return pixconv_padded(s, slack); }

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

// Output rows [p0, p1): TAPS = C*R*S input vectors per L-pixel segment, then per output channel
// TAPS FMAs (four channels at a time: independent chains) and one masked store. The loads are
// masked to the segment's own pixels (nq; 2 nq - 1 floats for stride 2), so that they never read
// past a row: x can be read in place.
template <class S, int TAPS, int STRIDE>
void rows(const Conv2dShape& s, const Padded& g, const float* xp, const float* w, const float* bias,
          const float* res, bool relu, float* y, index_t p0, index_t p1) {
  using Vec = typename S::V;
  constexpr int L = S::L;
  const index_t K = s.K, Q = s.Q, PQ = s.P * s.Q, R = s.R, SW = s.S;
  const Vec zero = S::zero();
  // Offsets of the taps in the padded image (per segment start).
  index_t off[TAPS];
  for (index_t c = 0, tap = 0; c < s.C; ++c)
    for (index_t r = 0; r < R; ++r)
      for (index_t t = 0; t < SW; ++t, ++tap) off[tap] = c * g.plane + r * g.Wp + t;
  for (index_t p = p0; p < p1; ++p)
    for (index_t q0 = 0; q0 < Q; q0 += L) {
      const int nq = static_cast<int>(std::min<index_t>(L, Q - q0));
      const int span = 2 * nq - 1;  // stride 2: floats from the first pixel to the last
      const int lo = std::min(span, L), hi = std::max(span - L, 0);
      const float* base = xp + p * STRIDE * g.Wp + q0 * STRIDE;
      Vec xv[TAPS];
      for (int tap = 0; tap < TAPS; ++tap) {
        if (STRIDE == 1)
          xv[tap] = S::load_n(base + off[tap], nq);
        else
          xv[tap] = S::even_of(S::load_n(base + off[tap], lo), S::load_n(base + off[tap] + L, hi));
      }
      float* yq = y + p * Q + q0;
      const float* rq = res != nullptr ? res + p * Q + q0 : nullptr;
      auto finish = [&](Vec v, index_t k) {
        if (rq != nullptr) v = S::add(v, S::load_n(rq + k * PQ, nq));
        if (relu) v = S::max(zero, v);  // the second operand when NaN: NaN stays NaN, as the op
        S::store_n(yq + k * PQ, v, nq);
      };
      index_t k = 0;
      for (; k + 4 <= K; k += 4) {
        Vec a0 = bias != nullptr ? S::set1(bias[k]) : zero;
        Vec a1 = bias != nullptr ? S::set1(bias[k + 1]) : zero;
        Vec a2 = bias != nullptr ? S::set1(bias[k + 2]) : zero;
        Vec a3 = bias != nullptr ? S::set1(bias[k + 3]) : zero;
        const float* wk = w + k * TAPS;
        for (int tap = 0; tap < TAPS; ++tap) {
          a0 = S::fmadd(S::set1(wk[tap]), xv[tap], a0);
          a1 = S::fmadd(S::set1(wk[TAPS + tap]), xv[tap], a1);
          a2 = S::fmadd(S::set1(wk[2 * TAPS + tap]), xv[tap], a2);
          a3 = S::fmadd(S::set1(wk[3 * TAPS + tap]), xv[tap], a3);
        }
        finish(a0, k), finish(a1, k + 1), finish(a2, k + 2), finish(a3, k + 3);
      }
      for (; k < K; ++k) {
        Vec a = bias != nullptr ? S::set1(bias[k]) : zero;
        for (int tap = 0; tap < TAPS; ++tap) a = S::fmadd(S::set1(w[k * TAPS + tap]), xv[tap], a);
        finish(a, k);
      }
    }
}

using RowsFn = void (*)(const Conv2dShape&, const Padded&, const float*, const float*, const float*, const float*, bool,
                        float*, index_t, index_t);

template <class S, int STRIDE, std::size_t... I>
constexpr std::array<RowsFn, sizeof...(I)> rows_table(std::index_sequence<I...>) {
  return {&rows<S, static_cast<int>(I) + 1, STRIDE>...};
}

// Backward-weight: acc[k][tap] (16 floats each, of which the first L are used: a lane is a pixel
// position within its L-pixel segment) += grad_out segment of k * the tap's input vector. Register blocks of TK channels x TT
// taps (TK + TT vectors loaded per segment for TK * TT FMAs: reloading every tap's input for each
// channel made the loads the limit, 3.8x slower on the CNN's conv1); the block's sums are loaded
// and stored once per image. The caller sums the lanes.
template <class S, int TK, int TT, int STRIDE>
void bw_block(const Conv2dShape& s, const Padded& g, const float* src, const float* gyn, const index_t* off,
              index_t k0, float* acc, index_t taps, index_t tap0) {
  using Vec = typename S::V;
  constexpr int L = S::L;
  const index_t P = s.P, Q = s.Q;
  Vec a[TK][TT];
  #pragma GCC unroll 8
  for (int i = 0; i < TK; ++i)
    #pragma GCC unroll 8
    for (int j = 0; j < TT; ++j) a[i][j] = S::load(acc + ((k0 + i) * taps + tap0 + j) * 16);
  index_t o[TT];
  #pragma GCC unroll 8
  for (int j = 0; j < TT; ++j) o[j] = off[tap0 + j];
  // The unroll pragmas: without them GCC kept a copy of the accumulators on the stack and stored
  // all of them every iteration (store-bound: 3.8x slower on the CNN's conv1).
  for (index_t p = 0; p < P; ++p)
    for (index_t q0 = 0; q0 < Q; q0 += L) {
      const int nq = static_cast<int>(std::min<index_t>(L, Q - q0));
      const float* base = src + p * STRIDE * g.Wp + q0 * STRIDE;
      Vec xv[TT], gv[TK];
      // Whole-vector loads from the padded copy (rows with 32 floats of slack): the lanes past the
      // segment meet grad_out's zeros.
      #pragma GCC unroll 8
      for (int j = 0; j < TT; ++j)
        xv[j] = STRIDE == 1 ? S::load(base + o[j]) : S::even_of(S::load(base + o[j]), S::load(base + o[j] + L));
      #pragma GCC unroll 8
      for (int i = 0; i < TK; ++i) gv[i] = S::load_n(gyn + ((k0 + i) * P + p) * Q + q0, nq);
      #pragma GCC unroll 8
      for (int i = 0; i < TK; ++i)
        #pragma GCC unroll 8
        for (int j = 0; j < TT; ++j) a[i][j] = S::fmadd(gv[i], xv[j], a[i][j]);
    }
  #pragma GCC unroll 8
  for (int i = 0; i < TK; ++i)
    #pragma GCC unroll 8
    for (int j = 0; j < TT; ++j) S::store(acc + ((k0 + i) * taps + tap0 + j) * 16, a[i][j]);
}

using BwBlockFn = void (*)(const Conv2dShape&, const Padded&, const float*, const float*, const index_t*, index_t,
                           float*, index_t, index_t);
constexpr int kBwTK = 4, kBwTT = 5;

template <class S, int STRIDE, std::size_t... I>
constexpr std::array<BwBlockFn, sizeof...(I)> bw_block_table(std::index_sequence<I...>) {
  return {&bw_block<S, static_cast<int>(I) / kBwTT + 1, static_cast<int>(I) % kBwTT + 1, STRIDE>...};
}

template <class S>
void bw_images(const Conv2dShape& s, const float* x, const float* gy, index_t n0, index_t n1, float* acc, float* xp) {
  static constexpr auto table1 = bw_block_table<S, 1>(std::make_index_sequence<kBwTK * kBwTT>{});
  static constexpr auto table2 = bw_block_table<S, 2>(std::make_index_sequence<kBwTK * kBwTT>{});
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


// ---- The entry points conv_pixels.cpp calls, for one ISA.
template <class S>
void forward_image(const Conv2dShape& s, const float* x, const float* w, const float* bias, const float* res, bool relu,
                   float* y, float* ws, int t, int team) {
  static constexpr auto by_taps1 = rows_table<S, 1>(std::make_index_sequence<kPixconvMaxTapsInternal>{});
  static constexpr auto by_taps2 = rows_table<S, 2>(std::make_index_sequence<kPixconvMaxTapsInternal>{});
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

}  // namespace
}  // namespace fastlayers::cpu::pixconv
