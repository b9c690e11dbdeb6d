#include "cpu/conv3d.h"

// Which path runs where (conv2d's structure, conv.cpp, carried to a depth axis), tried in order:
//   winograd   3x3 in-plane taps, unit strides, enough channels (conv3d_winograd.h); any T, depth
//              dilation and padding: the 3x3x3 layers of 3-D CNNs.
//   depthwise  one input channel and < 8 outputs per group: a direct stencil (depthwise_forward;
//              forward only, the backward passes take the paths below).
//   slices     output slices as conv2d's of depth-unfolded input (conv3d_slices.h), where conv2d's
//              direct AVX-512 kernels take them (few channels per group, e.g. 1->32 5x5x5) and, for
//              backward-data, most shapes; rules and figures in conv3d_slices.cpp.
//   GEMM       the rest, on our sgemm:
//              forward          implicit GEMM: y[n] (K/groups x OD*P*Q) = W (K/groups x C/groups*T*R*S)
//                               times the im2col matrix, whose B panels sgemm packs straight from x
//                               through pack_implicit_b (never materialised), in L2-sized column tiles;
//                               1x1x1 unit-stride unpadded layers multiply x itself.
//              backward-data    per image and tile of output columns, cols = W^T grad_out (sgemm),
//                               added back into grad_x (col2im_add).
//              backward-weight  per image and tile, im2col then grad_w (+)= grad_out cols^T (or its
//                               transpose, whichever orientation fills sgemm's register tile better),
//                               per-thread partial sums added in thread order.
// 1 thread, CPU time, PyTorch 2.13 / ours (benchmarks/conv3d_tune.py --clock cpu): 32->64 3x3x3 16^3
// (winograd) forward 1.51, backward 1.33; 1->32 5x5x5 32^3 (slices) forward 1.17, backward 6.4.
// Threads: over images when N >= threads (one workspace slice each, sgemm single-threaded inside
// the region), otherwise one image at a time with sgemm, im2col and col2im parallel inside.

#include <omp.h>

#include <algorithm>
#include <vector>

#include "cpu/channel_bias.h"
#include "cpu/conv3d_slices.h"
#include "cpu/conv3d_winograd.h"
#include "cpu/gemm.h"
#include "cpu/parallel.h"

