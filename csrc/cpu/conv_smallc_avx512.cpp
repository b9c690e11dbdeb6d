// AVX-512 kernels of the direct small-channel convolution (layout and reasoning: conv_smallc.h).
// Compiled with -mavx512f ...; conv_smallc.cpp calls them only when active_isa() says avx512.
// Measured at one thread (peak ~117.7 GF/s): AlexNet conv1 (8x3x224x224, 64 11x11 stride 4)
// forward ~105 GF/s, backward-weight ~108 (66 / 63 for im2col + sgemm); LeNet conv2 (100x32x12x12,
// 64 5x5) forward ~113, backward-data ~111 (GEMM + col2im: ~95). The forward tile loop itself
// runs at ~98% of peak; the rest is the phase split (~4.6% of AlexNet conv1), the output stores
// (~2%) and the tiles' transposes (~2%).
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <utility>
#include <cstdint>
#include <cstring>

#include "cpu/align.h"
#include "cpu/avx512_util.h"
#include "cpu/conv_smallc.h"
#include "cpu/parallel.h"

namespace fastlayers::cpu {

namespace {

// dst[0, n) = src[0, m) then zeros (m <= n): masked vector moves, no library calls (these rows
// are tens of floats; memcpy/memset calls cost more than the copy).
inline void copy_pad(float* __restrict dst, const float* __restrict src, index_t m, index_t n) {
  for (index_t i = 0; i < n; i += 16) {
    const index_t w = n - i < 16 ? n - i : 16, r = m - i < 0 ? 0 : (m - i < 16 ? m - i : 16);
    const __mmask16 ld = static_cast<__mmask16>((1u << r) - 1u), st = static_cast<__mmask16>((1u << w) - 1u);
    _mm512_mask_storeu_ps(dst + i, st, _mm512_maskz_loadu_ps(ld, src + i));
  }
}

template <class F>
inline void maybe_parallel_for(bool parallel, index_t n, F body) {
  if (parallel) {
#pragma omp parallel for schedule(static) num_threads(max_threads())
    for (index_t i = 0; i < n; ++i) body(i);
  } else {
    for (index_t i = 0; i < n; ++i) body(i);
  }
}

// Deals one image row out to its sw phase planes: input column w goes to plane (w + pad_w) % sw,
// column (w + pad_w) / sw (row + pw*plane is that plane's row). SW = 2 or 4: 16*SW columns at a
// time by in-register permutes (4x faster than the scalar loop on AlexNet conv1); SW = 0: any
// stride `sw`, scalar.
template <int SW>
void deal_row(const float* src, index_t W, float* row, index_t plane, index_t pad_w, index_t Wq, index_t sw = SW) {
  index_t pw = pad_w % sw, wq = pad_w / sw, w = 0;
  auto scalar_until = [&](auto stop) {
    for (; w < W && wq < Wq && !stop(); ++w) {
      row[pw * plane + wq] = src[w];
      if (++pw == sw) pw = 0, ++wq;
    }
  };
  if constexpr (SW == 2 || SW == 4) {
    scalar_until([&] { return pw == 0; });  // up to the first column of plane 0
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (; w + 16 * SW <= W && wq + 16 <= Wq; w += 16 * SW, wq += 16) {
      if constexpr (SW == 2) {
        const __m512 a = _mm512_loadu_ps(src + w), b = _mm512_loadu_ps(src + w + 16);
        for (int k = 0; k < 2; ++k) {
          const __m512i idx = _mm512_add_epi32(_mm512_slli_epi32(lane, 1), _mm512_set1_epi32(k));
          _mm512_storeu_ps(row + k * plane + wq, _mm512_permutex2var_ps(a, idx, b));
        }
      } else {
        const __m512 a = _mm512_loadu_ps(src + w), b = _mm512_loadu_ps(src + w + 16);
        const __m512 c = _mm512_loadu_ps(src + w + 32), d = _mm512_loadu_ps(src + w + 48);
        for (int k = 0; k < 4; ++k) {
          // Lanes 0-7 of each: columns k, k+4, ..., k+28 of (a, b) and of (c, d).
          const __m512i idx = _mm512_add_epi32(_mm512_slli_epi32(lane, 2), _mm512_set1_epi32(k));
          const __m512 ab = _mm512_permutex2var_ps(a, idx, b), cd = _mm512_permutex2var_ps(c, idx, d);
          _mm512_storeu_ps(row + k * plane + wq, _mm512_shuffle_f32x4(ab, cd, 0x44));
        }
      }
    }
    if (w < W && wq < Wq) {
      // The rest of the row in one masked step (scalar, it was ~15% of the columns of AlexNet
      // conv1 and most of this function's time): columns past W load as 0, the right padding.
      auto load = [&](index_t i) {
        const index_t n = std::clamp<index_t>(W - w - 16 * i, 0, 16);
        return _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << n) - 1u), src + w + 16 * i);
      };
      const __mmask16 st = static_cast<__mmask16>((1u << std::min<index_t>(16, Wq - wq)) - 1u);
      if constexpr (SW == 2) {
        const __m512 a = load(0), b = load(1);
        for (int k = 0; k < 2; ++k) {
          const __m512i idx = _mm512_add_epi32(_mm512_slli_epi32(lane, 1), _mm512_set1_epi32(k));
          _mm512_mask_storeu_ps(row + k * plane + wq, st, _mm512_permutex2var_ps(a, idx, b));
        }
      } else {
        const __m512 a = load(0), b = load(1), c = load(2), d = load(3);
        for (int k = 0; k < 4; ++k) {
          const __m512i idx = _mm512_add_epi32(_mm512_slli_epi32(lane, 2), _mm512_set1_epi32(k));
          const __m512 ab = _mm512_permutex2var_ps(a, idx, b), cd = _mm512_permutex2var_ps(c, idx, d);
          _mm512_mask_storeu_ps(row + k * plane + wq, st, _mm512_shuffle_f32x4(ab, cd, 0x44));
        }
      }
      return;
    }
  }
  scalar_until([] { return false; });
}

