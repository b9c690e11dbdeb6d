// AVX-512 kernels of the channels-in-lanes Winograd convolution (layout and reasoning:
// conv_winograd_c16.h). Compiled with -mavx512f ...; conv_winograd_c16.cpp calls them only when
// active_isa() says avx512.
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <utility>

#include "cpu/avx512_util.h"
#include "cpu/conv_winograd_c16.h"

namespace fastlayers::cpu {

namespace {

constexpr int kA = 6;  // alpha: patch side of both F(4x4, 3x3) and F(2x2, 5x5)
constexpr int kAA = kA * kA;

// v = B^T d over one dimension (6 values, 16 lanes each): the shared input transform.
inline void input_tf(const __m512 d[kA], __m512 v[kA]) {
  const __m512 four = _mm512_set1_ps(4.0f), five = _mm512_set1_ps(5.0f), two = _mm512_set1_ps(2.0f);
  v[0] = _mm512_fmadd_ps(four, d[0], _mm512_fnmadd_ps(five, d[2], d[4]));
  v[1] = _mm512_fnmadd_ps(four, _mm512_add_ps(d[1], d[2]), _mm512_add_ps(d[3], d[4]));
  v[2] = _mm512_fmadd_ps(four, _mm512_sub_ps(d[1], d[2]), _mm512_sub_ps(d[4], d[3]));
  v[3] = _mm512_fmadd_ps(two, _mm512_sub_ps(d[3], d[1]), _mm512_sub_ps(d[4], d[2]));
  v[4] = _mm512_fmadd_ps(two, _mm512_sub_ps(d[1], d[3]), _mm512_sub_ps(d[4], d[2]));
  v[5] = _mm512_fmadd_ps(four, d[1], _mm512_fnmadd_ps(five, d[3], d[5]));
}

// o = A^T m over one dimension: M outputs from 6 values.
template <int M>
inline void output_tf(const __m512 m[kA], __m512 o[M]);

template <>
inline void output_tf<4>(const __m512 m[kA], __m512 o[4]) {
  const __m512 a = _mm512_add_ps(m[1], m[2]), b = _mm512_sub_ps(m[1], m[2]);
  const __m512 c = _mm512_add_ps(m[3], m[4]), d = _mm512_sub_ps(m[3], m[4]);
  o[0] = _mm512_add_ps(_mm512_add_ps(m[0], a), c);
  o[1] = _mm512_fmadd_ps(_mm512_set1_ps(2.0f), d, b);
  o[2] = _mm512_fmadd_ps(_mm512_set1_ps(4.0f), c, a);
  o[3] = _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(8.0f), d, b), m[5]);
}

template <>
inline void output_tf<2>(const __m512 m[kA], __m512 o[2]) {
  o[0] = _mm512_add_ps(_mm512_add_ps(m[0], _mm512_add_ps(m[1], m[2])), _mm512_add_ps(m[3], m[4]));
  o[1] = _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(2.0f), _mm512_sub_ps(m[3], m[4]), _mm512_sub_ps(m[1], m[2])),
                       m[5]);
}

// ---- the per-position products: M[xi][j][k] = sum_c V[xi][j][c] U[xi][c][k], R tiles x KV vectors
// of 16 output channels in registers, one broadcast of V per KV FMAs. CC: the input channels when
// known at compile time (16, 32, 64: then every broadcast is one base register plus a constant;
// with C at run time the R row addresses did not fit in the registers and the kernel ran at half
// speed), or 0.
template <int KV, int R, int CC>
void product_tile(const float* __restrict U, index_t K, const float* __restrict V, index_t Crt, float* __restrict M) {
  const index_t C = CC > 0 ? CC : Crt;
  __m512 acc[R][KV];
  #pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
    #pragma GCC unroll 16
    for (int v = 0; v < KV; ++v) acc[r][v] = _mm512_setzero_ps();
  for (index_t c = 0; c < C; ++c) {
    __m512 u[KV];
    #pragma GCC unroll 16
    for (int v = 0; v < KV; ++v) u[v] = _mm512_loadu_ps(U + c * K + 16 * v);
    #pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m512 b = _mm512_set1_ps(V[r * C + c]);
      #pragma GCC unroll 16
      for (int v = 0; v < KV; ++v) acc[r][v] = _mm512_fmadd_ps(b, u[v], acc[r][v]);
    }
  }
  #pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
    #pragma GCC unroll 16
    for (int v = 0; v < KV; ++v) _mm512_storeu_ps(M + r * K + 16 * v, acc[r][v]);
}