namespace fastlayers::cpu {

namespace {

// Columns of the im2col matrix per backward tile: ~2 MiB of it per thread, at least 128 columns.
constexpr index_t kColsTileFloats = index_t{1} << 19;
constexpr index_t kMinTileColumns = 128;
// Floats of packed B per forward GEMM call (~1 MiB, the L2 of a Zen 4 core).
constexpr index_t kPackedBFloats = index_t{1} << 18;

struct Geometry {
  index_t Cg, Kg, TRS, CTRS, ODPQ, DHW, PQ, HW;
  index_t tile;        // output columns per backward GEMM call
  index_t fwd_tile;    // output columns per forward (implicit) GEMM call
  bool direct;         // 1x1x1, unit stride, no padding: x itself is the im2col matrix
  bool gw_transposed;  // backward-weight accumulates grad_w^T (CTRS x K/groups)
};

index_t ceil_div(index_t a, index_t b) { return (a + b - 1) / b; }

// Padded fraction of sgemm's register tile for an M x N product (AVX-512: 14 x 32).
double tile_waste(index_t M, index_t N) {
  const index_t mr = sgemm_packed_a_rows(), nr = mr == 14 ? 32 : 16;
  return static_cast<double>(ceil_div(M, mr) * mr) / M * static_cast<double>(ceil_div(N, nr) * nr) / N;
}

Geometry geometry(const Conv3dShape& s) {
  Geometry g{};
  g.Cg = s.C / s.groups;
  g.Kg = s.K / s.groups;
  g.TRS = s.T * s.R * s.S;
  g.CTRS = g.Cg * g.TRS;
  g.PQ = s.P * s.Q;
  g.ODPQ = s.OD * g.PQ;
  g.HW = s.H * s.W;
  g.DHW = s.D * g.HW;
  g.direct = g.TRS == 1 && is_plain(s);
  g.tile = std::min(g.ODPQ, std::max(kMinTileColumns, kColsTileFloats / g.CTRS));
  g.fwd_tile = std::min(g.ODPQ, std::max(kMinTileColumns, kPackedBFloats / g.CTRS / 32 * 32));
  g.gw_transposed = tile_waste(g.CTRS, g.Kg) < tile_waste(g.Kg, g.CTRS);
  return g;
}

int image_threads(const Conv3dShape& s, int threads) { return (threads > 1 && s.N >= threads) ? threads : 1; }

// Per thread: the column tile of the backward passes; the forward needs none (sgemm packs).
index_t slice_floats(const Geometry& g, ConvPass pass) {
  if (pass == ConvPass::forward || g.direct) return 0;
  return g.CTRS * g.tile;
}

index_t needed_floats(const Conv3dShape& s, const Geometry& g, ConvPass pass, int T) {
  index_t n = T * slice_floats(g, pass);
  if (pass == ConvPass::backward_weight) n += T * s.K * g.CTRS;  // each thread's partial grad_w
  return n;
}

int plan_threads(const Conv3dShape& s, const Geometry& g, ConvPass pass, index_t workspace_floats) {
  int T = image_threads(s, max_threads());
  while (T > 1 && needed_floats(s, g, pass, T) > workspace_floats) --T;
  return needed_floats(s, g, pass, T) <= workspace_floats ? T : 0;
}

// Runs body(n, chunk, workspace slice, inner_parallel) for every image: with T > 1 the images are cut
// into T static chunks, one per thread (a smaller team takes several: the result does not depend on
// the team OpenMP gives); with T == 1 one image at a time, parallel inside.
template <class Body>
void for_each_image(const Conv3dShape& s, int T, index_t slice, float* workspace, Body body) {
  if (T > 1) {
#pragma omp parallel num_threads(T)
    for (int t = omp_get_thread_num(); t < T; t += omp_get_num_threads())
      for (index_t n = s.N * t / T; n < s.N * (t + 1) / T; ++n) body(n, t, workspace + t * slice, false);
  } else {
    const bool inner = max_threads() > 1 && !omp_in_parallel();
    for (index_t n = 0; n < s.N; ++n) body(n, 0, workspace, inner);
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

void fill(float* p, index_t n, float v, bool parallel) {
  if (parallel && n > kParallelGrain) {
#pragma omp parallel for simd schedule(static) num_threads(max_threads())
    for (index_t i = 0; i < n; ++i) p[i] = v;
  } else {
    std::fill(p, p + n, v);
  }
}

// Where tap row `row` = (c, t, r, s) of the im2col matrix reads, relative to an output voxel's
// (od*sd, p*sh, q*sw): depth, row and column offsets, and its channel.
struct Tap {
  index_t c, dd, dh, dw;
};

inline Tap tap_of(const Conv3dShape& s, index_t row) {
  const index_t RS = s.R * s.S, TRS = s.T * RS, c = row / TRS, t = (row / RS) % s.T, r = (row / s.S) % s.R,
                u = row % s.S;
  return {c, t * s.dil_d - s.pad_d, r * s.dil_h - s.pad_h, u * s.dil_w - s.pad_w};
}

// Output columns q of a row whose tap column offset is dw: those with 0 <= q*sw + dw < W.
inline void valid_q(const Conv3dShape& s, index_t dw, index_t& q_lo, index_t& q_hi) {
  q_lo = dw >= 0 ? 0 : ceil_div(-dw, s.stride_w);
  q_hi = (s.W - 1 - dw) < 0 ? 0 : std::min(s.Q, (s.W - 1 - dw) / s.stride_w + 1);
  if (q_hi < q_lo) q_hi = q_lo;
}

// Calls f(od, p, q, qe, col) for the output rows (od, p) that columns [j0, j1) cover: columns
// q..qe-1 of the row, the first being column `col` of the im2col matrix. (od, p) advance without
// divisions: this runs once per im2col row and output row.
template <class F>
inline void for_each_row(const Conv3dShape& s, index_t j0, index_t j1, F f) {
  const index_t Q = s.Q;
  index_t rp = j0 / Q, od = rp / s.P, p = rp % s.P;
  for (; rp * Q < j1; ++rp) {
    const index_t q = std::max(j0, rp * Q) - rp * Q, qe = std::min(j1, (rp + 1) * Q) - rp * Q;
    f(od, p, q, qe, rp * Q + q);
    if (++p == s.P) {
      p = 0;
      ++od;
    }
  }
}

// Columns [j0, j1) of the im2col matrix of one image and group (x at its group's channel 0):
// row (c, t, r, s), column (od, p, q) holds x[c, od*sd + t*dd - pd, p*sh + r*dh - ph, q*sw + s*dw - pw]
// or 0 in the padding, written to cols[row * ld + j - j0].
void im2col(const Conv3dShape& s, const Geometry& g, const float* x, index_t j0, index_t j1, float* cols, index_t ld,
            bool parallel) {
  maybe_parallel_for(parallel, g.CTRS, [&](index_t row) {
    const Tap tp = tap_of(s, row);
    const float* xc = x + tp.c * g.DHW;
    index_t q_lo, q_hi;
    valid_q(s, tp.dw, q_lo, q_hi);
    float* out = cols + row * ld;
    for_each_row(s, j0, j1, [&](index_t od, index_t p, index_t q, index_t qe, index_t col) {
      const index_t id = od * s.stride_d + tp.dd, ih = p * s.stride_h + tp.dh;
      float* __restrict seg = out + (col - j0);  // seg[qq - q] is output column qq of this row
      if (id < 0 || id >= s.D || ih < 0 || ih >= s.H) {
        for (index_t qq = q; qq < qe; ++qq) seg[qq - q] = 0.0f;
        return;
      }
      const float* __restrict xrow = xc + id * g.HW + ih * s.W;
      const index_t a = std::clamp(q_lo, q, qe), b = std::clamp(q_hi, a, qe);
      for (index_t qq = q; qq < a; ++qq) seg[qq - q] = 0.0f;
      if (s.stride_w == 1) {
        const float* __restrict src = xrow + (a + tp.dw);  // a + dw >= 0: a column inside the row
        float* __restrict o = seg + (a - q);
#pragma omp simd
        for (index_t l = 0; l < b - a; ++l) o[l] = src[l];
      } else {
        for (index_t qq = a; qq < b; ++qq) seg[qq - q] = xrow[qq * s.stride_w + tp.dw];
      }
      for (index_t qq = b; qq < qe; ++qq) seg[qq - q] = 0.0f;
    });
  });
}

// The adjoint: grad_x[c, id, ih, iw] += cols[row, j] over columns [j0, j1). Parallel over channels,
// so no two threads write one element and the summation order is fixed.
void col2im_add(const Conv3dShape& s, const Geometry& g, const float* cols, index_t ld, index_t j0, index_t j1,
                float* gx, bool parallel) {
  maybe_parallel_for(parallel, g.Cg, [&](index_t c) {
    for (index_t row = c * g.TRS; row < (c + 1) * g.TRS; ++row) {
      const Tap tp = tap_of(s, row);
      float* gc = gx + c * g.DHW;
      index_t q_lo, q_hi;
      valid_q(s, tp.dw, q_lo, q_hi);
      const float* in = cols + row * ld;
      for_each_row(s, j0, j1, [&](index_t od, index_t p, index_t q, index_t qe, index_t col) {
        const index_t id = od * s.stride_d + tp.dd, ih = p * s.stride_h + tp.dh;
        if (id < 0 || id >= s.D || ih < 0 || ih >= s.H) return;
        const index_t a = std::clamp(q_lo, q, qe), b = std::clamp(q_hi, a, qe);
        const float* __restrict seg = in + (col - j0);  // seg[qq - q] is output column qq of this row
        float* __restrict grow = gc + id * g.HW + ih * s.W;
        if (s.stride_w == 1) {
          float* __restrict dst = grow + (a + tp.dw);
          const float* __restrict src = seg + (a - q);
#pragma omp simd
          for (index_t l = 0; l < b - a; ++l) dst[l] += src[l];
        } else {
          for (index_t qq = a; qq < b; ++qq) grow[qq * s.stride_w + tp.dw] += seg[qq - q];
        }
      });
    }
  });
}

// Implicit GEMM (forward): sgemm packs its B panels (kc rows x nr columns of one image's im2col
// matrix) straight from x through this callback. Called concurrently by sgemm's team on disjoint
// panels: reads only the context.
struct ImplicitB {
  const Conv3dShape* s;
  const Geometry* g;
  const float* x;  // the image's group, channel 0
  index_t j_base;  // GEMM column 0 is im2col column j_base
};

inline void copy_run(float* __restrict o, const float* __restrict src, index_t len) {
  // In blocks of 8: a plain loop becomes a memmove call, which costs more than it moves here.
  index_t l = 0;
  for (; l + 8 <= len; l += 8)
    for (int u = 0; u < 8; ++u) o[l + u] = src[l + u];
  for (; l < len; ++l) o[l] = src[l];
}

// A run of panel columns inside one output row: dst columns [d, d + len) are voxels (od, p, q..).
struct Segment {
  index_t od, p, q, len, d;
};

template <bool kPlain>
void pack_implicit_b_t(const ImplicitB& ib, index_t k0, index_t kc, index_t j0, index_t n, int nr, float* dst) {
  const Conv3dShape& s = *ib.s;
  const Geometry& g = *ib.g;
  Segment seg[64 + 1];  // nr <= 64: at most one segment per column
  int ns = 0;
  for (index_t d = 0; d < n;) {
    const index_t j = ib.j_base + j0 + d, rp = j / s.Q, q = j % s.Q, len = std::min(s.Q - q, n - d);
    seg[ns++] = {rp / s.P, rp % s.P, q, len, d};
    d += len;
  }
  // Run-major: the taps of up to 256 rows first, then each run down the rows.
  constexpr index_t kChunk = 256;
  Tap taps[kChunk];
  for (index_t kb = 0; kb < kc; kb += kChunk) {
    const index_t kn = std::min(kChunk, kc - kb);
    // (c, t, r, u) of row k0 + kb, then stepped row by row (no divisions per row).
    index_t row = k0 + kb, c = row / g.TRS, t = (row / (s.R * s.S)) % s.T, r = (row / s.S) % s.R, u = row % s.S;
    for (index_t k = 0; k < kn; ++k) {
      taps[k] = {c, t * s.dil_d - s.pad_d, r * s.dil_h - s.pad_h, u * s.dil_w - s.pad_w};
      if (++u == s.S) {
        u = 0;
        if (++r == s.R) {
          r = 0;
          if (++t == s.T) {
            t = 0;
            ++c;
          }
        }
      }
    }
    float* d0 = dst + kb * nr;
    for (int i = 0; i < ns; ++i) {
      const Segment& sg = seg[i];
      const index_t bd = sg.od * s.stride_d, bh = sg.p * s.stride_h, bw = sg.q * s.stride_w;
      float* o = d0 + sg.d;
      for (index_t k = 0; k < kn; ++k) {
        const Tap& tp = taps[k];
        float* __restrict ok = o + k * nr;
        const index_t id = bd + tp.dd, ih = bh + tp.dh, iw0 = bw + tp.dw;
        if constexpr (kPlain) {  // every tap of every voxel is inside the input
          copy_run(ok, ib.x + (tp.c * g.DHW + id * g.HW + ih * s.W + iw0), sg.len);
          continue;
        }
        if (id < 0 || id >= s.D || ih < 0 || ih >= s.H) {
          for (index_t l = 0; l < sg.len; ++l) ok[l] = 0.0f;
          continue;
        }
        const float* xrow = ib.x + (tp.c * g.DHW + id * g.HW + ih * s.W);
        if (s.stride_w == 1 && iw0 >= 0 && iw0 + sg.len <= s.W) {
          copy_run(ok, xrow + iw0, sg.len);
        } else {
          for (index_t l = 0; l < sg.len; ++l) {
            const index_t iw = iw0 + l * s.stride_w;
            ok[l] = (iw >= 0 && iw < s.W) ? xrow[iw] : 0.0f;
          }
        }
      }
    }
    if (n < nr)
      for (index_t k = 0; k < kn; ++k)
        for (index_t l = n; l < nr; ++l) d0[k * nr + l] = 0.0f;
  }
}

void pack_implicit_b(const void* ctx, index_t k0, index_t kc, index_t j0, index_t n, int nr, float* dst) {
  const ImplicitB& ib = *static_cast<const ImplicitB*>(ctx);
  if (is_plain(*ib.s))
    pack_implicit_b_t<true>(ib, k0, kc, j0, n, nr, dst);
  else
    pack_implicit_b_t<false>(ib, k0, kc, j0, n, nr, dst);
}

// One input channel and few output channels per group (depthwise layers): each output channel is a
// 3-D stencil over one input volume, computed directly a row at a time - bias, then per tap one
// multiply-add across the row, vectorised over the columns whose taps are all inside the row - with
// no GEMM: sgemm's 14-row register tile would hold one useful row there (64 channels depthwise 3x3x3
// 16^3, 1 thread: 17.9 ms on the implicit GEMM, 4.7 here, PyTorch 4.9-11.5). Parallel over (image,
// channel, output slice); each output is summed over the taps in (t, r, s) order.
bool depthwise_applies(const Conv3dShape& s) { return s.C == s.groups && s.K / s.groups < 8; }

// Output plane (n, k, od) += tap (t, r, u) of its filter, over the rows and columns that tap reaches
// inside the input: one broadcast weight, rows of the plane in turn. Column stride 1 and 2 known at
// compile time (the strided loads vectorise).
template <int kStride>
void depthwise_forward_t(const Conv3dShape& s, const float* x, const float* w, const float* b, float* y) {
  const index_t Kg = s.K / s.groups, HW = s.H * s.W, DHW = s.D * HW, PQ = s.P * s.Q, ODPQ = s.OD * PQ;
  const index_t TRS = s.T * s.R * s.S, Q = s.Q, sw = kStride ? kStride : s.stride_w;
  // Each tap's valid output rows and columns, once per call (no divisions in the loops).
  std::vector<index_t> q_lo(s.S), q_hi(s.S), p_lo(s.R), p_hi(s.R);
  for (index_t u = 0; u < s.S; ++u) valid_q(s, u * s.dil_w - s.pad_w, q_lo[u], q_hi[u]);
  for (index_t r = 0; r < s.R; ++r) {
    const index_t off = r * s.dil_h - s.pad_h;
    p_lo[r] = off >= 0 ? 0 : std::min(s.P, ceil_div(-off, s.stride_h));
    p_hi[r] = (s.H - 1 - off) < 0 ? 0 : std::min(s.P, (s.H - 1 - off) / s.stride_h + 1);
    p_hi[r] = std::max(p_hi[r], p_lo[r]);
  }
#pragma omp parallel for collapse(3) schedule(static) if (s.N * s.K * ODPQ * TRS > 16 * kParallelGrain) num_threads(max_threads())
  for (index_t n = 0; n < s.N; ++n)
    for (index_t k = 0; k < s.K; ++k)
      for (index_t od = 0; od < s.OD; ++od) {
        const float* xc = x + (n * s.C + k / Kg) * DHW;
        const float* wk = w + k * TRS;
        float* yp = y + (n * s.K + k) * ODPQ + od * PQ;
        const float bias = b != nullptr ? b[k] : 0.0f;
        for (index_t i = 0; i < PQ; ++i) yp[i] = bias;
        for (index_t t = 0; t < s.T; ++t) {
          const index_t id = od * s.stride_d - s.pad_d + t * s.dil_d;
          if (id < 0 || id >= s.D) continue;
          for (index_t r = 0; r < s.R; ++r)
            for (index_t u = 0; u < s.S; ++u) {
              const float wv = wk[(t * s.R + r) * s.S + u];
              const index_t n_q = q_hi[u] - q_lo[u];
              if (n_q <= 0) continue;
              const float* xr = xc + id * HW + (p_lo[r] * s.stride_h + r * s.dil_h - s.pad_h) * s.W +
                                (q_lo[u] * sw + u * s.dil_w - s.pad_w);
              for (index_t p = p_lo[r]; p < p_hi[r]; ++p, xr += s.stride_h * s.W) {
                float* __restrict dst = yp + p * Q + q_lo[u];
                const float* __restrict src = xr;
#pragma omp simd
                for (index_t l = 0; l < n_q; ++l) dst[l] += wv * src[l * sw];
              }
            }
        }
      }
}

void depthwise_forward(const Conv3dShape& s, const float* x, const float* w, const float* b, float* y) {
  if (s.stride_w == 1) return depthwise_forward_t<1>(s, x, w, b, y);
  if (s.stride_w == 2) return depthwise_forward_t<2>(s, x, w, b, y);
  depthwise_forward_t<0>(s, x, w, b, y);
}

// Winograd mixes a whole patch into every output of its tile, so one inf or NaN would reach outputs
// that do not depend on it: such inputs take the GEMM path (conv.cpp's winograd_safe). One read.
bool all_finite(const float* p, index_t n) {
  float acc = 0.0f;  // p[i] * 0 is (+-)0 for finite p[i], NaN for inf or NaN
#pragma omp parallel for simd reduction(+ : acc) schedule(static) if (n > kParallelGrain) num_threads(max_threads())
  for (index_t i = 0; i < n; ++i) acc += p[i] * 0.0f;
  return acc == 0.0f;
}

index_t x_size(const Conv3dShape& s) { return s.N * s.C * s.D * s.H * s.W; }
index_t y_size(const Conv3dShape& s) { return s.N * s.K * s.OD * s.P * s.Q; }
index_t w_size(const Conv3dShape& s) { return s.K * (s.C / s.groups) * s.T * s.R * s.S; }

}  // namespace

index_t conv3d_workspace_floats(const Conv3dShape& s, ConvPass pass, int threads) {
  index_t n = needed_floats(s, geometry(s), pass, image_threads(s, threads));
  // Room for the GEMM path too: non-finite inputs fall back to it.
  if (winograd3d_applies(s, pass)) n = std::max(n, winograd3d_workspace_floats(s, pass, threads));
  if (slices_applies(s, pass)) n = std::max(n, slices_workspace_floats(s, pass, threads));
  return n;
}

bool conv3d_forward(const Conv3dShape& s, const float* x, const float* w, const float* b, float* y,
                    float* workspace, index_t workspace_floats) {
  if (winograd3d_applies(s, ConvPass::forward) && all_finite(w, w_size(s)) && all_finite(x, x_size(s)) &&
      winograd3d_forward(s, x, w, b, y, workspace, workspace_floats))
    return true;
  if (depthwise_applies(s) && !(s.T * s.R * s.S == 1 && is_plain(s))) {
    depthwise_forward(s, x, w, b, y);
    return true;
  }
  if (slices_applies(s, ConvPass::forward) && slices_forward(s, x, w, b, y, workspace, workspace_floats)) return true;
  const Geometry g = geometry(s);
  const int T = plan_threads(s, g, ConvPass::forward, workspace_floats);
  if (T == 0) return false;
  for_each_image(s, T, 0, workspace, [&](index_t n, int /*chunk*/, float* /*ws*/, bool inner) {
    for (index_t grp = 0; grp < s.groups; ++grp) {
      const float* xg = x + (n * s.C + grp * g.Cg) * g.DHW;
      const float* wg = w + grp * g.Kg * g.CTRS;
      float* yg = y + (n * s.K + grp * g.Kg) * g.ODPQ;
      float beta = 0.0f;
      if (b != nullptr) {  // start from the bias and let sgemm accumulate onto it
        for (index_t k = 0; k < g.Kg; ++k) fill(yg + k * g.ODPQ, g.ODPQ, b[grp * g.Kg + k], inner);
        beta = 1.0f;
      }
      if (g.direct) {
        sgemm(false, false, g.Kg, g.ODPQ, g.Cg, 1.0f, wg, g.Cg, xg, g.DHW, beta, yg, g.ODPQ);
        continue;
      }
      // Column tiles whose packed B block stays in L2 (the whole image at once: 1.5x slower on
      // 32 -> 64 3x3x3 16^3, its 864 x 1024 blocks spilling).
      for (index_t j0 = 0; j0 < g.ODPQ; j0 += g.fwd_tile) {
        const ImplicitB ib{&s, &g, xg, j0};
        sgemm_packed_b(false, g.Kg, std::min(g.fwd_tile, g.ODPQ - j0), g.CTRS, 1.0f, wg, g.CTRS,
                       {pack_implicit_b, &ib}, beta, yg + j0, g.ODPQ);
      }
    }
  });
  return true;
}

bool conv3d_backward_data(const Conv3dShape& s, const float* grad_out, const float* w, float* grad_x,
                          float* workspace, index_t workspace_floats) {
  if (winograd3d_applies(s, ConvPass::backward_data) && all_finite(w, w_size(s)) &&
      all_finite(grad_out, y_size(s)) && winograd3d_backward_data(s, grad_out, w, grad_x, workspace, workspace_floats))
    return true;
  if (slices_applies(s, ConvPass::backward_data) &&
      slices_backward_data(s, grad_out, w, grad_x, workspace, workspace_floats))
    return true;
  const Geometry g = geometry(s);
  const int T = plan_threads(s, g, ConvPass::backward_data, workspace_floats);
  if (T == 0) return false;
  for_each_image(s, T, slice_floats(g, ConvPass::backward_data), workspace,
                 [&](index_t n, int /*chunk*/, float* ws, bool inner) {
                   for (index_t grp = 0; grp < s.groups; ++grp) {
                     const float* gog = grad_out + (n * s.K + grp * g.Kg) * g.ODPQ;
                     const float* wg = w + grp * g.Kg * g.CTRS;
                     float* gxg = grad_x + (n * s.C + grp * g.Cg) * g.DHW;
                     if (g.direct) {  // grad_x = W^T grad_out
                       sgemm(true, false, g.Cg, g.DHW, g.Kg, 1.0f, wg, g.Cg, gog, g.ODPQ, 0.0f, gxg, g.DHW);
                       continue;
                     }
                     fill(gxg, g.Cg * g.DHW, 0.0f, inner);
                     for (index_t j0 = 0; j0 < g.ODPQ; j0 += g.tile) {
                       const index_t j1 = std::min(g.ODPQ, j0 + g.tile), jn = j1 - j0;
                       sgemm(true, false, g.CTRS, jn, g.Kg, 1.0f, wg, g.CTRS, gog + j0, g.ODPQ, 0.0f, ws, jn);
                       col2im_add(s, g, ws, jn, j0, j1, gxg, inner);
                     }
                   }
                 });
  return true;
}

bool conv3d_backward_weight(const Conv3dShape& s, const float* grad_out, const float* x, float* grad_w,
                            float* grad_b, float* workspace, index_t workspace_floats) {
  if (winograd3d_applies(s, ConvPass::backward_weight) && all_finite(grad_out, y_size(s)) &&
      all_finite(x, x_size(s)) && winograd3d_backward_weight(s, grad_out, x, grad_w, workspace, workspace_floats)) {
    if (grad_b != nullptr) channel_bias_grad(grad_out, grad_b, s.N, s.K, s.OD * s.P * s.Q);
    return true;
  }
  if (slices_applies(s, ConvPass::backward_weight) &&
      slices_backward_weight(s, grad_out, x, grad_w, workspace, workspace_floats)) {
    if (grad_b != nullptr) channel_bias_grad(grad_out, grad_b, s.N, s.K, s.OD * s.P * s.Q);
    return true;
  }
  const Geometry g = geometry(s);
  const int T = plan_threads(s, g, ConvPass::backward_weight, workspace_floats);
  if (T == 0) return false;
  const index_t slice = slice_floats(g, ConvPass::backward_weight), gw_size = s.K * g.CTRS;
  float* partials = workspace + T * slice;  // chunk t's grad_w (or per group grad_w^T) at t * gw_size
  for_each_image(s, T, slice, workspace, [&](index_t n, int t, float* ws, bool inner) {
    float* acc = partials + t * gw_size;
    const bool first = n == s.N * t / T;  // a chunk's first image overwrites its partial sum
    for (index_t grp = 0; grp < s.groups; ++grp) {
      const float* gog = grad_out + (n * s.K + grp * g.Kg) * g.ODPQ;
      const float* xg = x + (n * s.C + grp * g.Cg) * g.DHW;
      float* accg = acc + grp * g.Kg * g.CTRS;
      // acc (+)= grad_out[:, cols] * B^T, B (CTRS x kd) the im2col columns (or x when direct).
      auto product = [&](const float* go, const float* B, index_t ldb, index_t kd, bool overwrite) {
        const float beta = overwrite ? 0.0f : 1.0f;
        if (g.gw_transposed)
          sgemm(false, true, g.CTRS, g.Kg, kd, 1.0f, B, ldb, go, g.ODPQ, beta, accg, g.Kg);
        else
          sgemm(false, true, g.Kg, g.CTRS, kd, 1.0f, go, g.ODPQ, B, ldb, beta, accg, g.CTRS);
      };
      if (g.direct) {
        product(gog, xg, g.DHW, g.DHW, first);
        continue;
      }
      for (index_t j0 = 0; j0 < g.ODPQ; j0 += g.tile) {
        const index_t j1 = std::min(g.ODPQ, j0 + g.tile), jn = j1 - j0;
        im2col(s, g, xg, j0, j1, ws, jn, inner);
        product(gog + j0, ws, jn, jn, first && j0 == 0);
      }
    }
  });
  // grad_w = the partial sums added in chunk order (the same bits on every run), transposed back
  // per group when accumulated as grad_w^T.
  const index_t per_group = g.Kg * g.CTRS;
#pragma omp parallel for schedule(static) if (gw_size > kParallelGrain) num_threads(max_threads())
  for (index_t i = 0; i < gw_size; ++i) {
    index_t src = i;
    if (g.gw_transposed) {
      const index_t grp = i / per_group, k = (i % per_group) / g.CTRS, row = i % g.CTRS;
      src = grp * per_group + row * g.Kg + k;
    }
    float v = partials[src];
    for (int t = 1; t < T; ++t) v += partials[t * gw_size + src];
    grad_w[i] = v;
  }
  if (grad_b != nullptr) channel_bias_grad(grad_out, grad_b, s.N, s.K, g.ODPQ);
  return true;
}

}  // namespace fastlayers::cpu