// The phase planes of one (image, group): xs[((c*sh + ph)*sw + pw)*Hq*Wq + hq*Wq + wq], then a
// zeroed tail (pl.xs_floats in all). The padding is zero-filled plane row by plane row; the image
// is then read row by row, each row dealt out to its sw planes (reading the planes' strided
// columns directly, scalar or by gathers, was 12-15% of AlexNet conv1's forward).
// Whether some tap reads phase `ph` of a dimension with `taps` taps, dilation `dil`, stride `st`
// (a 1x1 stride-2 convolution reads one phase of four).
inline bool phase_read(index_t ph, index_t taps, index_t dil, index_t st) {
  for (index_t r = 0; r < taps; ++r)
    if (r * dil % st == ph) return true;
  return false;
}

// Channels [c0, c1) of it; the zeroed tail is written by whoever gets the last channel. Phases no
// tap reads are left unfilled but for their first 32 floats, zeroed: the last tile of the plane
// before reads up to TP - 1 floats into them (pixels it discards). 16->32 1x1 stride 2 on 28x28,
// batch 64, plan step, 1 thread: 0.58 -> 0.40 ms; 32->64 on 14x14 0.54 -> 0.40; 256->512 on 14x14
// at batch 1 0.17 -> 0.15.
void build_phases(const Conv2dShape& s, const SmallCPlan& pl, const float* x, float* xs, index_t c0, index_t c1) {
  const index_t sh = s.stride_h, sw = s.stride_w, Cg = s.C / s.groups, Hq = pl.Hq, Wq = pl.Wq;
  const index_t plane = Hq * Wq;
  float* p = xs + c0 * sh * sw * plane;
  for (index_t c = c0; c < c1; ++c)
    for (index_t ph = 0; ph < sh; ++ph)
      for (index_t pw = 0; pw < sw; ++pw) {
        if (!phase_read(ph, s.R, s.dil_h, sh) || !phase_read(pw, s.S, s.dil_w, sw)) {
          copy_pad(p, x, 0, std::min<index_t>(32, plane));
          p += plane;
          continue;
        }
        // Columns wq with 0 <= wq*sw + pw - pad_w < W: [lo, hi).
        const index_t w0 = pw - s.pad_w;
        const index_t lo = std::min(Wq, w0 >= 0 ? 0 : (-w0 + sw - 1) / sw);
        const index_t hi = std::max(lo, std::min(Wq, s.W - 1 - w0 < 0 ? 0 : (s.W - 1 - w0) / sw + 1));
        for (index_t hq = 0; hq < Hq; ++hq, p += Wq) {
          const index_t h = hq * sh + ph - s.pad_h;
          if (h < 0 || h >= s.H) {
            copy_pad(p, x, 0, Wq);
          } else {
            copy_pad(p, x, 0, lo);  // masked vector stores of zeros (a scalar loop per row cost more)
            copy_pad(p + hi, x, 0, Wq - hi);
          }
        }
      }
  if (c1 == Cg) std::fill(p, xs + pl.xs_floats, 0.0f);
  for (index_t c = c0; c < c1; ++c)
    for (index_t h = 0; h < s.H; ++h) {
      const index_t hp = h + s.pad_h, hq = hp / sh;
      if (hq >= Hq || (sh > 1 && !phase_read(hp % sh, s.R, s.dil_h, sh))) continue;
      const float* src = x + (c * s.H + h) * s.W;
      float* row = xs + (c * sh + hp % sh) * sw * plane + hq * Wq;  // phase pw's row: row + pw*plane
      if (sw == 1) {
        const index_t n = std::min(s.W, Wq - s.pad_w);
        copy_pad(row + s.pad_w, src, n, n);
        continue;
      }
      if (sw == 2)
        deal_row<2>(src, s.W, row, plane, s.pad_w, Wq);
      else if (sw == 4)
        deal_row<4>(src, s.W, row, plane, s.pad_w, Wq);
      else
        deal_row<0>(src, s.W, row, plane, s.pad_w, Wq, sw);
    }
}