using ProductFn = void (*)(const float*, index_t, const float*, index_t, float*);

// Tiles per register block for KV vectors of output channels (24-26 accumulators).
constexpr int max_rows(int KV) { return KV == 1 ? 16 : KV == 2 ? 12 : 6; }

template <int KV, int CC, std::size_t... I>
constexpr std::array<ProductFn, sizeof...(I)> product_table(std::index_sequence<I...>) {
  return {&product_tile<KV, static_cast<int>(I) + 1, CC>...};
}

// The image's n tiles in register blocks of at most max_rows(KV), as even as possible (49 tiles
// in 16-tile blocks would leave one tile alone, a latency-bound chain of FMAs).
template <int KV, int CC>
void products(const float* U, index_t K, const float* V, index_t C, float* M, index_t tiles) {
  constexpr int RM = max_rows(KV);
  static constexpr auto table = product_table<KV, CC>(std::make_index_sequence<RM>{});
  const index_t groups = (tiles + RM - 1) / RM;
  for (index_t k0 = 0; k0 < K; k0 += 16 * KV)
    for (index_t gi = 0; gi < groups; ++gi) {
      const index_t j0 = tiles * gi / groups, j1 = tiles * (gi + 1) / groups;
      table[j1 - j0 - 1](U + k0, K, V + j0 * C, C, M + j0 * K + k0);
    }
}

template <int KV>
void products_by_c(const float* U, index_t K, const float* V, index_t C, float* M, index_t tiles) {
  switch (C) {
    case 16: return products<KV, 16>(U, K, V, C, M, tiles);
    case 32: return products<KV, 32>(U, K, V, C, M, tiles);
    case 64: return products<KV, 64>(U, K, V, C, M, tiles);
    default: return products<KV, 0>(U, K, V, C, M, tiles);
  }
}

// ---- the image in HWC: xin[i][j][c] = x[c][i - ph][j - pw] (0 outside), rows [i0, i1). Returns
// false if any value read is a NaN or inf.
bool transpose_in(const Conv2dShape& s, const WinoC16Geom& g, const float* x, float* xin, index_t i0, index_t i1) {
  const index_t C = s.C, H = s.H, W = s.W, HW = H * W, Wp = g.Wp, pw = s.pad_w;
  __mmask16 bad = 0;
  for (index_t i = i0; i < i1; ++i) {
    float* row = xin + i * Wp * C;
    const index_t ih = i - s.pad_h;
    if (ih < 0 || ih >= H) {
      std::fill(row, row + Wp * C, 0.0f);
      continue;
    }
    std::fill(row, row + pw * C, 0.0f);
    if (pw + W < Wp) std::fill(row + (pw + W) * C, row + Wp * C, 0.0f);
    for (index_t c0 = 0; c0 < C; c0 += 16) {
      for (index_t w0 = 0; w0 < W; w0 += 16) {
        const int nw = static_cast<int>(std::min<index_t>(16, W - w0));
        const __mmask16 mask = static_cast<__mmask16>((1u << nw) - 1);
        __m512 r[16];
        for (int c = 0; c < 16; ++c) {
          r[c] = _mm512_maskz_loadu_ps(mask, x + (c0 + c) * HW + ih * W + w0);
          const __m512 z = _mm512_sub_ps(r[c], r[c]);  // 0, or NaN for a NaN or inf
          bad |= _mm512_cmp_ps_mask(z, z, _CMP_UNORD_Q);
        }
        avx512::transpose16(r);
        float* dst = row + (pw + w0) * C + c0;
        for (int j = 0; j < nw; ++j) _mm512_storeu_ps(dst + j * C, r[j]);
      }
    }
  }
  return bad == 0;
}

