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

// RB output pixels x KV vectors of output channels, the sums in registers. The reduction is `runs`
// runs of `len` consecutive floats of the HWC image: pixel j reads x + poff[j] + roff[i] (its HWC
// position, then run i's offset) and run i's filters are Wk + i * len * K. With C known (CC > 0: 16,
// 32, 64) a run is one tap's C channels; otherwise a run is a whole kernel row, S taps x C
// channels, consecutive in HWC (LeNet-5's conv2, 6 channels: runs of 30 rather than 25 runs of 6).
// The block is a run of the
// image's pixels in row-major order, so it may carry on into the next output row: cut at row ends,
// a 7-pixel row would make blocks of 3 and 4 pixels, too few independent sums to hide the FMA
// latency. 32 -> 64 3x3 stride 2 onto 7x7, batch 64, 1 thread (AVX2), min of 15, blocks cut at row
// ends (with constant pixel offsets) / these: 2.09-2.15 / 1.77-1.84 ms; 16 -> 32 onto 14x14
// 1.69-1.85 / 1.63-1.78 ms; and where rows divide into blocks (12-pixel rows) no slower: 1.27-2.04 /
// 1.30-2.01 ms.
template <class S, int KV, int RB, int CC>
void tile(const float* __restrict x, const index_t* poff, const index_t* roff, index_t runs,
          const float* __restrict Wk, index_t K, index_t len_rt, const float* bias, float* __restrict out) {
  using Vec = typename S::V;
  constexpr int L = S::L;
  const index_t len = CC > 0 ? CC : len_rt;
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
  for (index_t i = 0; i < runs; ++i) {
    const index_t o = roff[i];
    const float* wt = Wk + i * len * K;
    for (index_t c = 0; c < len; ++c) {
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

using TileFn = void (*)(const float*, const index_t*, const index_t*, index_t, const float*, index_t, index_t,
                        const float*, float*);

template <class S, int KV, int CC, std::size_t... I>
constexpr std::array<TileFn, sizeof...(I)> tile_table(std::index_sequence<I...>) {
  return {&tile<S, KV, static_cast<int>(I) + 1, CC>...};
}

// Output rows [p0, p1) into yout (HWC): their pixels in blocks of at most max_rows(KV), as even as
// possible, for each vector block of output channels.
constexpr int kMaxTaps = kHwcMaxTaps;  // the run offsets live on the stack

template <class S, int KV, int CC>
void rows(const Conv2dShape& s, const WinoC16Geom& g, const float* xin, const float* Wk, const float* bias,
          float* yout, index_t p0, index_t p1) {
  constexpr int RM = wino16::max_rows<S>(KV);
  static constexpr auto table = tile_table<S, KV, CC>(std::make_index_sequence<RM>{});
  const index_t C = s.C, K = s.K, Q = s.Q, st = s.stride_h;
  index_t roff[kMaxTaps];
  const index_t runs = CC > 0 ? s.R * s.S : s.R, len = CC > 0 ? C : s.S * C;
  for (index_t r = 0; r < s.R; ++r)
    for (index_t t = 0; t < (CC > 0 ? s.S : 1); ++t) roff[CC > 0 ? r * s.S + t : r] = (r * g.Wp + t) * C;
  const index_t m0 = p0 * Q, n = p1 * Q - m0, blocks = (n + RM - 1) / RM;
  index_t poff[RM];
  // The pixel (p, q) of block position m, stepped along rather than divided out per pixel: with
  // few taps (one input channel: 25 FMAs per output vector) a division per pixel cost a third
  // as much as the block's FMAs.
  index_t p = p0, q = 0;
  for (index_t bi = 0; bi < blocks; ++bi) {
    const index_t b0 = m0 + n * bi / blocks, b1 = m0 + n * (bi + 1) / blocks;
    for (index_t m = b0; m < b1; ++m) {
      poff[m - b0] = (p * st * g.Wp + q * st) * C;
      if (++q == Q) q = 0, ++p;
    }
    for (index_t k0 = 0; k0 < K; k0 += S::L * KV)
      table[b1 - b0 - 1](xin, poff, roff, runs, Wk + k0, K, len, bias != nullptr ? bias + k0 : nullptr,
                         yout + b0 * K + k0);
  }
}

template <class S, int KV>
void rows_by_c(const Conv2dShape& s, const WinoC16Geom& g, const float* xin, const float* Wk, const float* bias,
               float* yout, index_t p0, index_t p1) {
  switch (s.C) {
    case 16: return rows<S, KV, 16>(s, g, xin, Wk, bias, yout, p0, p1);
    case 32: return rows<S, KV, 32>(s, g, xin, Wk, bias, yout, p0, p1);
    case 64: return rows<S, KV, 64>(s, g, xin, Wk, bias, yout, p0, p1);
    default: return rows<S, KV, 0>(s, g, xin, Wk, bias, yout, p0, p1);
  }
}

// The widest register block of output channels that divides K (as wino16::products_all).
template <class S>
void rows_all(const Conv2dShape& s, const WinoC16Geom& g, const float* xin, const float* Wk, const float* bias,
              float* yout, index_t p0, index_t p1) {
  if constexpr (S::L == 16) {
    if (s.K % 64 == 0) return rows_by_c<S, 4>(s, g, xin, Wk, bias, yout, p0, p1);
    if (s.K % 32 == 0) return rows_by_c<S, 2>(s, g, xin, Wk, bias, yout, p0, p1);
    return rows_by_c<S, 1>(s, g, xin, Wk, bias, yout, p0, p1);
  } else {
    return rows_by_c<S, 2>(s, g, xin, Wk, bias, yout, p0, p1);
  }
}

template <class S>
void forward_image(const Conv2dShape& s, const float* x, const float* Wk, const float* bias, const float* res,
                   bool relu, float* y, float* ws, int t, int team, ImageIo io) {
  const WinoC16Geom g = hwc_geom(s);
  float* xin = ws + g.xin_off;  // shared by the team: the first thread's slice
  float* yout = ws + g.yout_off;
  // A NaN or inf reaches exactly the outputs that read it here (a direct sum): the check's result
  // is not needed.
  wino16::image_in<S>(s, g, x, io, xin, g.Hp * t / team, g.Hp * (t + 1) / team);
  if (team > 1) {
#pragma omp barrier
  }
  if (io.pool.kind != OutPool::none) {  // pairs of output rows per thread, pooled by the thread that computed them
    const index_t P2 = s.P / 2, i0 = P2 * t / team, i1 = P2 * (t + 1) / team;
    rows_all<S>(s, g, xin, Wk, bias, yout, 2 * i0, 2 * i1);
    wino16::pool_transpose_out<S>(s, g, yout, io.pool, relu, io.y_hwc, ws + g.pool_off, y, i0, i1);
  } else {
    const index_t p0 = s.P * t / team, p1 = s.P * (t + 1) / team;
    rows_all<S>(s, g, xin, Wk, bias, yout, p0, p1);
    // Each thread moves back the rows it computed: no barrier between.
    wino16::image_out<S>(s, g, yout, res, relu, io, y, p0, p1);
  }
  if (team > 1) {
#pragma omp barrier
  }
}


// ---- Backward-weight: the adjoint of the forward in the filters. With the image in HWC (xin, the
// forward's transpose) and grad_out in HWC too (gin[m][k], m = p*Q + q),
//   Wt[tap][c][k] += sum over m of xin[pixel m's position + tap's offset + c] * gin[m][k],
// a GEMM whose operands are both read in place: per tap, blocks of CB input channels x KV vectors
// of output channels keep their sums in registers over all of the image's pixels (per pixel KV
// loads of gin and CB broadcasts of x for CB x KV FMAs), then add them to the thread's Wt.
template <class S, int KV, int CB>
void wgrad_tile(const float* __restrict xt, index_t P, index_t Q, index_t row_step, index_t col_step,
                const float* __restrict g, index_t K, float* __restrict acc) {
  using Vec = typename S::V;
  constexpr int L = S::L;
  Vec a[CB][KV];
  #pragma GCC unroll 8
  for (int i = 0; i < CB; ++i)
    #pragma GCC unroll 4
    for (int v = 0; v < KV; ++v) a[i][v] = S::zero();
  for (index_t p = 0; p < P; ++p) {
    const float* xp = xt + p * row_step;
    for (index_t q = 0; q < Q; ++q, xp += col_step, g += K) {
      Vec gv[KV];
      #pragma GCC unroll 4
      for (int v = 0; v < KV; ++v) gv[v] = S::load(g + L * v);
      #pragma GCC unroll 8
      for (int i = 0; i < CB; ++i) {
        const Vec b = S::set1(xp[i]);
        #pragma GCC unroll 4
        for (int v = 0; v < KV; ++v) a[i][v] = S::fmadd(b, gv[v], a[i][v]);
      }
    }
  }
  #pragma GCC unroll 8
  for (int i = 0; i < CB; ++i)
    #pragma GCC unroll 4
    for (int v = 0; v < KV; ++v) S::store(acc + i * K + L * v, S::add(S::load(acc + i * K + L * v), a[i][v]));
}

using WgradFn = void (*)(const float*, index_t, index_t, index_t, index_t, const float*, index_t, float*);
constexpr int kWgradCB = 6;  // 6 x 2 sums + 2 grad_out vectors + a broadcast: AVX2's 16 registers

template <class S, int KV, std::size_t... I>
constexpr std::array<WgradFn, sizeof...(I)> wgrad_table(std::index_sequence<I...>) {
  return {&wgrad_tile<S, KV, static_cast<int>(I) + 1>...};
}

// One image's contribution to Wt (R*S x C x K, added to): ws is this thread's slice (hwc_geom: the
// HWC image at xin_off, the HWC grad_out at yout_off).
template <class S>
void backward_weight_image(const Conv2dShape& s, const float* x, const float* go, float* Wt, float* ws) {
  const WinoC16Geom g = hwc_geom(s);
  float* xin = ws + g.xin_off;
  float* gin = ws + g.yout_off;
  wino16::transpose_in<S>(s, g, x, xin, 0, g.Hp);
  wino16::grad_to_hwc<S>(go, s.K, s.P, s.Q, gin, s.Q * s.K, 0, s.P);
  const index_t C = s.C, K = s.K, st = s.stride_h;
  const index_t cblocks = (C + kWgradCB - 1) / kWgradCB;
  auto run = [&](const auto& table, index_t kstep) {
    for (index_t r = 0; r < s.R; ++r)
      for (index_t t = 0; t < s.S; ++t)
        for (index_t b = 0; b < cblocks; ++b) {
          const index_t c0 = C * b / cblocks, cb = C * (b + 1) / cblocks - c0;
          const float* xt = xin + (r * g.Wp + t) * C + c0;
          for (index_t k0 = 0; k0 < K; k0 += kstep)
            table[cb - 1](xt, s.P, s.Q, st * g.Wp * C, st * C, gin + k0, K, Wt + ((r * s.S + t) * C + c0) * K + k0);
        }
  };
  static constexpr auto table2 = wgrad_table<S, 2>(std::make_index_sequence<kWgradCB>{});
  static constexpr auto table1 = wgrad_table<S, 1>(std::make_index_sequence<kWgradCB>{});
  if (K % (2 * S::L) == 0)
    run(table2, 2 * S::L);
  else
    run(table1, S::L);
}


// ---- Backward-data of a stride-2 layer: grad_x's pixels of row phase a and column phase b (h = 2i
// + a, w = 2j + b) take only the taps (r, t) with a + pad - r and b + pad - t even, from grad_out
// pixel (i + dr, j + dt), dr = (a + pad - r) / 2: per phase a stride-1 sum over those taps and the
// K channels, which the forward's tile computes (runs of K channels of a zero-bordered HWC grad_out,
// filters packed [phase run][k][c] by hwc_bd_prepare) into the phase's HWC buffer; the four buffers
// are then interleaved into grad_x (NCHW).
template <class S, int KV, int CC>
void bd_phase(const HwcBdGeom& g, index_t a, index_t b, const float* gpad, const float* Wp, index_t C, index_t K,
              float* out) {
  constexpr int RM = wino16::max_rows<S>(KV);
  static constexpr auto table = tile_table<S, KV, CC>(std::make_index_sequence<RM>{});
  const HwcBdPhase& ph = g.phase[a][b];
  index_t roff[kMaxTaps];
  for (index_t i = 0; i < ph.runs; ++i) roff[i] = (ph.dr[i] * g.Wg + ph.dt[i]) * K;
  const index_t n = ph.rows * ph.cols, blocks = (n + RM - 1) / RM;
  index_t poff[RM];
  for (index_t bi = 0; bi < blocks; ++bi) {
    const index_t b0 = n * bi / blocks, b1 = n * (bi + 1) / blocks;
    for (index_t m = b0; m < b1; ++m) poff[m - b0] = ((m / ph.cols + g.B) * g.Wg + m % ph.cols + g.B) * K;
    for (index_t c0 = 0; c0 < C; c0 += S::L * KV)
      table[b1 - b0 - 1](gpad, poff, roff, ph.runs, Wp + ph.w_off + c0, C, K, nullptr, out + b0 * C + c0);
  }
}

template <class S, int KV>
void bd_phase_by_k(const HwcBdGeom& g, index_t a, index_t b, const float* gpad, const float* Wp, index_t C,
                   index_t K, float* out) {
  switch (K) {
    case 16: return bd_phase<S, KV, 16>(g, a, b, gpad, Wp, C, K, out);
    case 32: return bd_phase<S, KV, 32>(g, a, b, gpad, Wp, C, K, out);
    case 64: return bd_phase<S, KV, 64>(g, a, b, gpad, Wp, C, K, out);
    default: return bd_phase<S, KV, 0>(g, a, b, gpad, Wp, C, K, out);
  }
}

// One image's grad_x (overwritten) of a stride-2 layer: grad_out in HWC, the four phase sums, their
// interleave. g is hwc_bd_geom(s), computed once per call; ws this thread's slice (g.slice floats).
template <class S>
void backward_data_image(const Conv2dShape& s, const HwcBdGeom& g, const float* go, const float* Wp, float* gx,
                         float* ws) {
  constexpr int L = S::L;
  const index_t C = s.C, K = s.K;
  float* gpad = ws;
  // grad_out in HWC inside a zero border of B pixels.
  std::fill(gpad, gpad + g.gpad_floats, 0.0f);
  wino16::grad_to_hwc<S>(go, K, s.P, s.Q, gpad + (g.B * g.Wg + g.B) * K, g.Wg * K, 0, s.P);
  for (index_t a = 0; a < 2; ++a)
    for (index_t b = 0; b < 2; ++b) {
      float* out = ws + g.phase[a][b].out_off;
      if constexpr (S::L == 16) {
        if (C % 64 == 0)
          bd_phase_by_k<S, 4>(g, a, b, gpad, Wp, C, K, out);
        else if (C % 32 == 0)
          bd_phase_by_k<S, 2>(g, a, b, gpad, Wp, C, K, out);
        else
          bd_phase_by_k<S, 1>(g, a, b, gpad, Wp, C, K, out);
      } else {
        bd_phase_by_k<S, 2>(g, a, b, gpad, Wp, C, K, out);
      }
    }
  // grad_x[c][h][w] = phase (h % 2, w % 2)'s pixel (h / 2, w / 2), channel c: per row h, L pixels
  // of each column phase x L channels transposed, then the two phases' columns interleaved.
  for (index_t h = 0; h < s.H; ++h) {
    const HwcBdPhase& e = g.phase[h % 2][0];
    const HwcBdPhase& o = g.phase[h % 2][1];
    const float* re = ws + e.out_off + (h / 2) * e.cols * C;
    const float* ro = ws + o.out_off + (h / 2) * o.cols * C;
    for (index_t j0 = 0; j0 < e.cols; j0 += L) {
      const int ne = static_cast<int>(std::min<index_t>(L, e.cols - j0));
      const int no = static_cast<int>(std::clamp<index_t>(o.cols - j0, 0, L));
      const index_t w0 = 2 * j0, nw = std::min<index_t>(2 * L, s.W - w0);
      for (index_t c0 = 0; c0 < C; c0 += L) {
        typename S::V ev[L], ov[L];
        for (int j = 0; j < L; ++j) {
          ev[j] = j < ne ? S::load(re + (j0 + j) * C + c0) : S::zero();
          ov[j] = j < no ? S::load(ro + (j0 + j) * C + c0) : S::zero();
        }
        S::transpose(ev);
        S::transpose(ov);
        for (int c = 0; c < L; ++c) {
          typename S::V lo, hi;
          S::interleave(ev[c], ov[c], lo, hi);
          float* row = gx + ((c0 + c) * s.H + h) * s.W + w0;
          S::store_n(row, lo, static_cast<int>(std::min<index_t>(L, nw)));
          if (nw > L) S::store_n(row + L, hi, static_cast<int>(nw - L));
        }
      }
    }
  }
}

}  // namespace
}  // namespace fastlayers::cpu::hwc