using avx512::transpose16;

// A tile of TP pixels x NV vectors of 16 channels (acc[pixel][vector]) out to planar rows:
// transposed in registers, channel c (< channels) to out + c*ld, the pixels masked by `pix`.
template <int TP, int NV>
inline void store_tile(const __m512 (&acc)[TP][NV], __mmask16 pix, index_t channels, float* out, index_t ld) {
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) {
    __m512 r[16];
#pragma GCC unroll 14
    for (int i = 0; i < TP; ++i) r[i] = acc[i][v];
    for (int i = TP; i < 16; ++i) r[i] = _mm512_setzero_ps();
    transpose16(r);
    for (int l = 0; l < 16 && 16 * v + l < channels; ++l) _mm512_mask_storeu_ps(out + (16 * v + l) * ld, pix, r[l]);
  }
}

// Forward tile: TP (7 to 14) consecutive output pixels of one row x NV vectors of 16 output
// channels (28 accumulators for 14 x 2 and 7 x 4). Per tap, NV filter vectors (w^T, a filter
// block's [tap][ldw], smallc_filter_index) and TP broadcasts of x, TP*NV FMAs; the pixels' x
// values are consecutive in the phase plane, at constant offsets 0..TP-1 from the tap's run. The tile is transposed in registers and stored as
// n pixels of each real channel.
template <int TP, int NV>
void fwd_tile(const float* xj, const int32_t* off, index_t CRS, const float* wT, index_t ldw, const float* bias,
              index_t kreal, float* y, index_t PQ, index_t n) {
  __m512 acc[TP][NV];
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) {
    const index_t c = std::clamp<index_t>(kreal - 16 * v, 0, 16);
    const __m512 b = bias != nullptr ? _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << c) - 1u), bias + 16 * v)
                                     : _mm512_setzero_ps();
#pragma GCC unroll 14
    for (int i = 0; i < TP; ++i) acc[i][v] = b;
  }
  // The tile's output lines, fetched for writing while it computes: y is written once per call,
  // so its lines are usually out in L3 and each store would otherwise wait for one (AlexNet conv1
  // forward 1.5-2.5% faster). Short tiles skip it: 64 prefetches were 10% of LeNet conv1's.
  for (index_t l = 0; CRS >= 128 && l < 16 * NV && l < kreal; ++l) {
    __builtin_prefetch(y + l * PQ, 1, 3);
    __builtin_prefetch(y + l * PQ + n - 1, 1, 3);
  }
  for (index_t k = 0; k < CRS; ++k) {
    const float* xp = xj + off[k];
    __m512 wv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) wv[v] = _mm512_loadu_ps(wT + k * ldw + 16 * v);
#pragma GCC unroll 14
    for (int i = 0; i < TP; ++i) {
      const __m512 xi = _mm512_set1_ps(xp[i]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(xi, wv[v], acc[i][v]);
    }
  }
  store_tile<TP, NV>(acc, static_cast<__mmask16>((1u << n) - 1u), kreal, y, PQ);
}

// Pair tile (SmallCPlan::pairs): 2*NP consecutive output pixels of one row x up to 8 channels,
// acc[a] lane 2c + p = channel c of pixel 2a + p. Per tap one filter vector (w[c] twice, lanes
// 2c, 2c + 1) and NP 64-bit broadcasts of x's pixel pairs, NP FMAs. Stored by 8 x 8 transposes of
// the pairs (64-bit elements): row c of the transpose is 16 consecutive pixels of channel c.
template <int NP>
void fwd_pair_tile(const float* xj, const int32_t* off, index_t CRS, const float* wT, index_t /*ldw = 16*/,
                   const float* bias, index_t kreal, float* y, index_t PQ, index_t n) {
  __m512 acc[NP];
  __m512 b = _mm512_setzero_ps();
  if (bias != nullptr) {  // lanes 2c, 2c + 1 = bias[c]
    const __m512i dup = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    const index_t c = std::min<index_t>(kreal, 8);
    b = _mm512_permutexvar_ps(dup, _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << c) - 1u), bias));
  }