// ---- y[k][p][q] = yout[p][q][k] (+ res[k][p][q], then ReLU if asked) for rows [p0, p1).
void transpose_out(const Conv2dShape& s, const WinoC16Geom& g, const float* yout, const float* res, bool relu,
                   float* y, index_t p0, index_t p1) {
  const index_t K = s.K, P = s.P, Q = s.Q, Qp = g.Qp;
  const __m512 zero = _mm512_setzero_ps();
  for (index_t p = p0; p < p1; ++p)
    for (index_t k0 = 0; k0 < K; k0 += 16)
      for (index_t q0 = 0; q0 < Q; q0 += 16) {
        const int nq = static_cast<int>(std::min<index_t>(16, Q - q0));
        __m512 r[16];
        const float* src = yout + (p * Qp + q0) * K + k0;
        for (int j = 0; j < 16; ++j) r[j] = j < nq ? _mm512_loadu_ps(src + j * K) : zero;
        avx512::transpose16(r);
        const __mmask16 mask = static_cast<__mmask16>((1u << nq) - 1);
        for (int k = 0; k < 16; ++k) {
          const index_t at = ((k0 + k) * P + p) * Q + q0;
          __m512 v = r[k];
          if (res != nullptr) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, res + at));
          if (relu) v = _mm512_max_ps(zero, v);  // the second operand when NaN: NaN stays NaN, as the op
          _mm512_mask_storeu_ps(y + at, mask, v);
        }
      }
}

// ---- V[xi][j][c] for tiles [t0, t0 + n) of the image (j = tile - t0).
void transform_input(const Conv2dShape& s, const WinoC16Geom& g, const float* xin, float* V, index_t t0, index_t n) {
  const index_t C = s.C, Wp = g.Wp, vs = g.TB * C;  // vs: between consecutive xi
  for (index_t j = 0; j < n; ++j) {
    const index_t th = (t0 + j) / g.tiles_w, tw = (t0 + j) % g.tiles_w;
    const float* base = xin + (th * g.m * Wp + tw * g.m) * C;
    for (index_t c0 = 0; c0 < C; c0 += 16) {
      __m512 t[kA][kA];  // t[a][b] = (B^T d)[a][b], by column
      for (int b = 0; b < kA; ++b) {
        __m512 d[kA], v[kA];
        for (int a = 0; a < kA; ++a) d[a] = _mm512_loadu_ps(base + (a * Wp + b) * C + c0);
        input_tf(d, v);
        for (int a = 0; a < kA; ++a) t[a][b] = v[a];
      }
      float* out = V + j * C + c0;
      for (int a = 0; a < kA; ++a) {
        __m512 v[kA];
        input_tf(t[a], v);
        for (int b = 0; b < kA; ++b) _mm512_storeu_ps(out + (a * kA + b) * vs, v[b]);
      }
    }
  }
}

// ---- yout tiles from M[xi][j][k] (+ bias).
template <int MT>
void transform_output(const Conv2dShape& s, const WinoC16Geom& g, const float* M, const float* bias, float* yout,
                      index_t t0, index_t n) {
  const index_t K = s.K, Qp = g.Qp, ms = g.TB * K;  // ms: between consecutive xi
  for (index_t j = 0; j < n; ++j) {
    const index_t th = (t0 + j) / g.tiles_w, tw = (t0 + j) % g.tiles_w;
    float* base = yout + (th * MT * Qp + tw * MT) * K;
    for (index_t k0 = 0; k0 < K; k0 += 16) {
      const float* in = M + j * K + k0;
      __m512 t[MT][kA];  // (A^T m) by column
      for (int b = 0; b < kA; ++b) {
        __m512 m[kA], o[MT];
        for (int a = 0; a < kA; ++a) m[a] = _mm512_loadu_ps(in + (a * kA + b) * ms);
        output_tf<MT>(m, o);
        for (int a = 0; a < MT; ++a) t[a][b] = o[a];
      }
      const __m512 bv = bias != nullptr ? _mm512_loadu_ps(bias + k0) : _mm512_setzero_ps();
      for (int a = 0; a < MT; ++a) {
        __m512 o[MT];
        output_tf<MT>(t[a], o);
        for (int b = 0; b < MT; ++b) _mm512_storeu_ps(base + (a * Qp + b) * K + k0, _mm512_add_ps(o[b], bv));
      }
    }
  }
}

