// Kernels of the HWC direct convolution (reasoning: conv_hwc.h), templates on the vector ISA `S`
// (simd_avx512.h / simd_avx2.h), instantiated by conv_hwc_avx512.cpp and conv_hwc_avx2.cpp. The
// NCHW <-> HWC transposes are the channels-in-lanes Winograd's (conv_winograd_c16_kernels.h).
#pragma once
#include <algorithm>
#include <array>
#include <utility>

#include "cpu/conv_hwc.h"
#include "cpu/conv_winograd_c16_kernels.h"

// Internal linkage (the unnamed namespace): the two files compile these with different ISA flags.
namespace fastlayers::cpu::hwc {
namespace {

// The HWC image (Hp x Wp x C: every tap of every output pixel inside it, and the whole padded
// image, as wino16::transpose_in writes it) and the HWC output (P x Q x K), in the geometry
// struct the transposes read.
inline WinoC16Geom geom(const Conv2dShape& s) {
  WinoC16Geom g;
  g.Hp = std::max((s.P - 1) * s.stride_h + s.R, s.pad_h + s.H);
  g.Wp = std::max((s.Q - 1) * s.stride_w + s.S, s.pad_w + s.W);
  g.Pp = s.P;
  g.Qp = s.Q;
  auto round16 = [](index_t n) { return (n + 15) / 16 * 16; };
  g.xin_off = 0;
  g.yout_off = round16(g.Hp * g.Wp * s.C);
  g.slice = g.yout_off + round16(s.P * s.Q * s.K) + 16;
  return g;
}

// RB consecutive output pixels of one row x KV vectors of output channels. x: the block's first
// pixel's HWC position (tap (0, 0)); toff[tap]: the tap's offset from it; pixel j reads
// x + j*ST*C + toff[tap]. CC: C known at compile time (16, 32, 64; constant broadcast offsets), or 0.
template <class S, int KV, int RB, int CC, int ST>
void tile(const float* __restrict x, const index_t* toff, index_t taps, const float* __restrict Wk, index_t K,
          index_t Crt, const float* bias, float* __restrict out) {
  using Vec = typename S::V;
  constexpr int L = S::L;
  const index_t C = CC > 0 ? CC : Crt;
  Vec acc[RB][KV];
  #pragma GCC unroll 16
  for (int v = 0; v < KV; ++v) {
    const Vec b = bias != nullptr ? S::load(bias + L * v) : S::zero();
    #pragma GCC unroll 16
    for (int j = 0; j < RB; ++j) acc[j][v] = b;
  }
  for (index_t tap = 0; tap < taps; ++tap) {
    const float* xt = x + toff[tap];
    const float* wt = Wk + tap * C * K;
    for (index_t c = 0; c < C; ++c) {
      Vec u[KV];
      #pragma GCC unroll 16
      for (int v = 0; v < KV; ++v) u[v] = S::load(wt + c * K + L * v);
      #pragma GCC unroll 16
      for (int j = 0; j < RB; ++j) {
        const Vec b = S::set1(xt[j * ST * C + c]);
        #pragma GCC unroll 16
        for (int v = 0; v < KV; ++v) acc[j][v] = S::fmadd(b, u[v], acc[j][v]);
      }
    }
  }
  #pragma GCC unroll 16
  for (int j = 0; j < RB; ++j)
    #pragma GCC unroll 16
    for (int v = 0; v < KV; ++v) S::store(out + j * K + L * v, acc[j][v]);
}

using TileFn = void (*)(const float*, const index_t*, index_t, const float*, index_t, index_t, const float*, float*);

// The same for RB pixels anywhere (a block that runs on into the next output row): pixel j reads
// x + poff[j] + toff[tap]. A 7-pixel row would otherwise make blocks of 3 and 4 pixels, too few
// independent sums to hide the FMA latency: 32 -> 64 3x3 stride 2 onto 7x7, batch 64, 1 thread
// (AVX2), min of 15, row blocks / these: 2.09-2.15 / 1.77-1.84 ms; 16 -> 32 onto 14x14 1.69-1.85 /
// 1.63-1.78 ms.
template <class S, int KV, int RB, int CC>
void tile_px(const float* __restrict x, const index_t* poff, const index_t* toff, index_t taps,
             const float* __restrict Wk, index_t K, index_t Crt, const float* bias, float* __restrict out) {
  using Vec = typename S::V;
  constexpr int L = S::L;
  const index_t C = CC > 0 ? CC : Crt;
  Vec acc[RB][KV];
  #pragma GCC unroll 16
  for (int v = 0; v < KV; ++v) {
    const Vec b = bias != nullptr ? S::load(bias + L * v) : S::zero();
    #pragma GCC unroll 16
    for (int j = 0; j < RB; ++j) acc[j][v] = b;
  }
  const float* xj[RB];
  #pragma GCC unroll 16
  for (int j = 0; j < RB; ++j) xj[j] = x + poff[j];
  for (index_t tap = 0; tap < taps; ++tap) {
    const index_t o = toff[tap];
    const float* wt = Wk + tap * C * K;
    for (index_t c = 0; c < C; ++c) {
      Vec u[KV];
      #pragma GCC unroll 16
      for (int v = 0; v < KV; ++v) u[v] = S::load(wt + c * K + L * v);
      #pragma GCC unroll 16
      for (int j = 0; j < RB; ++j) {
        const Vec b = S::set1(xj[j][o + c]);
        #pragma GCC unroll 16
        for (int v = 0; v < KV; ++v) acc[j][v] = S::fmadd(b, u[v], acc[j][v]);
      }
    }
  }
  #pragma GCC unroll 16
  for (int j = 0; j < RB; ++j)
    #pragma GCC unroll 16
    for (int v = 0; v < KV; ++v) S::store(out + j * K + L * v, acc[j][v]);
}

using TilePxFn = void (*)(const float*, const index_t*, const index_t*, index_t, const float*, index_t, index_t,
                          const float*, float*);

template <class S, int KV, int CC, std::size_t... I>
constexpr std::array<TilePxFn, sizeof...(I)> tile_px_table(std::index_sequence<I...>) {
  return {&tile_px<S, KV, static_cast<int>(I) + 1, CC>...};
}

template <class S, int KV, int CC, int ST, std::size_t... I>
constexpr std::array<TileFn, sizeof...(I)> tile_table(std::index_sequence<I...>) {
  return {&tile<S, KV, static_cast<int>(I) + 1, CC, ST>...};
}

// Output rows [p0, p1) into yout (HWC): each row's Q pixels in blocks of at most max_rows(KV), as
// even as possible, for each vector block of output channels.
template <class S, int KV, int CC, int ST>
void rows(const Conv2dShape& s, const WinoC16Geom& g, const float* xin, const index_t* toff, const float* Wk,
          const float* bias, float* yout, index_t p0, index_t p1) {
  constexpr int RM = wino16::max_rows<S>(KV);
  static constexpr auto table = tile_table<S, KV, CC, ST>(std::make_index_sequence<RM>{});
  const index_t C = s.C, K = s.K, Q = s.Q, taps = s.R * s.S;
  if (Q % RM != 0) {  // blocks of RM pixels over the rows' pixels as one run
    static constexpr auto px_table = tile_px_table<S, KV, CC>(std::make_index_sequence<RM>{});
    const index_t m0 = p0 * Q, m1 = p1 * Q, n = m1 - m0, blocks = (n + RM - 1) / RM;
    index_t poff[RM];
    for (index_t bi = 0; bi < blocks; ++bi) {
      const index_t b0 = m0 + n * bi / blocks, b1 = m0 + n * (bi + 1) / blocks;
      for (index_t m = b0; m < b1; ++m) poff[m - b0] = ((m / Q) * ST * g.Wp + (m % Q) * ST) * C;
      for (index_t k0 = 0; k0 < K; k0 += S::L * KV)
        px_table[b1 - b0 - 1](xin, poff, toff, taps, Wk + k0, K, C, bias != nullptr ? bias + k0 : nullptr,
                              yout + b0 * K + k0);
    }
    return;
  }
  const index_t groups = (Q + RM - 1) / RM;
  for (index_t p = p0; p < p1; ++p)
    for (index_t k0 = 0; k0 < K; k0 += S::L * KV)
      for (index_t gi = 0; gi < groups; ++gi) {
        const index_t q0 = Q * gi / groups, q1 = Q * (gi + 1) / groups;
        table[q1 - q0 - 1](xin + (p * ST * g.Wp + q0 * ST) * C, toff, taps, Wk + k0, K, C,
                           bias != nullptr ? bias + k0 : nullptr, yout + (p * Q + q0) * K + k0);
      }
}

template <class S, int KV, int ST>
void rows_by_c(const Conv2dShape& s, const WinoC16Geom& g, const float* xin, const index_t* toff, const float* Wk,
               const float* bias, float* yout, index_t p0, index_t p1) {
  switch (s.C) {
    case 16: return rows<S, KV, 16, ST>(s, g, xin, toff, Wk, bias, yout, p0, p1);
    case 32: return rows<S, KV, 32, ST>(s, g, xin, toff, Wk, bias, yout, p0, p1);
    case 64: return rows<S, KV, 64, ST>(s, g, xin, toff, Wk, bias, yout, p0, p1);
    default: return rows<S, KV, 0, ST>(s, g, xin, toff, Wk, bias, yout, p0, p1);
  }
}

// The widest register block of output channels that divides K (as wino16::products_all).
template <class S, int ST>
void rows_all(const Conv2dShape& s, const WinoC16Geom& g, const float* xin, const index_t* toff, const float* Wk,
              const float* bias, float* yout, index_t p0, index_t p1) {
  if constexpr (S::L == 16) {
    if (s.K % 64 == 0) return rows_by_c<S, 4, ST>(s, g, xin, toff, Wk, bias, yout, p0, p1);
    if (s.K % 32 == 0) return rows_by_c<S, 2, ST>(s, g, xin, toff, Wk, bias, yout, p0, p1);
    return rows_by_c<S, 1, ST>(s, g, xin, toff, Wk, bias, yout, p0, p1);
  } else {
    return rows_by_c<S, 2, ST>(s, g, xin, toff, Wk, bias, yout, p0, p1);
  }
}

constexpr int kMaxTaps = 49;  // 7x7: the tap offsets live on the stack

template <class S>
void forward_image(const Conv2dShape& s, const float* x, const float* Wk, const float* bias, const float* res,
                   bool relu, float* y, float* ws, int t, int team) {
  const WinoC16Geom g = geom(s);
  float* xin = ws + g.xin_off;  // shared by the team: the first thread's slice
  float* yout = ws + g.yout_off;
  index_t toff[kMaxTaps];
  for (index_t r = 0; r < s.R; ++r)
    for (index_t c = 0; c < s.S; ++c) toff[r * s.S + c] = (r * g.Wp + c) * s.C;
  // A NaN or inf reaches exactly the outputs that read it here (a direct sum): the check's result
  // is not needed.
  wino16::transpose_in<S>(s, g, x, xin, g.Hp * t / team, g.Hp * (t + 1) / team);
  if (team > 1) {
#pragma omp barrier
  }
  const index_t p0 = s.P * t / team, p1 = s.P * (t + 1) / team;
  if (s.stride_h == 1)
    rows_all<S, 1>(s, g, xin, toff, Wk, bias, yout, p0, p1);
  else
    rows_all<S, 2>(s, g, xin, toff, Wk, bias, yout, p0, p1);
  // Each thread transposes back the rows it computed: no barrier between.
  wino16::transpose_out<S>(s, g, yout, res, relu, y, p0, p1);
  if (team > 1) {
#pragma omp barrier
  }
}

}  // namespace
}  // namespace fastlayers::cpu::hwc