#pragma GCC unroll 32
  for (int a = 0; a < NP; ++a) acc[a] = b;
  for (index_t k = 0; k < CRS; ++k) {
    const double* xp = reinterpret_cast<const double*>(xj + off[k]);  // pixel pairs (unaligned)
    const __m512 wv = _mm512_loadu_ps(wT + 16 * k);
#pragma GCC unroll 32
    for (int a = 0; a < NP; ++a) {
      double pair;
      std::memcpy(&pair, reinterpret_cast<const char*>(xp) + 8 * a, 8);
      acc[a] = _mm512_fmadd_ps(_mm512_castpd_ps(_mm512_set1_pd(pair)), wv, acc[a]);
    }
  }
  const __m512i lo = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13), hi = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
  const __m512i h0 = _mm512_setr_epi64(0, 1, 2, 3, 8, 9, 10, 11), h1 = _mm512_setr_epi64(4, 5, 6, 7, 12, 13, 14, 15);
  const index_t channels = std::min<index_t>(kreal, 8);
  for (int g = 0; g < (NP + 7) / 8; ++g) {
    __m512d r[8];
    for (int i = 0; i < 8; ++i) r[i] = 8 * g + i < NP ? _mm512_castps_pd(acc[8 * g + i]) : _mm512_setzero_pd();
    __m512d t[8], u[8], c[8];
    for (int i = 0; i < 8; i += 2) t[i] = _mm512_unpacklo_pd(r[i], r[i + 1]), t[i + 1] = _mm512_unpackhi_pd(r[i], r[i + 1]);
    for (int i = 0; i < 8; i += 4) {
      u[i] = _mm512_permutex2var_pd(t[i], lo, t[i + 2]);
      u[i + 1] = _mm512_permutex2var_pd(t[i + 1], lo, t[i + 3]);
      u[i + 2] = _mm512_permutex2var_pd(t[i], hi, t[i + 2]);
      u[i + 3] = _mm512_permutex2var_pd(t[i + 1], hi, t[i + 3]);
    }
    for (int i = 0; i < 4; ++i) c[i] = _mm512_permutex2var_pd(u[i], h0, u[i + 4]), c[i + 4] = _mm512_permutex2var_pd(u[i], h1, u[i + 4]);
    const index_t valid = std::clamp<index_t>(n - 16 * g, 0, 16);
    if (valid == 0) break;
    const __mmask16 pix = static_cast<__mmask16>((1u << valid) - 1u);
    for (index_t ch = 0; ch < channels; ++ch) _mm512_mask_storeu_ps(y + ch * PQ + 16 * g, pix, _mm512_castpd_ps(c[ch]));
  }
}

// The forward tiles by pixels per tile (8 to 14, smallc_plan's TP) and 16-channel vectors (1, 2).
using FwdTile = void (*)(const float*, const int32_t*, index_t, const float*, index_t, const float*, index_t, float*,
                         index_t, index_t);
template <int NV, int... T>
constexpr std::array<FwdTile, sizeof...(T)> fwd_table(std::integer_sequence<int, T...>) {
  return {fwd_tile<T + 8, NV>...};
}
const std::array<FwdTile, 7> kFwdTile1 = fwd_table<1>(std::make_integer_sequence<int, 7>{});
const std::array<FwdTile, 7> kFwdTile2 = fwd_table<2>(std::make_integer_sequence<int, 7>{});
FwdTile pair_tile(index_t TP) {
  return TP == 16 ? fwd_pair_tile<8> : TP == 24 ? fwd_pair_tile<12> : TP == 28 ? fwd_pair_tile<14> : fwd_pair_tile<16>;
}

// ---- backward-weight ----------------------------------------------------------------------
// grad_w^T (taps x channels) accumulates in registers as TT taps x NV vectors of 16 channels:
// per output pixel, NV vectors of grad_out^T (the pixel's channels, staged transposed) and TT
// broadcasts of x, TT*NV FMAs. The TT taps are consecutive columns of one kernel row, so their x
// values sit at constant offsets 0..TT-1 from the pixel's address in the (zero-padded, stride-1)
// image: no im2col, no per-tap address table in the loop, no reductions across lanes.

// goT[(j - j0)*Kv + k] = go[k*PQ + j] for j in [j0, j1), k < Kv (0 for k >= Kg). With bsum: also
// bsum[k] += sum over j of go[k*PQ + j] (grad_b, from the registers already loaded: a separate
// pass re-read grad_out, 35% of layer a's kernel time). Summed in float over the call's pixels (16
// at a time, then the 16-pixel sums), in double after that. Full 16 x 16 blocks take a path with
// no masks or bounds (scratch A/B, layer a 1.5-2% faster in both orders; e, b unchanged).
template <bool kFull>
inline void transpose_block(const float* go, index_t Kg, index_t PQ, index_t k0, index_t j, index_t w, float* goT,
                            index_t Kv, __m512& bacc) {
  __m512 r[16];
  if constexpr (kFull) {
    for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(go + (k0 + i) * PQ + j);
  } else {
    const __mmask16 m = static_cast<__mmask16>((1u << w) - 1u);
    for (index_t i = 0; i < 16; ++i)
      r[i] = k0 + i < Kg ? _mm512_maskz_loadu_ps(m, go + (k0 + i) * PQ + j) : _mm512_setzero_ps();
  }
  transpose16(r);
  if constexpr (kFull) {
    for (int l = 0; l < 16; ++l) _mm512_storeu_ps(goT + l * Kv, r[l]);
  } else {
    for (index_t l = 0; l < w; ++l) _mm512_storeu_ps(goT + l * Kv, r[l]);
  }
  // Rows l >= w are zero (masked loads).
  __m512 t[8];
  for (int l = 0; l < 8; ++l) t[l] = _mm512_add_ps(r[l], r[l + 8]);
  for (int l = 0; l < 4; ++l) t[l] = _mm512_add_ps(t[l], t[l + 4]);
  bacc = _mm512_add_ps(bacc, _mm512_add_ps(_mm512_add_ps(t[0], t[2]), _mm512_add_ps(t[1], t[3])));
}