// ---- An image holding a NaN or inf: the direct sum from xin, output channels [k0, k1), so that
// the non-finite values reach exactly the outputs that read them.
void direct_fallback(const Conv2dShape& s, const WinoC16Geom& g, const float* xin, const float* w, const float* bias,
                     float* y, index_t k0, index_t k1) {
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

template <int MT>
void forward_image(const Conv2dShape& s, const WinoC16Geom& g, const float* x, const float* U, const float* w,
                   const float* bias, const float* res, bool relu, float* y, float* ws, int t, int team) {
  float* xin = ws + g.xin_off;  // shared by the team: the first thread's slice
  float* yout = ws + g.yout_off;
  float* own = ws + static_cast<index_t>(t) * g.slice;
  float* V = own + g.v_off;
  float* M = own + g.m_off;
  float* flag = own + g.flag_off;
  const bool finite = transpose_in(s, g, x, xin, g.Hp * t / team, g.Hp * (t + 1) / team);
  flag[0] = finite ? 0.0f : 1.0f;
  bool all_finite = finite;
  if (team > 1) {
#pragma omp barrier
    for (int u = 0; u < team; ++u) all_finite = all_finite && ws[u * g.slice + g.flag_off] == 0.0f;
  }
  if (!all_finite) {
    const index_t k0 = s.K * t / team, k1 = s.K * (t + 1) / team, PQ = s.P * s.Q;
    direct_fallback(s, g, xin, w, bias, y, k0, k1);
    for (index_t i = k0 * PQ; i < k1 * PQ; ++i) {
      const float v = res != nullptr ? y[i] + res[i] : y[i];
      y[i] = relu && !(v > 0.0f) && v == v ? 0.0f : v;
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
    transform_input(s, g, xin, V, t0, n);
    for (int xi = 0; xi < kAA; ++xi) {
      const float* Ux = U + xi * C * K;
      const float* Vx = V + xi * g.TB * C;
      float* Mx = M + xi * g.TB * K;
      if (K % 64 == 0)
        products_by_c<4>(Ux, K, Vx, C, Mx, n);
      else if (K % 32 == 0)
        products_by_c<2>(Ux, K, Vx, C, Mx, n);
      else
        products_by_c<1>(Ux, K, Vx, C, Mx, n);
    }
    transform_output<MT>(s, g, M, bias, yout, t0, n);
  }
  if (team > 1) {
#pragma omp barrier
  }
  transpose_out(s, g, yout, res, relu, y, s.P * t / team, s.P * (t + 1) / team);
  if (team > 1) {
#pragma omp barrier
  }
}

// ---- Backward-weight: the adjoint of the forward with respect to U. Per tile the forward is
// y = A^T [U .* (B^T d B)] A, so dL/dU[xi][k][c] = sum over tiles D[xi][k] V[xi][c] with
// D = A dy A^T (dy: grad_out's m x m tile, 0 past the edge) and V the forward's input transform;
// grad_w = G^T (dL/dU) G (winograd_c16_backward_weight_call).

// u = A o: the m values of one grad_out row or column -> 6 (the adjoint of output_tf).
template <int M>
inline void grad_tf(const __m512 o[M], __m512 u[kA]);

template <>
inline void grad_tf<4>(const __m512 o[4], __m512 u[kA]) {
  const __m512 e = _mm512_add_ps(o[0], o[2]), f = _mm512_add_ps(o[1], o[3]);
  const __m512 g = _mm512_fmadd_ps(_mm512_set1_ps(4.0f), o[2], o[0]);
  const __m512 h = _mm512_fmadd_ps(_mm512_set1_ps(8.0f), o[3], _mm512_add_ps(o[1], o[1]));
  u[0] = o[0];
  u[1] = _mm512_add_ps(e, f);
  u[2] = _mm512_sub_ps(e, f);
  u[3] = _mm512_add_ps(g, h);
  u[4] = _mm512_sub_ps(g, h);
  u[5] = o[3];
}

template <>
inline void grad_tf<2>(const __m512 o[2], __m512 u[kA]) {
  const __m512 two = _mm512_add_ps(o[1], o[1]);
  u[0] = o[0];
  u[1] = _mm512_add_ps(o[0], o[1]);
  u[2] = _mm512_sub_ps(o[0], o[1]);
  u[3] = _mm512_add_ps(o[0], two);
  u[4] = _mm512_sub_ps(o[0], two);
  u[5] = o[1];
}

// gin[p][q][k] = grad_out[k][p][q], 0 for p >= P or q >= Q (whole tiles: Pp x Qp), rows [p0, p1).
void transpose_grad_in(const Conv2dShape& s, const WinoC16Geom& g, const float* go, float* gin, index_t p0,
                       index_t p1) {
  const index_t K = s.K, P = s.P, Q = s.Q, PQ = P * Q, Qp = g.Qp;
  for (index_t p = p0; p < p1; ++p) {
    float* row = gin + p * Qp * K;
    if (p >= P) {
      std::fill(row, row + Qp * K, 0.0f);
      continue;
    }
    if (Q < Qp) std::fill(row + Q * K, row + Qp * K, 0.0f);
    for (index_t k0 = 0; k0 < K; k0 += 16)
      for (index_t q0 = 0; q0 < Q; q0 += 16) {
        const int nq = static_cast<int>(std::min<index_t>(16, Q - q0));
        const __mmask16 mask = static_cast<__mmask16>((1u << nq) - 1);
        __m512 r[16];
        for (int k = 0; k < 16; ++k) r[k] = _mm512_maskz_loadu_ps(mask, go + (k0 + k) * PQ + p * Q + q0);
        avx512::transpose16(r);
        for (int j = 0; j < nq; ++j) _mm512_storeu_ps(row + (q0 + j) * K + k0, r[j]);
      }
  }
}

// D[xi][j][k] for tiles [t0, t0 + n) of the image.
template <int MT>
void transform_grad(const Conv2dShape& s, const WinoC16Geom& g, const float* gin, float* D, index_t t0, index_t n) {
  const index_t K = s.K, Qp = g.Qp, ds = g.TB * K;  // ds: between consecutive xi
  for (index_t j = 0; j < n; ++j) {
    const index_t th = (t0 + j) / g.tiles_w, tw = (t0 + j) % g.tiles_w;
    const float* base = gin + (th * MT * Qp + tw * MT) * K;
    for (index_t k0 = 0; k0 < K; k0 += 16) {
      __m512 t[kA][MT];  // (A dy) by column
      for (int b = 0; b < MT; ++b) {
        __m512 o[MT], u[kA];
        for (int a = 0; a < MT; ++a) o[a] = _mm512_loadu_ps(base + (a * Qp + b) * K + k0);
        grad_tf<MT>(o, u);
        for (int a = 0; a < kA; ++a) t[a][b] = u[a];
      }
      float* out = D + j * K + k0;
      for (int a = 0; a < kA; ++a) {
        __m512 u[kA];
        grad_tf<MT>(t[a], u);
        for (int b = 0; b < kA; ++b) _mm512_storeu_ps(out + (a * kA + b) * ds, u[b]);
      }
    }
  }
}

// Mw[k][c] (rows of C floats) += sum over n tiles of D[j][k] V[j][c], for KR rows k and CV vectors
// of c in registers. (The unroll pragmas keep GCC from storing every accumulator to a stack copy
// on each tile, as it did without them.)
template <int CV, int KR>
void wgrad_tile(const float* __restrict D, index_t K, const float* __restrict V, index_t C, index_t n,
                float* __restrict Mw) {
  __m512 acc[KR][CV];
  #pragma GCC unroll 16
  for (int r = 0; r < KR; ++r)
    #pragma GCC unroll 16
    for (int v = 0; v < CV; ++v) acc[r][v] = _mm512_loadu_ps(Mw + r * C + 16 * v);
  for (index_t j = 0; j < n; ++j) {
    __m512 x[CV];
    #pragma GCC unroll 16
    for (int v = 0; v < CV; ++v) x[v] = _mm512_loadu_ps(V + j * C + 16 * v);
    #pragma GCC unroll 16
    for (int r = 0; r < KR; ++r) {
      const __m512 d = _mm512_set1_ps(D[j * K + r]);
      #pragma GCC unroll 16
      for (int v = 0; v < CV; ++v) acc[r][v] = _mm512_fmadd_ps(d, x[v], acc[r][v]);
    }
  }
  #pragma GCC unroll 16
  for (int r = 0; r < KR; ++r)
    #pragma GCC unroll 16
    for (int v = 0; v < CV; ++v) _mm512_storeu_ps(Mw + r * C + 16 * v, acc[r][v]);
}

using WgradFn = void (*)(const float*, index_t, const float*, index_t, index_t, float*);

constexpr int wgrad_rows(int CV) { return CV == 1 ? 16 : CV == 2 ? 12 : CV == 3 ? 8 : 6; }

template <int CV, std::size_t... I>
constexpr std::array<WgradFn, sizeof...(I)> wgrad_table(std::index_sequence<I...>) {
  return {&wgrad_tile<CV, static_cast<int>(I) + 1>...};
}

template <int CV>
void wgrad_rows_of(const float* D, index_t K, const float* V, index_t C, index_t n, float* Mw) {
  constexpr int KR = wgrad_rows(CV);
  static constexpr auto table = wgrad_table<CV>(std::make_index_sequence<KR>{});
  for (index_t k0 = 0; k0 < K; k0 += KR) {
    const index_t kr = std::min<index_t>(KR, K - k0);
    table[kr - 1](D + k0, K, V, C, n, Mw + k0 * C);
  }
}

// Mw[k][c] += D^T V over n tiles, c in chunks of up to 4 vectors.
void wgrad(const float* D, index_t K, const float* V, index_t C, index_t n, float* Mw) {
  for (index_t c0 = 0; c0 < C; c0 += 64) {
    const index_t cv = std::min<index_t>(4, (C - c0) / 16);
    const float* Vc = V + c0;
    float* Mc = Mw + c0;
    switch (cv) {
      case 1: wgrad_rows_of<1>(D, K, Vc, C, n, Mc); break;
      case 2: wgrad_rows_of<2>(D, K, Vc, C, n, Mc); break;
      case 3: wgrad_rows_of<3>(D, K, Vc, C, n, Mc); break;
      default: wgrad_rows_of<4>(D, K, Vc, C, n, Mc); break;
    }
  }
}

// Images [n0, n1): their tiles in blocks of TB that run across images (a 7x7 map has 4 tiles: per
// image, the dL/dU accumulators would be loaded and stored for every 4 tiles).
template <int MT>
void backward_weight_images(const Conv2dShape& s, const WinoC16Geom& g, const float* x, const float* go, index_t n0,
                            index_t n1, float* Mw, float* ws) {
  float* xin = ws + g.xin_off;
  float* gin = ws + g.yout_off;
  float* V = ws + g.v_off;
  float* D = ws + g.m_off;
  const index_t C = s.C, K = s.K, in_img = C * s.H * s.W, out_img = K * s.P * s.Q;
  index_t fill = 0;  // tiles in the block so far
  auto flush = [&] {
    for (int xi = 0; xi < kAA; ++xi) wgrad(D + xi * g.TB * K, K, V + xi * g.TB * C, C, fill, Mw + xi * K * C);
    fill = 0;
  };
  for (index_t n = n0; n < n1; ++n) {
    transpose_in(s, g, x + n * in_img, xin, 0, g.Hp);  // the caller checked x and grad_out for NaN and inf
    transpose_grad_in(s, g, go + n * out_img, gin, 0, g.Pp);
    for (index_t t0 = 0; t0 < g.tiles;) {
      const index_t cnt = std::min(g.TB - fill, g.tiles - t0);
      transform_input(s, g, xin, V + fill * C, t0, cnt);
      transform_grad<MT>(s, g, gin, D + fill * K, t0, cnt);
      fill += cnt, t0 += cnt;
      if (fill == g.TB) flush();
    }
  }
  if (fill > 0) flush();
}

template <int RR>
void prepare(const Conv2dShape& s, const double (&Gd)[kA][RR], const float* w, float* U) {
  float G[kA][RR];
  for (int a = 0; a < kA; ++a)
    for (int i = 0; i < RR; ++i) G[a][i] = static_cast<float>(Gd[a][i]);
  constexpr int taps = RR * RR;
  const index_t C = s.C, K = s.K;
  const __m512i lane = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                          _mm512_set1_epi32(static_cast<int>(C * taps)));
  for (index_t k0 = 0; k0 < K; k0 += 16)
    for (index_t c = 0; c < C; ++c) {
      __m512 g[taps], tmp[kA][RR];  // g: the 16 channels' taps; tmp = G g
      const float* src = w + (k0 * C + c) * taps;
      for (int t = 0; t < taps; ++t) g[t] = _mm512_i32gather_ps(lane, src + t, 4);
      for (int a = 0; a < kA; ++a)
        for (int j = 0; j < RR; ++j) {
          __m512 acc = _mm512_setzero_ps();
          for (int i = 0; i < RR; ++i) acc = _mm512_fmadd_ps(_mm512_set1_ps(G[a][i]), g[i * RR + j], acc);
          tmp[a][j] = acc;
        }
      for (int a = 0; a < kA; ++a)
        for (int b = 0; b < kA; ++b) {
          __m512 acc = _mm512_setzero_ps();
          for (int j = 0; j < RR; ++j) acc = _mm512_fmadd_ps(tmp[a][j], _mm512_set1_ps(G[b][j]), acc);
          _mm512_storeu_ps(U + ((a * kA + b) * C + c) * K + k0, acc);
        }
    }
}

}  // namespace

