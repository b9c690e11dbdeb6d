// Kernels of the channels-in-lanes Winograd convolution (layout and reasoning: conv_winograd_c16.h),
// written once as templates on the vector ISA `S` (simd_avx512.h: 16 lanes, simd_avx2.h: 8 lanes)
// and instantiated by conv_winograd_c16_avx512.cpp and conv_winograd_c16_avx2.cpp. Channels stay
// in blocks of 16 in memory for both (the geometry and the transformed filters are the same); an
// 8-lane machine treats each block as two vectors. Include only from those two files.
#pragma once
#include <algorithm>
#include <array>
#include <utility>

#include "cpu/conv_winograd_c16.h"

// Internal linkage (the unnamed namespace): the two files compile these with different ISA flags,
// and one shared definition picked by the linker could run AVX-512 code on an AVX2 machine.
namespace fastlayers::cpu::wino16 {
namespace {

// A (alpha): the patch side, a template parameter of every kernel below: 6 for F(4x4, 3x3)
// (points 0, +-1, +-2, inf), 8 for F(4x4, 5x5) (points 0, +-1, +-2, +-1/2, inf: the point set of
// F(6x6, 3x3)). Every kernel makes 4x4 output tiles (MT = 4).

// v = B^T d over one dimension (A values, one vector each): the input transform.
template <class S, int A>
inline void input_tf(const typename S::V d[A], typename S::V v[A]) {
  if constexpr (A == 6) {
    const auto four = S::set1(4.0f), five = S::set1(5.0f), two = S::set1(2.0f);
    v[0] = S::fmadd(four, d[0], S::fnmadd(five, d[2], d[4]));
    v[1] = S::fnmadd(four, S::add(d[1], d[2]), S::add(d[3], d[4]));
    v[2] = S::fmadd(four, S::sub(d[1], d[2]), S::sub(d[4], d[3]));
    v[3] = S::fmadd(two, S::sub(d[3], d[1]), S::sub(d[4], d[2]));
    v[4] = S::fmadd(two, S::sub(d[1], d[3]), S::sub(d[4], d[2]));
    v[5] = S::fmadd(four, d[1], S::fnmadd(five, d[3], d[5]));
  } else {
    static_assert(A == 8);
    // Rows in +- pairs (NNPACK's F(6x6, 3x3) input transform): v1, v2 = t1 +- u1, and so on.
    const auto c525 = S::set1(5.25f), c425 = S::set1(4.25f), c25 = S::set1(2.5f), c125 = S::set1(1.25f);
    const auto half = S::set1(0.5f), quarter = S::set1(0.25f), two = S::set1(2.0f), four = S::set1(4.0f),
               five = S::set1(5.0f);
    v[0] = S::fmadd(c525, S::sub(d[4], d[2]), S::sub(d[0], d[6]));
    v[7] = S::fmadd(c525, S::sub(d[3], d[5]), S::sub(d[7], d[1]));
    const auto t1 = S::fnmadd(c425, d[4], S::add(d[2], d[6])), u1 = S::fnmadd(c425, d[3], S::add(d[1], d[5]));
    v[1] = S::add(t1, u1);
    v[2] = S::sub(t1, u1);
    const auto t2 = S::fmadd(quarter, d[2], S::fnmadd(c125, d[4], d[6]));
    const auto u2 = S::fmadd(half, d[1], S::fnmadd(c25, d[3], S::mul(two, d[5])));
    v[3] = S::add(t2, u2);
    v[4] = S::sub(t2, u2);
    const auto t3 = S::fmadd(four, d[2], S::fnmadd(five, d[4], d[6]));
    const auto u3 = S::fmadd(two, d[1], S::fnmadd(c25, d[3], S::mul(half, d[5])));
    v[5] = S::add(t3, u3);
    v[6] = S::sub(t3, u3);
  }
}

// o = A^T m over one dimension: M (4) outputs from A values.
template <class S, int A, int M>
inline void output_tf(const typename S::V m[A], typename S::V o[M]) {
  if constexpr (A == 8) {
    static_assert(M == 4);
    const auto s1 = S::add(m[1], m[2]), d1 = S::sub(m[1], m[2]), s2 = S::add(m[3], m[4]), d2 = S::sub(m[3], m[4]);
    const auto s3 = S::add(m[5], m[6]), d3 = S::sub(m[5], m[6]);
    o[0] = S::add(S::add(m[0], s1), S::add(s2, s3));
    o[1] = S::fmadd(S::set1(2.0f), d2, S::fmadd(S::set1(0.5f), d3, d1));
    o[2] = S::fmadd(S::set1(4.0f), s2, S::fmadd(S::set1(0.25f), s3, s1));
    o[3] = S::add(S::fmadd(S::set1(8.0f), d2, S::fmadd(S::set1(0.125f), d3, d1)), m[7]);
  } else {
    static_assert(A == 6 && M == 4);
    const auto a = S::add(m[1], m[2]), b = S::sub(m[1], m[2]);
    const auto c = S::add(m[3], m[4]), d = S::sub(m[3], m[4]);
    o[0] = S::add(S::add(m[0], a), c);
    o[1] = S::fmadd(S::set1(2.0f), d, b);
    o[2] = S::fmadd(S::set1(4.0f), c, a);
    o[3] = S::add(S::fmadd(S::set1(8.0f), d, b), m[5]);
  }
}

// ---- the per-position products: M[xi][j][k] = sum_c V[xi][j][c] U[xi][c][k], R tiles x KV vectors
// of output channels in registers, one broadcast of V per KV FMAs. CC: the input channels when
// known at compile time (16, 32, 64: then every broadcast is one base register plus a constant;
// with C at run time the R row addresses did not fit in the registers and the kernel ran at half
// speed), or 0. (The unroll pragmas keep GCC from keeping the accumulators in a stack array.)
template <class S, int KV, int R, int CC>
void product_tile(const float* __restrict U, index_t K, const float* __restrict V, index_t Crt, float* __restrict M) {
  using Vec = typename S::V;
  constexpr int L = S::L;
  const index_t C = CC > 0 ? CC : Crt;
  Vec acc[R][KV];
  #pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
    #pragma GCC unroll 16
    for (int v = 0; v < KV; ++v) acc[r][v] = S::zero();
  for (index_t c = 0; c < C; ++c) {
    Vec u[KV];
    #pragma GCC unroll 16
    for (int v = 0; v < KV; ++v) u[v] = S::load(U + c * K + L * v);
    #pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const Vec b = S::set1(V[r * C + c]);
      #pragma GCC unroll 16
      for (int v = 0; v < KV; ++v) acc[r][v] = S::fmadd(b, u[v], acc[r][v]);
    }
  }
  #pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
    #pragma GCC unroll 16
    for (int v = 0; v < KV; ++v) S::store(M + r * K + L * v, acc[r][v]);
}

using ProductFn = void (*)(const float*, index_t, const float*, index_t, float*);

// Tiles per register block for KV vectors of output channels: about 3/4 of the vector registers
// as accumulators (32 registers with AVX-512: 16 / 12 / 6 tiles for 1 / 2 / 4 vectors; 16 with
// AVX2: 12 / 6 tiles for 1 / 2 vectors, the classic 6 x 16 block).
template <class S>
constexpr int max_rows(int KV) {
  if constexpr (S::L == 16) return KV == 1 ? 16 : KV == 2 ? 12 : 6;
  return KV == 1 ? 12 : 6;
}

template <class S, int KV, int CC, std::size_t... I>
constexpr std::array<ProductFn, sizeof...(I)> product_table(std::index_sequence<I...>) {
  return {&product_tile<S, KV, static_cast<int>(I) + 1, CC>...};
}

// The image's n tiles in register blocks of at most max_rows(KV), as even as possible (49 tiles
// in 16-tile blocks would leave one tile alone, a latency-bound chain of FMAs).
template <class S, int KV, int CC>
void products(const float* U, index_t K, const float* V, index_t C, float* M, index_t tiles) {
  constexpr int RM = max_rows<S>(KV);
  static constexpr auto table = product_table<S, KV, CC>(std::make_index_sequence<RM>{});
  const index_t groups = (tiles + RM - 1) / RM;
  for (index_t k0 = 0; k0 < K; k0 += S::L * KV)
    for (index_t gi = 0; gi < groups; ++gi) {
      const index_t j0 = tiles * gi / groups, j1 = tiles * (gi + 1) / groups;
      table[j1 - j0 - 1](U + k0, K, V + j0 * C, C, M + j0 * K + k0);
    }
}

template <class S, int KV>
void products_by_c(const float* U, index_t K, const float* V, index_t C, float* M, index_t tiles) {
  switch (C) {
    case 16: return products<S, KV, 16>(U, K, V, C, M, tiles);
    case 32: return products<S, KV, 32>(U, K, V, C, M, tiles);
    case 64: return products<S, KV, 64>(U, K, V, C, M, tiles);
    default: return products<S, KV, 0>(U, K, V, C, M, tiles);
  }
}

// All output channels of one position: the widest register block that divides K (K is a
// multiple of 16: 64 / 32 / 16 channels with AVX-512, 16 with AVX2).
template <class S>
void products_all(const float* U, index_t K, const float* V, index_t C, float* M, index_t tiles) {
  if constexpr (S::L == 16) {
    if (K % 64 == 0) return products_by_c<S, 4>(U, K, V, C, M, tiles);
    if (K % 32 == 0) return products_by_c<S, 2>(U, K, V, C, M, tiles);
    return products_by_c<S, 1>(U, K, V, C, M, tiles);
  } else {
    return products_by_c<S, 2>(U, K, V, C, M, tiles);
  }
}

// The zero border of xin's rows [i0, i1) (the padding around the image's pixels).
inline void zero_border(const Conv2dShape& s, const WinoC16Geom& g, float* xin, index_t i0, index_t i1) {
  const index_t C = s.C, H = s.H, W = s.W, Wp = g.Wp, ph = s.pad_h, pw = s.pad_w;
  for (index_t i = i0; i < i1; ++i) {
    float* row = xin + i * Wp * C;
    const index_t ih = i - ph;
    if (ih < 0 || ih >= H) {
      std::fill(row, row + Wp * C, 0.0f);
      continue;
    }
    std::fill(row, row + pw * C, 0.0f);
    if (pw + W < Wp) std::fill(row + (pw + W) * C, row + Wp * C, 0.0f);
  }
}

// ---- the image in HWC: xin[i][j][c] = x[c][i - ph][j - pw] (0 outside), rows [i0, i1). Returns
// false if any value read is a NaN or inf. Input pixels go L at a time in x's order (h * W + w),
// across the ends of rows, as in transpose_out below: whole-vector loads from each channel plane.
template <class S>
bool transpose_in(const Conv2dShape& s, const WinoC16Geom& g, const float* x, float* xin, index_t i0, index_t i1) {
  constexpr int L = S::L;
  const index_t C = s.C, H = s.H, W = s.W, HW = H * W, Wp = g.Wp, ph = s.pad_h, pw = s.pad_w;
  zero_border(s, g, xin, i0, i1);
  const index_t h0 = std::max<index_t>(i0 - ph, 0), h1 = std::min<index_t>(i1 - ph, H);
  if (h0 >= h1) return true;
  unsigned bad = 0;
  index_t c0 = 0;
  for (; c0 + L <= C; c0 += L) {
    index_t h = h0, w = 0;  // the pixel f0 + j below
    for (index_t f0 = h0 * W; f0 < h1 * W; f0 += L) {
      const int nf = static_cast<int>(std::min<index_t>(L, h1 * W - f0));
      typename S::V r[L];
      for (int c = 0; c < L; ++c) {
        r[c] = S::load_n(x + (c0 + c) * HW + f0, nf);
        bad |= S::unordered(S::sub(r[c], r[c]));  // 0, or NaN for a NaN or inf
      }
      S::transpose(r);
      for (int j = 0; j < nf; ++j) {
        S::store(xin + ((h + ph) * Wp + pw + w) * C + c0, r[j]);
        if (++w == W) w = 0, ++h;
      }
    }
  }
  if constexpr (S::L == 8) {
    // An RGB image (conv e): 8 pixels' three channels are three whole vectors, interleaved in
    // registers (conv e, 1 thread, paired medians of 21: the forward 1.03x).
    if (C == 3) {
      for (index_t h = h0; h < h1; ++h) {
        const float* src = x + h * W;
        float* dst = xin + ((h + ph) * Wp + pw) * 3;
        for (index_t w = 0; w < W; w += L) {
          const int nw = static_cast<int>(std::min<index_t>(L, W - w));
          typename S::V r[3], o[3];
          for (int c = 0; c < 3; ++c) {
            r[c] = S::load_n(src + c * HW + w, nw);
            bad |= S::unordered(S::sub(r[c], r[c]));  // 0, or NaN for a NaN or inf
          }
          S::interleave3(r[0], r[1], r[2], o);
          for (int v = 0; v < 3; ++v) {
            const int n = std::min(L, 3 * nw - L * v);
            if (n > 0) S::store_n(dst + 3 * w + L * v, o[v], n);
          }
        }
      }
      return bad == 0;
    }
  }
  // The last C % L channels (conv_hwc: LeNet-5's 6, conv e's 3), one float at a time: masked
  // stores of their vectors were a quarter of the transpose's time on Zen 3 (vmaskmovps is
  // microcoded there). Their NaN / inf check is a vector pass over the channel's rows, which are
  // contiguous in x: as a scalar sum beside the copy it was one chain of dependent adds, 4 cycles
  // a float (conv e, 224 x 224 x 3, paired medians of 21: the forward 1.05x at 1 thread, 1.07x at 2).
  for (; c0 < C; ++c0) {
    for (index_t h = h0; h < h1; ++h) {
      const float* src = x + c0 * HW + h * W;
      float* dst = xin + ((h + ph) * Wp + pw) * C + c0;
      for (index_t w = 0; w < W; ++w) dst[w * C] = src[w];
    }
    const float* src = x + c0 * HW;
    const index_t f1 = h1 * W;
    index_t f = h0 * W;
    for (; f + L <= f1; f += L) {
      const typename S::V v = S::load(src + f);
      bad |= S::unordered(S::sub(v, v));  // 0, or NaN for a NaN or inf
    }
    if (f < f1) {
      const typename S::V v = S::load_n(src + f, static_cast<int>(f1 - f));
      bad |= S::unordered(S::sub(v, v));
    }
  }
  return bad == 0;
}

// As transpose_in, from an image already in HWC (ImageIo::x_hwc): each row is one copy.
template <class S>
bool copy_in(const Conv2dShape& s, const WinoC16Geom& g, const float* x, float* xin, index_t i0, index_t i1) {
  constexpr int L = S::L;
  const index_t C = s.C, H = s.H, W = s.W, WC = W * C, Wp = g.Wp, ph = s.pad_h, pw = s.pad_w;
  zero_border(s, g, xin, i0, i1);
  const index_t h0 = std::max<index_t>(i0 - ph, 0), h1 = std::min<index_t>(i1 - ph, H);
  unsigned bad = 0;
  for (index_t h = h0; h < h1; ++h) {
    const float* src = x + h * WC;
    float* dst = xin + ((h + ph) * Wp + pw) * C;
    index_t i = 0;
    for (; i + L <= WC; i += L) {
      const auto v = S::load(src + i);
      bad |= S::unordered(S::sub(v, v));  // 0, or NaN for a NaN or inf
      S::store(dst + i, v);
    }
    float probe = 0.0f;
    for (; i < WC; ++i) dst[i] = src[i], probe += src[i] * 0.0f;
    bad |= probe != 0.0f;
  }
  return bad == 0;
}

// ---- y[k][p][q] = yout[p][q][k] (+ res[k][p][q], then ReLU if asked) for rows [p0, p1).
// Output pixels go L at a time in y's order (p * Q + q), across the ends of rows, so that each
// channel plane gets whole-vector stores: a row at a time cut a 7-wide row into 4 + 2 + 1-float
// stores and masked residual loads (the small ResNet, batch 64, 1 thread: this transpose was 15 %
// of the profile).
template <class S>
void transpose_out(const Conv2dShape& s, const WinoC16Geom& g, const float* yout, const float* res, bool relu,
                   float* y, index_t p0, index_t p1) {
  constexpr int L = S::L;
  const index_t K = s.K, Q = s.Q, PQ = s.P * s.Q, Qp = g.Qp, f1 = p1 * Q;
  const auto zero = S::zero();
  for (index_t k0 = 0; k0 < K; k0 += L) {
    index_t p = p0, q = 0;  // the pixel f0 + j below
    for (index_t f0 = p0 * Q; f0 < f1; f0 += L) {
      const int nf = static_cast<int>(std::min<index_t>(L, f1 - f0));
      typename S::V r[L];
      for (int j = 0; j < L; ++j) {
        if (j < nf) {
          r[j] = S::load(yout + (p * Qp + q) * K + k0);
          if (++q == Q) q = 0, ++p;
        } else {
          r[j] = zero;
        }
      }
      S::transpose(r);
      for (int k = 0; k < L; ++k) {
        const index_t at = (k0 + k) * PQ + f0;
        auto v = r[k];
        if (res != nullptr) v = S::add(v, S::load_n(res + at, nf));
        if (relu) v = S::max(zero, v);  // the second operand when NaN: NaN stays NaN, as the op
        S::store_n(y + at, v, nf);
      }
    }
  }
}

// Pooled rows [i0, i1) of y (K, P/2, Q/2) from the HWC output (OutPool): each 2x2 window of
// yout pooled channel vector by vector into `pooled` (HWC, (P/2) x (Q/2) x K; K a multiple of L),
// then those rows transposed to NCHW with ReLU (unless it came first). Reads output rows
// [2 i0, 2 i1) only.
template <class S>
void pool_transpose_out(const Conv2dShape& s, const WinoC16Geom& g, const float* yout, OutPool pool, bool relu,
                        bool y_hwc, float* pooled, float* y, index_t i0, index_t i1) {
  if (y_hwc) pooled = y;  // the pooled rows are y's, with ReLU applied here
  using Vec = typename S::V;
  constexpr int L = S::L;
  const index_t K = s.K, Qp = g.Qp, Q2 = s.Q / 2;
  // ReLU on the pool's inputs when it comes first; into HWC y (no transpose after) also when it
  // comes after a max pool, which it commutes with; after an average pool, on its result here.
  const bool relu_in = relu && (pool.relu_first || (y_hwc && pool.kind == OutPool::max));
  const bool relu_out = relu && y_hwc && !relu_in;
  const Vec zero = S::zero(), quarter = S::set1(0.25f);
  for (index_t i = i0; i < i1; ++i)
    for (index_t j = 0; j < Q2; ++j) {
      const float* a = yout + (2 * i * Qp + 2 * j) * K;
      const float* b = a + Qp * K;
      float* o = pooled + (i * Q2 + j) * K;
      for (index_t k = 0; k < K; k += L) {
        Vec v0 = S::load(a + k), v1 = S::load(a + K + k), v2 = S::load(b + k), v3 = S::load(b + K + k);
        if (relu_in) {  // max(0, v) keeps NaN (the second operand), as the op
          v0 = S::max(zero, v0), v1 = S::max(zero, v1), v2 = S::max(zero, v2), v3 = S::max(zero, v3);
        }
        Vec v = pool.kind == OutPool::max ? S::nan_max(S::nan_max(v0, v1), S::nan_max(v2, v3))
                                          : S::mul(S::add(S::add(v0, v1), S::add(v2, v3)), quarter);
        if (relu_out) v = S::max(zero, v);
        S::store(o + k, v);
      }
    }
  if (y_hwc) return;
  Conv2dShape sp = s;
  sp.P = s.P / 2, sp.Q = Q2;
  WinoC16Geom gp = g;
  gp.Qp = Q2;
  transpose_out<S>(sp, gp, pooled, nullptr, relu && !relu_in, y, i0, i1);
}

// max(0, v) with NaN kept (as the op), for the scalar paths of an image holding a NaN or inf.
inline float relu_keep_nan(float v) { return !(v > 0.0f) && v == v ? 0.0f : v; }

// The same pool from a full-size NCHW result `z` (the NaN fallback's), channels [k0, k1), scalar,
// into y in NCHW or (y_hwc) HWC.
inline void pool_planes(const Conv2dShape& s, const float* z, OutPool pool, bool relu, bool y_hwc, float* y,
                        index_t k0, index_t k1) {
  const index_t P2 = s.P / 2, Q2 = s.Q / 2;
  auto nan_max = [](float m, float v) { return v > m || v != v ? v : m; };
  for (index_t k = k0; k < k1; ++k)
    for (index_t i = 0; i < P2; ++i)
      for (index_t j = 0; j < Q2; ++j) {
        const float* a = z + (k * s.P + 2 * i) * s.Q + 2 * j;
        float v[4] = {a[0], a[1], a[s.Q], a[s.Q + 1]};
        if (relu && pool.relu_first)
          for (float& u : v) u = relu_keep_nan(u);
        float m = v[0];
        if (pool.kind == OutPool::max)
          for (int e = 1; e < 4; ++e) m = nan_max(m, v[e]);
        else
          m = ((v[0] + v[1]) + (v[2] + v[3])) * 0.25f;
        y[y_hwc ? (i * Q2 + j) * s.K + k : (k * P2 + i) * Q2 + j] = relu && !pool.relu_first ? relu_keep_nan(m) : m;
      }
}

// As transpose_out, into y (and from res) in HWC (ImageIo::y_hwc): rows of yout (Qp pixels apart)
// copied out with the residual and ReLU.
template <class S>
void copy_out(const Conv2dShape& s, const WinoC16Geom& g, const float* yout, const float* res, bool relu, float* y,
              index_t p0, index_t p1) {
  constexpr int L = S::L;
  const index_t QK = s.Q * s.K, QpK = g.Qp * s.K;  // K is a multiple of L
  const auto zero = S::zero();
  for (index_t p = p0; p < p1; ++p) {
    const float* src = yout + p * QpK;
    float* dst = y + p * QK;
    const float* r = res != nullptr ? res + p * QK : nullptr;
    for (index_t i = 0; i < QK; i += L) {
      auto v = S::load(src + i);
      if (r != nullptr) v = S::add(v, S::load(r + i));
      if (relu) v = S::max(zero, v);
      S::store(dst + i, v);
    }
  }
}

// The image in (rows [i0, i1) of xin) and out (rows [p0, p1) of y), by the layouts io names.
template <class S>
bool image_in(const Conv2dShape& s, const WinoC16Geom& g, const float* x, const ImageIo& io, float* xin, index_t i0,
              index_t i1) {
  return io.x_hwc ? copy_in<S>(s, g, x, xin, i0, i1) : transpose_in<S>(s, g, x, xin, i0, i1);
}

template <class S>
void image_out(const Conv2dShape& s, const WinoC16Geom& g, const float* yout, const float* res, bool relu,
               const ImageIo& io, float* y, index_t p0, index_t p1) {
  if (io.y_hwc)
    copy_out<S>(s, g, yout, res, relu, y, p0, p1);
  else
    transpose_out<S>(s, g, yout, res, relu, y, p0, p1);
}

// ---- V[xi][j][c] for tiles [t0, t0 + n) of the image (j = tile - t0).
template <class S, int A>
void transform_input(const Conv2dShape& s, const WinoC16Geom& g, const float* xin, float* V, index_t t0, index_t n) {
  using Vec = typename S::V;
  const index_t C = s.C, Wp = g.Wp, vs = g.v_stride;  // vs: between consecutive xi
  for (index_t j = 0; j < n; ++j) {
    const index_t th = (t0 + j) / g.tiles_w, tw = (t0 + j) % g.tiles_w;
    const float* base = xin + (th * g.m * Wp + tw * g.m) * C;
    for (index_t c0 = 0; c0 < C; c0 += S::L) {
      Vec t[A][A];  // t[a][b] = (B^T d)[a][b], by column
      for (int b = 0; b < A; ++b) {
        Vec d[A], v[A];
        for (int a = 0; a < A; ++a) d[a] = S::load(base + (a * Wp + b) * C + c0);
        input_tf<S, A>(d, v);
        for (int a = 0; a < A; ++a) t[a][b] = v[a];
      }
      float* out = V + j * C + c0;
      for (int a = 0; a < A; ++a) {
        Vec v[A];
        input_tf<S, A>(t[a], v);
        for (int b = 0; b < A; ++b) S::store(out + (a * A + b) * vs, v[b]);
      }
    }
  }
}

// ---- yout tiles from M[xi][j][k] (+ bias).
template <class S, int A, int MT>
void transform_output(const Conv2dShape& s, const WinoC16Geom& g, const float* M, const float* bias, float* yout,
                      index_t t0, index_t n) {
  using Vec = typename S::V;
  const index_t K = s.K, Qp = g.Qp, ms = g.m_stride;  // ms: between consecutive xi
  for (index_t j = 0; j < n; ++j) {
    const index_t th = (t0 + j) / g.tiles_w, tw = (t0 + j) % g.tiles_w;
    float* base = yout + (th * MT * Qp + tw * MT) * K;
    for (index_t k0 = 0; k0 < K; k0 += S::L) {
      const float* in = M + j * K + k0;
      Vec t[MT][A];  // (A^T m) by column
      for (int b = 0; b < A; ++b) {
        Vec m[A], o[MT];
        for (int a = 0; a < A; ++a) m[a] = S::load(in + (a * A + b) * ms);
        output_tf<S, A, MT>(m, o);
        for (int a = 0; a < MT; ++a) t[a][b] = o[a];
      }
      const Vec bv = bias != nullptr ? S::load(bias + k0) : S::zero();
      for (int a = 0; a < MT; ++a) {
        Vec o[MT];
        output_tf<S, A, MT>(t[a], o);
        for (int b = 0; b < MT; ++b) S::store(base + (a * Qp + b) * K + k0, S::add(o[b], bv));
      }
    }
  }
}

// ---- An image holding a NaN or inf: the direct sum from xin, output channels [k0, k1), so that
// the non-finite values reach exactly the outputs that read them.
inline void direct_fallback(const Conv2dShape& s, const WinoC16Geom& g, const float* xin, const float* w,
                            const float* bias, float* y, index_t k0, index_t k1) {
  const index_t C = s.C, R = s.R, S = s.S, Wp = g.Wp;
  for (index_t k = k0; k < k1; ++k)
    for (index_t p = 0; p < s.P; ++p)
      for (index_t q = 0; q < s.Q; ++q) {
        double acc = bias != nullptr ? bias[k] : 0.0;
        for (index_t r = 0; r < R; ++r)
          for (index_t t = 0; t < S; ++t) {
            const float* xv = xin + ((p + r) * Wp + q + t) * C;
            const float* wv = w + k * C * R * S + r * S + t;
            for (index_t c = 0; c < C; ++c) acc += static_cast<double>(xv[c]) * wv[c * R * S];
          }
        y[(k * s.P + p) * s.Q + q] = static_cast<float>(acc);
      }
}

template <class S, int A, int MT>
void forward_image(const Conv2dShape& s, const WinoC16Geom& g, const float* x, const float* U, const float* w,
                   const float* bias, const float* res, bool relu, float* y, float* ws, int t, int team,
                   ImageIo io) {
  float* xin = ws + g.xin_off;  // shared by the team: the first thread's slice
  float* yout = ws + g.yout_off;
  float* own = ws + static_cast<index_t>(t) * g.slice;
  float* V = own + g.v_off;
  float* M = own + g.m_off;
  float* flag = own + g.flag_off;
  const bool finite = image_in<S>(s, g, x, io, xin, g.Hp * t / team, g.Hp * (t + 1) / team);
  flag[0] = finite ? 0.0f : 1.0f;
  bool all_finite = finite;
  if (team > 1) {
#pragma omp barrier
    for (int u = 0; u < team; ++u) all_finite = all_finite && ws[u * g.slice + g.flag_off] == 0.0f;
  }
  if (!all_finite) {
    const index_t k0 = s.K * t / team, k1 = s.K * (t + 1) / team, PQ = s.P * s.Q;
    const OutPool pool = io.pool;
    if (pool.kind != OutPool::none || io.y_hwc) {  // the NCHW result in yout's room (Pp Qp K >= P Q K floats)
      direct_fallback(s, g, xin, w, bias, yout, k0, k1);
      if (pool.kind != OutPool::none) {
        pool_planes(s, yout, pool, relu, io.y_hwc, y, k0, k1);
      } else {
        for (index_t k = k0; k < k1; ++k)
          for (index_t i = 0; i < PQ; ++i) {
            const float v = res != nullptr ? yout[k * PQ + i] + res[i * s.K + k] : yout[k * PQ + i];
            y[i * s.K + k] = relu ? relu_keep_nan(v) : v;
          }
      }
      if (team > 1) {
#pragma omp barrier
      }
      return;
    }
    direct_fallback(s, g, xin, w, bias, y, k0, k1);
    for (index_t i = k0 * PQ; i < k1 * PQ; ++i) {
      const float v = res != nullptr ? y[i] + res[i] : y[i];
      y[i] = relu ? relu_keep_nan(v) : v;
    }
    if (team > 1) {
#pragma omp barrier
    }
    return;
  }
  const index_t C = s.C, K = s.K;
  const index_t lo = g.tiles * t / team, hi = g.tiles * (t + 1) / team;
  for (index_t t0 = lo; t0 < hi; t0 += g.TB) {
    const index_t n = std::min(g.TB, hi - t0);
    transform_input<S, A>(s, g, xin, V, t0, n);
    for (int xi = 0; xi < A * A; ++xi) products_all<S>(U + xi * C * K, K, V + xi * g.v_stride, C, M + xi * g.m_stride, n);
    transform_output<S, A, MT>(s, g, M, bias, yout, t0, n);
  }
  if (team > 1) {
#pragma omp barrier
  }
  if (io.pool.kind != OutPool::none) {
    const index_t P2 = s.P / 2;
    pool_transpose_out<S>(s, g, yout, io.pool, relu, io.y_hwc, ws + g.pool_off, y, P2 * t / team, P2 * (t + 1) / team);
  } else {
    image_out<S>(s, g, yout, res, relu, io, y, s.P * t / team, s.P * (t + 1) / team);
  }
  if (team > 1) {
#pragma omp barrier
  }
}

// ---- Backward-weight: the adjoint of the forward with respect to U. Per tile the forward is
// y = A^T [U .* (B^T d B)] A, so dL/dU[xi][k][c] = sum over tiles D[xi][k] V[xi][c] with
// D = A dy A^T (dy: grad_out's m x m tile, 0 past the edge) and V the forward's input transform;
// grad_w = G^T (dL/dU) G (winograd_c16_backward_weight_call).

// u = A o: the m values of one grad_out row or column -> 6 (the adjoint of output_tf).
template <class S, int A, int M>
inline void grad_tf(const typename S::V o[M], typename S::V u[A]) {
  if constexpr (A == 8) {
    static_assert(M == 4);
    const auto e1 = S::add(o[0], o[2]), f1 = S::add(o[1], o[3]);
    const auto e2 = S::fmadd(S::set1(4.0f), o[2], o[0]), f2 = S::fmadd(S::set1(8.0f), o[3], S::add(o[1], o[1]));
    const auto e3 = S::fmadd(S::set1(0.25f), o[2], o[0]);
    const auto f3 = S::fmadd(S::set1(0.125f), o[3], S::mul(S::set1(0.5f), o[1]));
    u[0] = o[0];
    u[1] = S::add(e1, f1);
    u[2] = S::sub(e1, f1);
    u[3] = S::add(e2, f2);
    u[4] = S::sub(e2, f2);
    u[5] = S::add(e3, f3);
    u[6] = S::sub(e3, f3);
    u[7] = o[3];
  } else {
    static_assert(A == 6 && M == 4);
    const auto e = S::add(o[0], o[2]), f = S::add(o[1], o[3]);
    const auto g = S::fmadd(S::set1(4.0f), o[2], o[0]);
    const auto h = S::fmadd(S::set1(8.0f), o[3], S::add(o[1], o[1]));
    u[0] = o[0];
    u[1] = S::add(e, f);
    u[2] = S::sub(e, f);
    u[3] = S::add(g, h);
    u[4] = S::sub(g, h);
    u[5] = o[3];
  }
}

// dst[p * ld + q * K + k] = go[k][p][q] for rows [p0, p1) of one image's grad_out (K a multiple
// of L): the HWC copy that every backward kernel here and in conv_hwc starts from, with the row
// stride (ld) each needs. Pixels go L at a time in go's order, across the ends of rows
// (whole-vector loads from each channel plane), and each pixel's K channels are written together.
template <class S>
void grad_to_hwc(const float* go, index_t K, index_t P, index_t Q, float* dst, index_t ld, index_t p0, index_t p1) {
  constexpr int L = S::L;
  const index_t PQ = P * Q, f1 = p1 * Q;
  index_t p = p0, q = 0;  // the pixel f0 + j below
  for (index_t f0 = p0 * Q; f0 < f1; f0 += L) {
    const int nf = static_cast<int>(std::min<index_t>(L, f1 - f0));
    index_t at[L];
    for (int j = 0; j < nf; ++j) {
      at[j] = p * ld + q * K;
      if (++q == Q) q = 0, ++p;
    }
    for (index_t k0 = 0; k0 < K; k0 += L) {
      typename S::V r[L];
      for (int k = 0; k < L; ++k) r[k] = S::load_n(go + (k0 + k) * PQ + f0, nf);
      S::transpose(r);
      for (int j = 0; j < nf; ++j) S::store(dst + at[j] + k0, r[j]);
    }
  }
}

// gin[p][q][k] = grad_out[k][p][q], 0 for p >= P or q >= Q (whole tiles: Pp x Qp), rows [p0, p1).
template <class S>
void transpose_grad_in(const Conv2dShape& s, const WinoC16Geom& g, const float* go, float* gin, index_t p0,
                       index_t p1) {
  const index_t K = s.K, P = s.P, Q = s.Q, Qp = g.Qp;
  for (index_t p = p0; p < p1; ++p) {
    float* row = gin + p * Qp * K;
    if (p >= P)
      std::fill(row, row + Qp * K, 0.0f);
    else if (Q < Qp)
      std::fill(row + Q * K, row + Qp * K, 0.0f);
  }
  grad_to_hwc<S>(go, K, P, Q, gin, Qp * K, p0, std::min(p1, P));
}

// D[xi][j][k] for tiles [t0, t0 + n) of the image.
template <class S, int A, int MT>
void transform_grad(const Conv2dShape& s, const WinoC16Geom& g, const float* gin, float* D, index_t t0, index_t n) {
  using Vec = typename S::V;
  const index_t K = s.K, Qp = g.Qp, ds = g.m_stride;  // ds: between consecutive xi
  for (index_t j = 0; j < n; ++j) {
    const index_t th = (t0 + j) / g.tiles_w, tw = (t0 + j) % g.tiles_w;
    const float* base = gin + (th * MT * Qp + tw * MT) * K;
    for (index_t k0 = 0; k0 < K; k0 += S::L) {
      Vec t[A][MT];  // (A dy) by column
      for (int b = 0; b < MT; ++b) {
        Vec o[MT], u[A];
        for (int a = 0; a < MT; ++a) o[a] = S::load(base + (a * Qp + b) * K + k0);
        grad_tf<S, A, MT>(o, u);
        for (int a = 0; a < A; ++a) t[a][b] = u[a];
      }
      float* out = D + j * K + k0;
      for (int a = 0; a < A; ++a) {
        Vec u[A];
        grad_tf<S, A, MT>(t[a], u);
        for (int b = 0; b < A; ++b) S::store(out + (a * A + b) * ds, u[b]);
      }
    }
  }
}

// Mw[k][c] (rows of C floats) += sum over n tiles of D[j][k] V[j][c], for KR rows k and CV vectors
// of c in registers.
template <class S, int CV, int KR>
void wgrad_tile(const float* __restrict D, index_t K, const float* __restrict V, index_t C, index_t n,
                float* __restrict Mw) {
  using Vec = typename S::V;
  constexpr int L = S::L;
  Vec acc[KR][CV];
  #pragma GCC unroll 16
  for (int r = 0; r < KR; ++r)
    #pragma GCC unroll 16
    for (int v = 0; v < CV; ++v) acc[r][v] = S::load(Mw + r * C + L * v);
  for (index_t j = 0; j < n; ++j) {
    Vec x[CV];
    #pragma GCC unroll 16
    for (int v = 0; v < CV; ++v) x[v] = S::load(V + j * C + L * v);
    #pragma GCC unroll 16
    for (int r = 0; r < KR; ++r) {
      const Vec d = S::set1(D[j * K + r]);
      #pragma GCC unroll 16
      for (int v = 0; v < CV; ++v) acc[r][v] = S::fmadd(d, x[v], acc[r][v]);
    }
  }
  #pragma GCC unroll 16
  for (int r = 0; r < KR; ++r)
    #pragma GCC unroll 16
    for (int v = 0; v < CV; ++v) S::store(Mw + r * C + L * v, acc[r][v]);
}

using WgradFn = void (*)(const float*, index_t, const float*, index_t, index_t, float*);

// Rows of Mw per register block for CV vectors of c (as max_rows); the widest chunk of c: 4
// vectors with AVX-512, 2 with AVX2.
template <class S>
constexpr int wgrad_rows(int CV) {
  if constexpr (S::L == 16) return CV == 1 ? 16 : CV == 2 ? 12 : CV == 3 ? 8 : 6;
  return CV == 1 ? 12 : 6;
}
template <class S>
constexpr int wgrad_max_cv() {
  return S::L == 16 ? 4 : 2;
}

template <class S, int CV, std::size_t... I>
constexpr std::array<WgradFn, sizeof...(I)> wgrad_table(std::index_sequence<I...>) {
  return {&wgrad_tile<S, CV, static_cast<int>(I) + 1>...};
}

template <class S, int CV>
void wgrad_rows_of(const float* D, index_t K, const float* V, index_t C, index_t n, float* Mw) {
  constexpr int KR = wgrad_rows<S>(CV);
  static constexpr auto table = wgrad_table<S, CV>(std::make_index_sequence<KR>{});
  for (index_t k0 = 0; k0 < K; k0 += KR) {
    const index_t kr = std::min<index_t>(KR, K - k0);
    table[kr - 1](D + k0, K, V, C, n, Mw + k0 * C);
  }
}

// Mw[k][c] += D^T V over n tiles, c in chunks of up to wgrad_max_cv vectors.
template <class S>
void wgrad(const float* D, index_t K, const float* V, index_t C, index_t n, float* Mw) {
  constexpr int L = S::L, CVM = wgrad_max_cv<S>();
  for (index_t c0 = 0; c0 < C; c0 += L * CVM) {
    const index_t cv = std::min<index_t>(CVM, (C - c0) / L);
    const float* Vc = V + c0;
    float* Mc = Mw + c0;
    if constexpr (CVM == 4) {
      switch (cv) {
        case 1: wgrad_rows_of<S, 1>(D, K, Vc, C, n, Mc); break;
        case 2: wgrad_rows_of<S, 2>(D, K, Vc, C, n, Mc); break;
        case 3: wgrad_rows_of<S, 3>(D, K, Vc, C, n, Mc); break;
        default: wgrad_rows_of<S, 4>(D, K, Vc, C, n, Mc); break;
      }
    } else {
      if (cv == 1)
        wgrad_rows_of<S, 1>(D, K, Vc, C, n, Mc);
      else
        wgrad_rows_of<S, 2>(D, K, Vc, C, n, Mc);
    }
  }
}

// Images [n0, n1): their tiles in blocks of TB that run across images (a 7x7 map has 4 tiles: per
// image, the dL/dU accumulators would be loaded and stored for every 4 tiles).
template <class S, int A, int MT>
void backward_weight_images(const Conv2dShape& s, const WinoC16Geom& g, const float* x, const float* go, index_t n0,
                            index_t n1, float* Mw, float* ws) {
  float* xin = ws + g.xin_off;
  float* gin = ws + g.yout_off;
  float* V = ws + g.v_off;
  float* D = ws + g.m_off;
  const index_t C = s.C, K = s.K, in_img = C * s.H * s.W, out_img = K * s.P * s.Q;
  index_t fill = 0;  // tiles in the block so far
  auto flush = [&] {
    for (int xi = 0; xi < A * A; ++xi) wgrad<S>(D + xi * g.m_stride, K, V + xi * g.v_stride, C, fill, Mw + xi * K * C);
    fill = 0;
  };
  for (index_t n = n0; n < n1; ++n) {
    transpose_in<S>(s, g, x + n * in_img, xin, 0, g.Hp);  // the caller checked x and grad_out for NaN and inf
    transpose_grad_in<S>(s, g, go + n * out_img, gin, 0, g.Pp);
    for (index_t t0 = 0; t0 < g.tiles;) {
      const index_t cnt = std::min(g.TB - fill, g.tiles - t0);
      transform_input<S, A>(s, g, xin, V + fill * C, t0, cnt);
      transform_grad<S, A, MT>(s, g, gin, D + fill * K, t0, cnt);
      fill += cnt, t0 += cnt;
      if (fill == g.TB) flush();
    }
  }
  if (fill > 0) flush();
}

// ---- Backward-data as the forward's adjoint with respect to x, for layers where grad_x is larger
// than grad_out (valid convolutions: the course CNN's conv2, 8x8 -> 12x12), where backward-data as
// the forward of grad_out (conv.cpp) pays 36 products per tile of the larger, mostly zero-padded,
// grad_x. Per tile the forward is y = A^T [U .* (B^T d B)] A, so the tile's 6x6 patch of (padded)
// grad_x gets B [sum_k Ut[.][k][c] .* (A dy_k A^T)] B^T: grad_out's tiles transformed as in
// backward-weight (transform_grad), the per-position products with the filters transposed (Ut),
// and each patch added into an HWC buffer where it overlaps its neighbours'.

// d = B v over one dimension: the adjoint of input_tf (B^T's columns).
template <class S, int A>
inline void input_tf_adjoint(const typename S::V v[A], typename S::V d[A]) {
  if constexpr (A == 6) {
    const auto four = S::set1(4.0f), five = S::set1(5.0f), two = S::set1(2.0f);
    const auto a = S::sub(v[2], v[1]), b = S::sub(v[4], v[3]);  // v2 - v1, v4 - v3
    const auto p = S::add(v[1], v[2]), q = S::add(v[3], v[4]);
    d[0] = S::mul(four, v[0]);
    d[1] = S::fmadd(four, S::add(a, v[5]), S::mul(two, b));
    d[2] = S::fnmadd(five, v[0], S::fnmadd(four, p, S::sub(S::zero(), q)));
    d[3] = S::fnmadd(five, v[5], S::fnmadd(two, b, S::sub(S::zero(), a)));
    d[4] = S::add(v[0], S::add(p, q));
    d[5] = v[5];
  } else {
    static_assert(A == 8);
    const auto c525 = S::set1(5.25f), c425 = S::set1(4.25f), c125 = S::set1(1.25f);
    const auto half = S::set1(0.5f), quarter = S::set1(0.25f), two = S::set1(2.0f), four = S::set1(4.0f),
               five = S::set1(5.0f);
    const auto p1 = S::add(v[1], v[2]), q1 = S::sub(v[1], v[2]), p2 = S::add(v[3], v[4]), q2 = S::sub(v[3], v[4]);
    const auto p3 = S::add(v[5], v[6]), q3 = S::sub(v[5], v[6]);
    d[0] = v[0];
    d[1] = S::sub(S::fmadd(half, q2, S::fmadd(two, q3, q1)), v[7]);
    d[2] = S::fnmadd(c525, v[0], S::fmadd(quarter, p2, S::fmadd(four, p3, p1)));
    d[3] = S::fmadd(c525, v[7], S::fnmadd(c425, q1, S::mul(S::set1(-2.5f), S::add(q2, q3))));
    d[4] = S::fmadd(c525, v[0], S::fnmadd(c425, p1, S::sub(S::zero(), S::fmadd(c125, p2, S::mul(five, p3)))));
    d[5] = S::fnmadd(c525, v[7], S::fmadd(two, q2, S::fmadd(half, q3, q1)));
    d[6] = S::sub(S::add(p1, S::add(p2, p3)), v[0]);
    d[7] = v[7];
  }
}

// dxin's patches of tiles [t0, t0 + n) += B Mv[.][j][c] B^T (Mv: the products, rows of C floats).
template <class S, int A>
void transform_input_adjoint(const Conv2dShape& s, const WinoC16Geom& g, const float* Mv, float* dxin, index_t t0,
                             index_t n) {
  using Vec = typename S::V;
  const index_t C = s.C, Wp = g.Wp, vs = g.v_stride;  // vs: between consecutive xi
  for (index_t j = 0; j < n; ++j) {
    const index_t th = (t0 + j) / g.tiles_w, tw = (t0 + j) % g.tiles_w;
    float* base = dxin + (th * g.m * Wp + tw * g.m) * C;
    for (index_t c0 = 0; c0 < C; c0 += S::L) {
      const float* in = Mv + j * C + c0;
      Vec t[A][A];  // t[a][b] = (B m)[a][b], by column
      for (int b = 0; b < A; ++b) {
        Vec m[A], d[A];
        for (int a = 0; a < A; ++a) m[a] = S::load(in + (a * A + b) * vs);
        input_tf_adjoint<S, A>(m, d);
        for (int a = 0; a < A; ++a) t[a][b] = d[a];
      }
      for (int a = 0; a < A; ++a) {
        Vec d[A];
        input_tf_adjoint<S, A>(t[a], d);
        for (int b = 0; b < A; ++b) {
          float* p = base + (a * Wp + b) * C + c0;
          S::store(p, S::add(S::load(p), d[b]));
        }
      }
    }
  }
}

// grad_x (C, H, W) of one image from its grad_out (K, P, Q) (both finite: conv.cpp checks), one
// thread; ws: the thread's slice of winograd_c16_geom(s) (dxin in xin's room, grad_out's HWC copy
// in yout's, the products in V's, the transformed grad_out in M's).
template <class S, int A, int MT>
void backward_data_image(const Conv2dShape& s, const WinoC16Geom& g, const float* go, const float* Ut, float* gx,
                         float* ws) {
  float* dxin = ws + g.xin_off;
  float* gin = ws + g.yout_off;
  float* Mv = ws + g.v_off;
  float* D = ws + g.m_off;
  const index_t C = s.C, K = s.K;
  std::fill(dxin, dxin + g.Hp * g.Wp * C, 0.0f);
  transpose_grad_in<S>(s, g, go, gin, 0, g.Pp);
  for (index_t t0 = 0; t0 < g.tiles; t0 += g.TB) {
    const index_t n = std::min(g.TB, g.tiles - t0);
    transform_grad<S, A, MT>(s, g, gin, D, t0, n);
    for (int xi = 0; xi < A * A; ++xi) products_all<S>(Ut + xi * K * C, C, D + xi * g.m_stride, K, Mv + xi * g.v_stride, n);
    transform_input_adjoint<S, A>(s, g, Mv, dxin, t0, n);
  }
  // grad_x[c][h][w] = dxin[h + pad_h][w + pad_w][c]: transpose_out on the image's window of dxin.
  Conv2dShape so = s;
  so.K = C, so.P = s.H, so.Q = s.W;
  WinoC16Geom go_ = g;
  go_.Qp = g.Wp;
  transpose_out<S>(so, go_, dxin + (s.pad_h * g.Wp + s.pad_w) * C, nullptr, false, gx, 0, s.H);
}

// grad_w[k][c] = G^T (dL/dU)[.][k][c] G for output channels [k0, k1), L input channels a vector
// (Mw: dL/dU[a*A + b][k][c]). Vectorised over c in float: as one scalar double loop per (k, c) it
// was a fixed 0.7 ms of the CNN's conv2 backward-weight (F(4x4, 5x5), 1 thread), whatever the batch.
template <class S, int A, int RR>
void weight_grad_transform(const Conv2dShape& s, const double (&Gd)[A][RR], const float* Mw, float* grad_w, index_t k0,
                           index_t k1) {
  using Vec = typename S::V;
  constexpr int L = S::L;
  float G[A][RR];
  for (int a = 0; a < A; ++a)
    for (int i = 0; i < RR; ++i) G[a][i] = static_cast<float>(Gd[a][i]);
  const index_t C = s.C, K = s.K;
  alignas(64) float out[RR * RR][L];
  for (index_t k = k0; k < k1; ++k)
    for (index_t c0 = 0; c0 < C; c0 += L) {
      Vec t[RR][A];  // t[i][b] = (G^T m)[i][b]
      for (int b = 0; b < A; ++b) {
        Vec m[A];
        for (int a = 0; a < A; ++a) m[a] = S::load(Mw + ((a * A + b) * K + k) * C + c0);
        for (int i = 0; i < RR; ++i) {
          Vec v = S::mul(S::set1(G[0][i]), m[0]);
          for (int a = 1; a < A; ++a) v = S::fmadd(S::set1(G[a][i]), m[a], v);
          t[i][b] = v;
        }
      }
      for (int i = 0; i < RR; ++i)
        for (int j = 0; j < RR; ++j) {
          Vec v = S::mul(t[i][0], S::set1(G[0][j]));
          for (int b = 1; b < A; ++b) v = S::fmadd(t[i][b], S::set1(G[b][j]), v);
          S::store(out[i * RR + j], v);
        }
      for (int l = 0; l < L; ++l)
        for (int ij = 0; ij < RR * RR; ++ij) grad_w[(k * C + c0 + l) * RR * RR + ij] = out[ij][l];
    }
}

// U[a*6 + b][c][k] = (G w[k][c] G^T)[a][b], L output channels per vector; or (Transposed, for
// backward-data's adjoint) U[a*6 + b][k][c], L input channels per vector.
template <class S, int A, int RR, bool Transposed = false>
void prepare(const Conv2dShape& s, const double (&Gd)[A][RR], const float* w, float* U) {
  using Vec = typename S::V;
  float G[A][RR];
  for (int a = 0; a < A; ++a)
    for (int i = 0; i < RR; ++i) G[a][i] = static_cast<float>(Gd[a][i]);
  constexpr int taps = RR * RR;
  const index_t C = s.C, K = s.K;
  // The vectorised index (k, or c when Transposed) and the scalar one, and their strides in w.
  const index_t nv = Transposed ? C : K, ns = Transposed ? K : C;
  const index_t v_step = Transposed ? taps : C * taps, s_step = Transposed ? C * taps : taps;
  const int stride = static_cast<int>(v_step);  // between consecutive lanes' filters
  for (index_t k0 = 0; k0 < nv; k0 += S::L)
    for (index_t c = 0; c < ns; ++c) {
      Vec g[taps], tmp[A][RR];  // g: the L channels' taps; tmp = G g
      const float* src = w + k0 * v_step + c * s_step;
      for (int t = 0; t < taps; ++t) g[t] = S::gather(src + t, stride);
      for (int a = 0; a < A; ++a)
        for (int j = 0; j < RR; ++j) {
          Vec acc = S::zero();
          for (int i = 0; i < RR; ++i) acc = S::fmadd(S::set1(G[a][i]), g[i * RR + j], acc);
          tmp[a][j] = acc;
        }
      for (int a = 0; a < A; ++a)
        for (int b = 0; b < A; ++b) {
          Vec acc = S::zero();
          for (int j = 0; j < RR; ++j) acc = S::fmadd(tmp[a][j], S::set1(G[b][j]), acc);
          S::store(U + ((a * A + b) * ns + c) * nv + k0, acc);
        }
    }
}

// ---- The entry points conv_winograd_c16.cpp calls, for one ISA: the filter transform and each
// kernel for the geometry's alpha (F(4x4, 3x3) or F(4x4, 5x5)).
template <class S, bool Transposed>
void prepare_for(const Conv2dShape& s, int alpha, const float* w, float* U) {
  if (alpha == 8)
    prepare<S, 8, 5, Transposed>(s, kWinoC16G5x8, w, U);
  else
    prepare<S, 6, 3, Transposed>(s, kWinoC16G3, w, U);
}

template <class S>
void prepare_any(const Conv2dShape& s, int alpha, const float* w, float* U) {
  prepare_for<S, false>(s, alpha, w, U);
}

template <class S>
void prepare_transposed_any(const Conv2dShape& s, int alpha, const float* w, float* Ut) {
  prepare_for<S, true>(s, alpha, w, Ut);
}

template <class S>
void backward_data_any(const Conv2dShape& s, const WinoC16Geom& g, const float* grad_out, const float* Ut,
                       float* grad_x, float* ws) {
  if (g.alpha == 8)
    backward_data_image<S, 8, 4>(s, g, grad_out, Ut, grad_x, ws);
  else
    backward_data_image<S, 6, 4>(s, g, grad_out, Ut, grad_x, ws);
}

template <class S>
void weight_grad_transform_any(const Conv2dShape& s, int alpha, const float* Mw, float* grad_w, index_t k0,
                               index_t k1) {
  if (alpha == 8)
    weight_grad_transform<S, 8, 5>(s, kWinoC16G5x8, Mw, grad_w, k0, k1);
  else
    weight_grad_transform<S, 6, 3>(s, kWinoC16G3, Mw, grad_w, k0, k1);
}

template <class S>
void backward_weight_any(const Conv2dShape& s, const WinoC16Geom& g, const float* x, const float* grad_out,
                         index_t n0, index_t n1, float* Mw, float* ws) {
  if (g.alpha == 8)
    backward_weight_images<S, 8, 4>(s, g, x, grad_out, n0, n1, Mw, ws);
  else
    backward_weight_images<S, 6, 4>(s, g, x, grad_out, n0, n1, Mw, ws);
}

template <class S>
void forward_image_any(const Conv2dShape& s, const WinoC16Geom& g, const float* x, const float* U, const float* w,
                       const float* bias, const float* res, bool relu, float* y, float* ws, int t, int team,
                       ImageIo io) {
  if (g.alpha == 8)
    forward_image<S, 8, 4>(s, g, x, U, w, bias, res, relu, y, ws, t, team, io);
  else
    forward_image<S, 6, 4>(s, g, x, U, w, bias, res, relu, y, ws, t, team, io);
}

}  // namespace
}  // namespace fastlayers::cpu::wino16