void transpose_go(const float* go, index_t Kg, index_t PQ, index_t j0, index_t j1, index_t Kv, float* goT,
                  double* bsum) {
  for (index_t k0 = 0; k0 < Kv; k0 += 16) {
    __m512 bacc = _mm512_setzero_ps();
    index_t j = j0;
    if (k0 + 16 <= Kg)
      for (; j + 16 <= j1; j += 16) transpose_block<true>(go, Kg, PQ, k0, j, 16, goT + (j - j0) * Kv + k0, Kv, bacc);
    for (; j < j1; j += 16)
      transpose_block<false>(go, Kg, PQ, k0, j, std::min<index_t>(16, j1 - j), goT + (j - j0) * Kv + k0, Kv, bacc);
    if (bsum != nullptr) {
      const __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(bacc));
      const __m512d hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(bacc), 1)));
      _mm512_storeu_pd(bsum + k0, _mm512_add_pd(lo, _mm512_loadu_pd(bsum + k0)));
      _mm512_storeu_pd(bsum + k0 + 8, _mm512_add_pd(hi, _mm512_loadu_pd(bsum + k0 + 8)));
    }
  }
}

// np output rows of Q pixels: gwT[t*Kv + 16v + lane] (=, or += unless zero) sum over the pixels of
// x(pixel, tap t) * goT(pixel, channel). xr: x at tap 0 of the first pixel; an output row further
// is ldp floats on, a pixel sw. Also prefetches pf_row cache lines from pf on per output row.
template <int TT, int NV>
void bw_tile(const float* xr, index_t ldp, index_t sw, index_t np, index_t Q, const float* g, index_t Kv,
             float* gwT, bool zero, const float* pf, index_t pf_row) {
  __m512 acc[TT][NV];
#pragma GCC unroll 14
  for (int t = 0; t < TT; ++t)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) acc[t][v] = _mm512_setzero_ps();
  for (index_t p = 0; p < np; ++p, xr += ldp) {
    for (index_t i = 0; i < pf_row; ++i, pf += 16) _mm_prefetch(reinterpret_cast<const char*>(pf), _MM_HINT_T0);
    const float* xq = xr;
    for (index_t q = 0; q < Q; ++q, xq += sw, g += Kv) {
      __m512 gv[NV];
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) gv[v] = _mm512_loadu_ps(g + 16 * v);
#pragma GCC unroll 14
      for (int t = 0; t < TT; ++t) {
        const __m512 b = _mm512_set1_ps(xq[t]);
#pragma GCC unroll 2
        for (int v = 0; v < NV; ++v) acc[t][v] = _mm512_fmadd_ps(b, gv[v], acc[t][v]);
      }
    }
  }
#pragma GCC unroll 14
  for (int t = 0; t < TT; ++t)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) {
      float* o = gwT + t * Kv + 16 * v;
      _mm512_storeu_ps(o, zero ? acc[t][v] : _mm512_add_ps(acc[t][v], _mm512_loadu_ps(o)));
    }
}

using BwTile = void (*)(const float*, index_t, index_t, index_t, index_t, const float*, index_t, float*, bool,
                        const float*, index_t);
constexpr int kMaxTT = 14;  // 14 taps x 2 vectors = 28 accumulators

template <int NV, int... T>
constexpr std::array<BwTile, sizeof...(T)> bw_table(std::integer_sequence<int, T...>) {
  return {bw_tile<T + 1, NV>...};
}
const std::array<BwTile, kMaxTT> kBwTile1 = bw_table<1>(std::make_integer_sequence<int, kMaxTT>{});
const std::array<BwTile, kMaxTT> kBwTile2 = bw_table<2>(std::make_integer_sequence<int, kMaxTT>{});

}  // namespace

// dst[col*ldv + row] (or, blocked by kb > 0, dst[smallc_filter_index(cols, ldv, kb, col, row)]) =
// src[row*cols + col] for row < rows, 0 for rows <= row < ldv (a multiple of 16), by 16 x 16
// register transposes (a scalar loop reads src with a stride of `cols` floats: ~4% of LeNet
// conv2's forward, serial).
static void pack_transposed(const float* src, index_t rows, index_t cols, index_t ldv, float* dst, index_t kb) {
  for (index_t k0 = 0; k0 < cols; k0 += 16) {
    const index_t kn = std::min<index_t>(16, cols - k0);
    const __mmask16 m = static_cast<__mmask16>((1u << kn) - 1u);
    for (index_t i0 = 0; i0 < ldv; i0 += 16) {
      __m512 r[16];
      for (index_t i = 0; i < 16; ++i)
        r[i] = i0 + i < rows ? _mm512_maskz_loadu_ps(m, src + (i0 + i) * cols + k0) : _mm512_setzero_ps();
      transpose16(r);
      for (index_t l = 0; l < kn; ++l) _mm512_storeu_ps(dst + (kb > 0 ? smallc_filter_index(cols, ldv, kb, k0 + l, i0) : (k0 + l) * ldv + i0), r[l]);
    }
  }
}