// U[a*6 + b][c][k] = (G w[k][c] G^T)[a][b], 16 output channels per vector.
void winograd_c16_prepare_avx512(const Conv2dShape& s, const float* w, float* U) {
  if (s.R == 3)
    prepare<3>(s, kWinoC16G3, w, U);
  else
    prepare<5>(s, kWinoC16G5, w, U);
}

void winograd_c16_backward_weight_images_avx512(const Conv2dShape& s, const WinoC16Geom& g, const float* x,
                                                const float* grad_out, index_t n0, index_t n1, float* Mw, float* ws) {
  if (g.m == 4)
    backward_weight_images<4>(s, g, x, grad_out, n0, n1, Mw, ws);
  else
    backward_weight_images<2>(s, g, x, grad_out, n0, n1, Mw, ws);
}

void winograd_c16_forward_image_avx512(const Conv2dShape& s, const WinoC16Geom& g, const float* x, const float* U,
                                       const float* w, const float* bias, const float* res, bool relu, float* y,
                                       float* ws, int t, int team) {
  if (g.m == 4)
    forward_image<4>(s, g, x, U, w, bias, res, relu, y, ws, t, team);
  else
    forward_image<2>(s, g, x, U, w, bias, res, relu, y, ws, t, team);
}

}  // namespace fastlayers::cpu