// w^T of each group, blocked as smallc_filter_index says, channels past K/groups zero.
void smallc_pack_weights_avx512(const Conv2dShape& s, const SmallCPlan& pl, const float* w, float* wp) {
  const index_t Kg = s.K / s.groups;
  for (index_t g = 0; g < s.groups; ++g) {
    pack_transposed(w + g * Kg * pl.CRS, Kg, pl.CRS, pl.Kv, wp + g * pl.CRS * pl.Kv, pl.KB);
    if (pl.pairs) smallc_expand_pairs(wp + g * pl.CRS * pl.Kv, pl.CRS);
  }
}

// With stride 1 and no padding the phase plane is the image itself; it is read in place when no
// tile reads past a row's end (Q a multiple of the tile), which would run off the last plane.
// Saves a copy of the image per call (~2% of LeNet conv2's forward).
static bool reads_x_in_place(const Conv2dShape& s, const SmallCPlan& pl) {
  return s.stride_h == 1 && s.stride_w == 1 && s.pad_h == 0 && s.pad_w == 0 && s.Q % pl.TP == 0;
}

void smallc_forward_image_avx512(const Conv2dShape& s, const SmallCPlan& pl, const float* x, const float* wp,
                                 const int32_t* off, const float* bias, float* y, index_t ldy, float* slice,
                                 bool parallel) {
  const bool in_place = reads_x_in_place(s, pl);
  const float* xs = in_place ? x : align64(slice);
  const index_t Kg = s.K / s.groups, Kv = pl.Kv, Q = s.Q, Cg = s.C / s.groups;
  // Filter blocks of KB output channels outside, output rows [p0, p1) inside: a block's filters
  // (CRS x KB, contiguous) stay in L2 while the rows' tiles read them.
  const index_t blocks = (Kv + pl.KB - 1) / pl.KB;
  auto tiles = [&](index_t b0, index_t b1, index_t p0, index_t p1) {
    for (index_t kv = b0 * pl.KB; kv < b1 * pl.KB && kv < Kv; kv += pl.KB) {
      const index_t width = std::min(pl.KB, Kv - kv);
      const FwdTile tile = pl.pairs    ? pair_tile(pl.TP)
                           : pl.TP == 7 ? fwd_tile<7, 4>
                                        : (width == 32 ? kFwdTile2 : kFwdTile1)[pl.TP - 8];
      const float* wb = wp + kv * pl.CRS;
      const float* b = bias != nullptr ? bias + kv : nullptr;
      for (index_t p = p0; p < p1; ++p)
        for (index_t q0 = 0; q0 < Q; q0 += pl.TP)
          tile(xs + p * pl.Wq + q0, off, pl.CRS, wb, width, b, Kg - kv, y + kv * ldy + p * Q + q0, ldy,
               std::min<index_t>(pl.TP, Q - q0));
    }
  };
  if (!parallel) {
    if (!in_place) build_phases(s, pl, x, align64(slice), 0, Cg);
    tiles(0, blocks, 0, s.P);
    return;
  }
  // A team splits the phase planes by channels, then the tiles by output rows, each thread all
  // the filter blocks. Splitting by blocks instead (part of the filters per thread, all of the
  // image) was slower or equal on ResNet-18's 3x3 layers at batch 1, 2 threads (min of 40
  // interleaved runs, ms, rows / blocks): 64->64 on 56x56 1.22 / 1.31, 64->128 stride 2 0.83 /
  // 1.00, 128->128 on 28x28 1.30 / 1.36, 128->256 stride 2 0.80 / 0.87. Blocks are split only where
  // they divide evenly and the rows do not (7 rows: 256->512 stride 2 onto 7x7 0.70 / 0.65,
  // 512->512 on 7x7 1.25 / 1.23).
  const int team = max_threads();
  const bool by_blocks = blocks % team == 0 && s.P % team != 0;
#pragma omp parallel num_threads(team)
  {
    const index_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    if (!in_place) {
      build_phases(s, pl, x, align64(slice), Cg * t / nt, Cg * (t + 1) / nt);
#pragma omp barrier
    }
    if (by_blocks)
      tiles(blocks * t / nt, blocks * (t + 1) / nt, 0, s.P);
    else
      tiles(0, blocks, s.P * t / nt, s.P * (t + 1) / nt);
  }
}

void smallc_backward_weight_avx512(const Conv2dShape& s, const SmallCPlan& pl, const float* grad_out,
                                   const float* x, index_t images, float* grad_w, float* grad_b, bool overwrite,
                                   float* slice, bool parallel) {
  const index_t Cg = s.C / s.groups, Kg = s.K / s.groups, Kv = pl.Kv, PQ = s.P * s.Q, CRS = pl.CRS;
  const bool padded = pl.xp_floats > 0;
  float* xp = align64(slice);
  float* goT = align64(xp + pl.xp_floats);
  float* gwT = align64(goT + pl.rows_block * s.Q * Kv);  // CRS x Kv, summed over the images
  double* bsum = grad_b != nullptr ? reinterpret_cast<double*>(align64(gwT + CRS * Kv)) : nullptr;  // Kv
  if (bsum != nullptr) std::fill(bsum, bsum + Kv, 0.0);
  const index_t ld = padded ? pl.Wp : s.W, plane = padded ? pl.Hp * pl.Wp : s.H * s.W;
  for (index_t n = 0; n < images; ++n) {
    const float* xn = x + n * s.C * s.H * s.W;
    if (padded) {  // zero-padded copy: every tap of every pixel is then inside it
      const index_t pw = std::min(s.pad_w, pl.Wp), n = std::clamp<index_t>(pl.Wp - s.pad_w, 0, s.W);
      for (index_t c = 0; c < Cg; ++c)
        for (index_t h = 0; h < pl.Hp; ++h) {
          float* o = xp + (c * pl.Hp + h) * pl.Wp;
          const index_t ih = h - s.pad_h;
          if (ih < 0 || ih >= s.H) {
            copy_pad(o, xn, 0, pl.Wp);
            continue;
          }
          copy_pad(o, xn, 0, pw);  // left padding, then the row and the right padding
          copy_pad(o + pw, xn + (c * s.H + ih) * s.W, n, pl.Wp - pw);
        }
      xn = xp;
    }
    const float* go = grad_out + n * s.K * PQ;
    for (index_t p0 = 0; p0 < s.P; p0 += pl.rows_block) {
      const index_t np = std::min(pl.rows_block, s.P - p0);
      transpose_go(go, Kg, PQ, p0 * s.Q, (p0 + np) * s.Q, Kv, goT, bsum);
      const bool zero = n == 0 && p0 == 0;
      // The tiles prefetch the next block's grad_out (this group's Kg rows of it: the rest of this
      // image or the next image's first block) a few lines per output row, so that its
      // transposing pass finds it in cache: the hardware prefetchers miss its Kg interleaved row
      // streams. Whole-image blocks: one contiguous run, split over the tiles; otherwise a run per
      // channel row, one per tile (none if there are fewer tiles than channels). Scratch A/B, one
      // thread: layer a (7.4 MB of grad_out) from a cold cache 1.40 -> 1.12 ms, warm 1.03 -> 0.99
      // ms; e 1.5% faster. A burst of prefetches before the tiles was slower than none; a general
      // walk over the runs inside the tiles cost LeNet conv2's 8-pixel rows 12%.
      const index_t tiles_cr = ((s.S + kMaxTT - 1) / kMaxTT) * ((Kv + 31) / 32);  // tile calls per (c, r)
      const index_t tiles = Cg * s.R * tiles_cr;
      const bool in_image = p0 + np < s.P, whole = pl.rows_block == s.P;
      const float* pf_base = in_image ? go + (p0 + np) * s.Q : (n + 1 < images ? go + s.K * PQ : nullptr);
      const index_t run = whole ? Kg * PQ : std::min(pl.rows_block, in_image ? s.P - p0 - np : s.P) * s.Q;
      const index_t run_lines = (run + 15) / 16;
      const index_t pf_row = pf_base == nullptr || (!whole && tiles < Kg) ? 0
                             : whole ? (run_lines + tiles * np - 1) / (tiles * np)
                                     : (run_lines + np - 1) / np;
      maybe_parallel_for(parallel, Cg * s.R, [&](index_t cr) {
        const index_t c = cr / s.R, r = cr % s.R;
        const float* xr = xn + c * plane + (p0 * s.stride_h + r * s.dil_h) * ld;
        index_t tile = cr * tiles_cr;
        for (index_t t0 = 0; t0 < s.S; t0 += kMaxTT) {
          const int tt = static_cast<int>(std::min<index_t>(kMaxTT, s.S - t0));
          for (index_t kv = 0; kv < Kv; kv += 32) {
            const bool two = Kv - kv >= 32;
            // This tile's share: lines [i*np*pf_row, (i + 1)*np*pf_row) of the run, or channel row
            // i's run (its last row of prefetches may reach a few lines past it: prefetches never
            // fault).
            const index_t i = tile++;
            const bool some = pf_row > 0 && (whole ? (i + 1) * np * pf_row <= run_lines : i < Kg);
            const float* pf = !some ? nullptr : whole ? pf_base + i * np * pf_row * 16 : pf_base + i * PQ;
            (two ? kBwTile2 : kBwTile1)[tt - 1](xr + t0, s.stride_h * ld, s.stride_w, np, s.Q, goT + kv, Kv,
                                                gwT + (cr * s.S + t0) * Kv + kv, zero, pf, some ? pf_row : 0);
            if (!two) break;
          }
        }
      });
    }
  }
  for (index_t k = 0; k < Kg; ++k)
    for (index_t r = 0; r < CRS; ++r) {
      const float v = gwT[r * Kv + k];
      grad_w[k * CRS + r] = overwrite ? v : grad_w[k * CRS + r] + v;
    }
  if (bsum != nullptr)
    for (index_t k = 0; k < Kg; ++k) grad_b[k] = static_cast<float>(overwrite ? bsum[k] : grad_b[k] + bsum[k]);
}

// ---- backward-data, direct ------------------------------------------------------------------
// A tile is one whole row h of grad_x (W <= 14 pixels) x NV vectors of 16 input channels. For
// each output channel k and kernel row r whose grad_out row p = h - r exists, tap t sends grad_out
// pixel q to grad_x pixel q + t: with W and S template parameters those pixels are compile-time
// accumulator indices, so every FMA is a useful one (no zero padding, no col2im, no GEMM).
// Per (k, r, t): NV filter vectors (packed [k][r][t][c]) and Q broadcasts of grad_out, Q*NV FMAs.
namespace {

template <int W, int S, int NV>
void bd_row(const float* go, index_t Kg, index_t P, index_t R, index_t h, const float* wb, index_t Cv, index_t creal,
            float* gx, index_t HW) {
  constexpr int Q = W - S + 1;
  __m512 acc[W][NV];
#pragma GCC unroll 14
  for (int i = 0; i < W; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
  const index_t r_lo = std::max<index_t>(0, h - (P - 1)), r_hi = std::min<index_t>(R, h + 1);
  for (index_t k = 0; k < Kg; ++k)
    for (index_t r = r_lo; r < r_hi; ++r) {
      const float* g = go + (k * P + h - r) * Q;
      const float* wr = wb + (k * R + r) * S * Cv;
#pragma GCC unroll 8
      for (int t = 0; t < S; ++t) {
        __m512 wv[NV];
#pragma GCC unroll 2
        for (int v = 0; v < NV; ++v) wv[v] = _mm512_loadu_ps(wr + t * Cv + 16 * v);
#pragma GCC unroll 14
        for (int q = 0; q < Q; ++q) {
          const __m512 b = _mm512_set1_ps(g[q]);
#pragma GCC unroll 2
          for (int v = 0; v < NV; ++v) acc[q + t][v] = _mm512_fmadd_ps(b, wv[v], acc[q + t][v]);
        }
      }
    }
  store_tile<W, NV>(acc, static_cast<__mmask16>((1u << W) - 1u), creal, gx + h * W, HW);
}

using BdRow = void (*)(const float*, index_t, index_t, index_t, index_t, const float*, index_t, index_t, float*, index_t);
constexpr int kBdMaxW = 14;

// Rows for W = S .. kBdMaxW (index W - S), per NV.
template <int S, int NV, int... I>
constexpr std::array<BdRow, sizeof...(I)> bd_table(std::integer_sequence<int, I...>) {
  return {bd_row<S + I, S, NV>...};
}
const std::array<BdRow, kBdMaxW - 2> kBdRow3x1 = bd_table<3, 1>(std::make_integer_sequence<int, kBdMaxW - 2>{});
const std::array<BdRow, kBdMaxW - 2> kBdRow3x2 = bd_table<3, 2>(std::make_integer_sequence<int, kBdMaxW - 2>{});
const std::array<BdRow, kBdMaxW - 4> kBdRow5x1 = bd_table<5, 1>(std::make_integer_sequence<int, kBdMaxW - 4>{});
const std::array<BdRow, kBdMaxW - 4> kBdRow5x2 = bd_table<5, 2>(std::make_integer_sequence<int, kBdMaxW - 4>{});

}  // namespace

bool smallc_bd_has_kernel(index_t W, index_t S) { return (S == 3 || S == 5) && W >= S && W <= kBdMaxW; }

void smallc_pack_bd_weights_avx512(const Conv2dShape& s, index_t Cv, const float* w, float* wb) {
  const index_t Cg = s.C / s.groups, RS = s.R * s.S;
  for (index_t k = 0; k < s.K; ++k) pack_transposed(w + k * Cg * RS, Cg, RS, Cv, wb + k * RS * Cv, 0);
}

void smallc_backward_data_image_avx512(const Conv2dShape& s, index_t Cv, const float* grad_out, const float* wb,
                                       float* grad_x, bool parallel) {
  const index_t Cg = s.C / s.groups, Kg = s.K / s.groups, HW = s.H * s.W, W = s.W, S = s.S;
  const BdRow one = S == 3 ? kBdRow3x1[W - S] : kBdRow5x1[W - S];
  const BdRow two = S == 3 ? kBdRow3x2[W - S] : kBdRow5x2[W - S];
  maybe_parallel_for(parallel, s.H, [&](index_t h) {
    for (index_t c0 = 0; c0 < Cv; c0 += 32) {
      const bool pair = Cv - c0 >= 32;
      (pair ? two : one)(grad_out, Kg, s.P, s.R, h, wb + c0, Cv, Cg - c0, grad_x + c0 * HW, HW);
    }
  });
}

}  // namespace fastlayers::cpu
