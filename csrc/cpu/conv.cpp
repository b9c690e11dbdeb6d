#include "cpu/conv.h"

// Which path runs where. First the per-image kernels on HWC copies or with pixels in the lanes
// (each predicate below says where): conv_pixels (pixels_per_call), the channels-in-lanes Winograd
// (conv_winograd_c16.h, wino16_per_call; backward-data as the forward of grad_out, or for valid
// layers as the forward's adjoint, wino16_bd_adjoint; strided forwards through a space-to-depth
// copy, s2d_per_call), conv_hwc (hwc_per_call, hwc_bd_per_call).
// Then, in this order:
//   direct    pixel-vectorised direct kernel (conv_direct.h, direct_applies): small images
//   winograd  F(4x4,3x3) (conv_winograd.h): 3x3, stride 1, finite inputs, enough channels/tiles
//   smallc    AVX-512 direct convolution vectorised over output channels (conv_smallc.h;
//             smallc_applies says where, with its A/B figures against the GEMM paths); 3x3 stride-1
//             layers over 16-32 channels go to it before the two above (smallc_preferred)
//   GEMM      im2col + our sgemm, implicit GEMM (sgemm packs B straight from the image), or plain
//             GEMM on x for 1x1; backward-data with W^T packed once per call (bd_prepacked) or
//             with a pixel-major column matrix for wide kernels (bd_pixel_major) (this file)
//   layer                          fwd        bwd-data          bwd-weight
//   a 100x1->32 28x28 5x5          direct     packed GEMM       direct
//   b 100x32->64 12x12 5x5         wino16     wino16 adjoint    wino16
//   c 32x64->64 56x56 3x3 p1       wino16     wino16            wino16
//   d 16x128->128 28x28 3x3 p1     wino16     wino16            wino16
//   e 8x3->64 224x224 11x11 s4 p2  wino16 s2d pixel-major GEMM  direct
//   f 32x256->64 28x28 1x1         GEMM on x  GEMM on x         GEMM on x
// Ratios (PyTorch 2.13 CPU time / ours, > 1 means ours is faster) are in benchmarks/results and in
// conv_winograd.h / conv_smallc.h; before these two paths every layer ran on GEMM at 0.6-1.3.
// The GEMM paths: implicit GEMM beat im2col + sgemm for unit column stride and >= 64 im2col rows
// (b 3.57 -> 3.30 ms at 2 threads); small P*Q batches several images per GEMM. Threads: over
// images when N >= threads (one workspace slice each), else inside sgemm / im2col / the kernels;
// whole-batch products (use_whole_batch: <= 8x8 maps, large filters) always inside sgemm.

#include <omp.h>

#include <algorithm>
#include <cassert>

#include "common/checked.h"
#include "cpu/align.h"
#include "cpu/conv_col2im.h"
#include "cpu/conv_direct.h"
#include "cpu/conv_hwc.h"
#include "cpu/cpu_features.h"
#include "cpu/conv_smallc.h"
#include "cpu/conv_winograd.h"
#include "cpu/conv_pixels.h"
#include "cpu/conv_winograd_c16.h"
#include "cpu/gemm.h"
#include "cpu/parallel.h"

namespace fastlayers::cpu {

namespace {

// The im2col matrix of one (image, group) has CRS = C/groups * R * S rows and P*Q columns. It is
// built a tile of columns at a time so that the workspace stays bounded (a 512x512 image would
// otherwise need hundreds of MB) and the tile is still in cache when sgemm reads it. When P*Q is
// small (LeNet: 24x24 and 8x8), several images share one GEMM in every pass (their columns side by
// side, grad_out staged next to them in the backward passes), so each sgemm call has a useful
// size and packs the weights once for `nb` images (backward-data of LeNet conv2: 10.4 -> 8.2 ms,
// one thread). Stride-1 unpadded layers take a plain im2col/col2im with no bounds logic
// (LeNet conv2 forward 9.6 -> 7.2 ms, backward-weight 9.7 -> 7.3 ms).
constexpr index_t kColsTileFloats = index_t{1} << 19;  // 2 MiB per thread
constexpr index_t kMinTileColumns = 128;

struct Geometry {
  index_t Cg, Kg, CRS, PQ, HW;
  index_t tile;  // columns per sgemm call: a tile of one image's P*Q, or nb whole images
  index_t nb;    // images per sgemm call (> 1 when P*Q is small)
  bool direct;   // 1x1, stride 1, no padding: the input already is the im2col matrix
  bool gw_transposed;  // backward-weight computes grad_w^T (CRS x K/groups): see conv2d_backward_weight
  bool implicit;       // forward packs sgemm's B panels from the image (pack_implicit_b): no im2col tile
  bool smallc;         // direct AVX-512 kernel for few input channels (conv_smallc.h), one image at a time
  bool whole_batch;    // nb images per GEMM with the threads inside sgemm, not over images (use_whole_batch)
  bool smallc_bd;      // backward-data by the direct kernel for narrow unpadded layers (conv_smallc.h)
  bool fwd_pixel_major;  // forward of one image, small map, large filters: y^T = cols^T W^T (use_pixel_major_fwd)
  bool bd_prepacked;   // backward-data, nb > 1, plain geometry: W^T packed once, col2im per row block
  bool bd_pixel_major; // backward-data, one image per GEMM: the column matrix pixel-major (col2im_runs)
  index_t bd_rows;     // its rows of the column matrix per product (a multiple of sgemm_packed_a_rows())
  index_t bd_shared;   // its packed W^T, all groups (shared by the threads)
  index_t bd_packed_b; // its grad_out of one image and group packed for sgemm_prepacked_ab (+ alignment slack)
  index_t smallc_slice, smallc_shared;  // its workspace: per thread, and once per call
};

// Implicit GEMM (forward only) where it measured faster: unit column stride (runs of the image
// rows are copied, not gathered; layer e's stride-4 gather was slower at 2 threads) and enough
// im2col rows to amortise the per-panel set-up (layer a, 25 rows, was 4-7% slower at 2 threads).
// Backward-weight packs im2col transposed; doing that in the packer (scalar transpose) was 25-40%
// slower than im2col + sgemm's AVX-512 transposing packer, so it keeps the column matrix.
bool use_implicit(const Conv2dShape& s, const Geometry& g) { return s.stride_w == 1 && g.CRS >= 64; }

// Backward-data of a stride-1 convolution is the forward convolution of grad_out with the filters
// transposed (C and K swapped) and flipped, padded by dil*(R-1) - pad (>= 0 needed): t is that
// convolution's shape. The direct forward path runs it where it applies and the output is about
// the size of the input ("same" padding): it computes H*W output pixels where the GEMM path does
// P*Q pixels' worth of work, so LeNet conv2 (12x12 from 8x8) took 2.2x longer, while 5x5 p2 on
// 28x28 went 32 -> 23 ms and 3x3 p1 on 28x28 / 56x56 40 -> 34 / 79 -> 69 ms (one thread).
bool transposed_shape(const Conv2dShape& s, Conv2dShape& t) {
  const index_t ph = s.dil_h * (s.R - 1) - s.pad_h, pw = s.dil_w * (s.S - 1) - s.pad_w;
  if (s.stride_h != 1 || s.stride_w != 1 || ph < 0 || pw < 0) return false;
  if (10 * s.H * s.W > 11 * s.P * s.Q) return false;
  t = Conv2dShape{s.N, s.K, s.P, s.Q, s.C, s.R, s.S, s.H, s.W, 1, 1, ph, pw, s.dil_h, s.dil_w, s.groups};
  return true;
}

// Backward-data's column matrix pixel-major: colsT (pixels x CRS) = grad_out^T W, and each pixel
// adds its taps back as runs of S floats of grad_x rows (conv_col2im.h) instead of col2im_add's
// strided scatter. Interleaved at 1 thread against that path: AlexNet conv1 (11x11 stride 4)
// 16.3 -> 15.0 ms, 16 -> 64 11x11 s4 on 64x64 1.14x, 9x9 s2 / s3 and 11x11 s2 1.03-1.04x; with
// shorter runs it lost (7x7 s2 0.86x, 3x3 s2 0.80x) or tied (5x5 and 3x3 stride 1).
constexpr index_t kPixelMajorFloats = index_t{1} << 16;
bool use_pixel_major(const Conv2dShape& s) { return s.dil_w == 1 && s.S >= 9; }

// Whole-batch GEMMs: on small maps with large filters (ResNet-18's 512-channel 7x7 layers) one
// image's P*Q columns make a narrow GEMM that packs megabytes of weights for little work, and
// threads over images each pack them again. There the images go side by side, about
// kWholeBatchColumns columns per GEMM, with the threads inside sgemm. 512->512 7x7 3x3, N=16,
// 2 threads, before / after (ms): forward 24.3 / 22.0, backward-data 37.1 / 21.8 (the direct
// kernel: 26-34), backward-weight 26.2 / 21.0; 256->512 stride 2: backward-data 15.6 / 12.0.
// Not past 8x8: on 256->256 14x14 one image per thread's GEMM was faster (forward 23 / 30 ms).
constexpr index_t kWholeBatchColumns = 1024;
constexpr index_t kWholeBatchFilterFloats = index_t{1} << 19;  // 2 MiB of filters per group

index_t ceil_div(index_t a, index_t b) { return (a + b - 1) / b; }

bool use_whole_batch(const Conv2dShape& s, const Geometry& g) {
  return !g.direct && s.N > 1 && g.PQ <= 64 && g.Kg * g.CRS >= kWholeBatchFilterFloats;
}

// The forward of one image on a small map with large filters (ResNet-18's 512-channel 7x7 layers at
// batch 1) as y^T (P*Q x K) = cols^T W^T: P*Q = 49 pixels make 4 row tiles of the 14-row
// micro-kernel (88% used) where the usual y = W cols makes 2 column panels of 32 (77%), and the
// K = 512 output channels fill whole 32-column panels. cols^T is built pixel-major.
// 256->512 3x3 stride 2 on 14x14, N=1, 2 threads: 0.68-0.92 ms against 0.85-1.13 the usual way;
// 512->512 on 7x7 ties with the direct kernel (1.50-1.70 / 1.50-1.85 ms), which keeps it.
bool use_pixel_major_fwd(const Conv2dShape& s, const Geometry& g) {
  return !g.direct && !g.smallc && s.N == 1 && g.PQ <= 64 && g.Kg * g.CRS >= kWholeBatchFilterFloats;
}

Geometry geometry(const Conv2dShape& s, ConvPass pass) {
  Geometry g{};
  g.Cg = s.C / s.groups;
  g.Kg = s.K / s.groups;
  g.CRS = g.Cg * s.R * s.S;
  g.PQ = s.P * s.Q;
  g.HW = s.H * s.W;
  g.direct = s.R == 1 && s.S == 1 && s.stride_h == 1 && s.stride_w == 1 && s.pad_h == 0 && s.pad_w == 0;
  const index_t cols = std::max(kMinTileColumns, kColsTileFloats / std::max<index_t>(g.CRS, 1));
  // A block of nb images needs (CRS + K/groups) * nb*P*Q floats (im2col + staging): keep it in budget.
  const index_t block_cols = kColsTileFloats / (g.CRS + g.Kg);
  const bool batch = !g.direct && 2 * g.PQ <= block_cols;
  g.nb = batch ? std::max<index_t>(1, std::min(block_cols / g.PQ, s.N)) : 1;
  g.whole_batch = use_whole_batch(s, g);
  if (g.whole_batch) g.nb = std::min(s.N, ceil_div(kWholeBatchColumns, g.PQ));
  g.tile = g.nb > 1 ? g.nb * g.PQ : std::min(g.PQ, cols);
  g.gw_transposed = g.CRS < 64 && g.CRS < g.Kg;
  g.implicit = pass == ConvPass::forward && !g.direct && use_implicit(s, g);
  Conv2dShape t;
  if (pass == ConvPass::backward_data)  // as the forward convolution of grad_out (stride 1 only)
    g.smallc = !g.direct && transposed_shape(s, t) && smallc_applies(t, ConvPass::forward);
  else
    g.smallc = !g.direct && smallc_applies(s, pass);
  if (g.smallc) {
    // Forward and backward-data: one image at a time; backward-weight: a thread's whole chunk of
    // images per call (partial sums kept across images).
    g.nb = pass == ConvPass::backward_weight ? std::max<index_t>(s.N, 1) : 1;
    g.implicit = false;
    const bool bd = pass == ConvPass::backward_data;
    g.smallc_slice = bd ? smallc_slice_floats(t, ConvPass::forward) : smallc_slice_floats(s, pass);
    g.smallc_shared = bd ? smallc_shared_floats(t, ConvPass::forward) : smallc_shared_floats(s, pass);
  }
  g.smallc_bd = pass == ConvPass::backward_data && !g.direct && !g.smallc && smallc_backward_data_applies(s);
  if (g.smallc_bd) {  // one image at a time, filters packed once per call, no per-thread scratch
    g.nb = 1;
    g.smallc_shared = smallc_backward_data_shared_floats(s);
    g.smallc_slice = 0;
  }
  if (g.smallc || g.smallc_bd) g.whole_batch = false;
  g.fwd_pixel_major = pass == ConvPass::forward && use_pixel_major_fwd(s, g);
  if (g.fwd_pixel_major) g.implicit = false;
  g.bd_prepacked = pass == ConvPass::backward_data && !g.direct && !g.smallc && !g.smallc_bd && g.nb > 1 && is_plain(s);
  g.bd_pixel_major = pass == ConvPass::backward_data && !g.direct && !g.smallc && !g.smallc_bd && !g.bd_prepacked &&
                     g.nb == 1 && use_pixel_major(s);
  if (g.bd_pixel_major)  // pixels per product: ~256 KiB of column matrix, a multiple of 14 rows
    g.tile = std::min(g.PQ, std::max<index_t>(14, kPixelMajorFloats / g.CRS / 14 * 14));
  if (g.bd_prepacked) {  // about 16 KiB of column rows per product: they stay in L1 for col2im
    const index_t mr = sgemm_packed_a_rows();
    g.bd_rows = std::min(std::max(mr, 4096 / g.PQ / mr * mr), (g.CRS + mr - 1) / mr * mr);
    g.bd_shared = s.groups * sgemm_packed_a_floats(g.CRS, g.Kg);
    g.bd_packed_b = sgemm_packed_b_floats(g.Kg, g.PQ) + kAlignSlackFloats;
  }
  return g;
}

// Parallel over images (one workspace slice per thread, sgemm single-threaded inside the region)
// when there are at least as many images as threads; otherwise one image at a time and sgemm and
// im2col parallelise inside.
int image_threads(const Conv2dShape& s, int threads) { return (threads > 1 && s.N >= threads) ? threads : 1; }
int gemm_threads(const Conv2dShape& s, const Geometry& g, int threads) {
  return g.whole_batch || g.fwd_pixel_major ? 1 : image_threads(s, threads);
}

// Per thread: the im2col tile, and with nb > 1 a (K/groups x tile) staging matrix for the forward
// GEMM's output or the backward passes' grad_out (the nb images' rows are not adjacent there).
// Backward-weight with gw_transposed adds a (CRS x K/groups) matrix for grad_w^T.
index_t slice_floats(const Geometry& g, ConvPass pass) {
  if (g.smallc || g.smallc_bd) return g.smallc_slice;
  if (g.fwd_pixel_major) return g.PQ * (g.CRS + g.Kg);
  const index_t extra = (pass == ConvPass::backward_weight && g.gw_transposed) ? g.CRS * g.Kg : 0;
  if (g.direct) return extra;
  // bd_prepacked keeps the plain path's slice: it falls back to it when parallel inside an image.
  if (g.bd_prepacked) return std::max(g.bd_rows * g.PQ + g.bd_packed_b, g.CRS * g.tile + g.Kg * g.tile);
  if (g.implicit) return g.nb > 1 ? g.Kg * g.tile : 0;
  return g.CRS * g.tile + (g.nb > 1 ? g.Kg * g.tile : 0) + extra;
}

// Floats at the start of the workspace shared by all threads: the smallc forward's filters and tap
// offsets, or with bd_prepacked W^T of every group, packed for sgemm_prepacked_a.
index_t shared_floats(const Geometry& g, ConvPass /*pass*/) {
  if (g.bd_prepacked) return g.bd_shared;
  return g.smallc || g.smallc_bd ? g.smallc_shared : 0;
}

// -1 if the size does not fit in int64 (the checked geometry rules that out; checked anyway).
index_t needed_floats(const Conv2dShape& s, const Geometry& g, ConvPass pass, int T) {
  CheckedSize n = CheckedSize(shared_floats(g, pass)) + CheckedSize(T) * slice_floats(g, pass);
  if (pass == ConvPass::backward_weight) n += CheckedSize(T - 1) * s.K * g.CRS;  // partial grad_w, threads 1..T-1
  return n.value();
}

bool fits(index_t need, index_t workspace_floats) { return need >= 0 && need <= workspace_floats; }

// Threads over images that the workspace allows; 0 if it is too small even for one.
int plan_threads(const Conv2dShape& s, const Geometry& g, ConvPass pass, index_t workspace_floats) {
  int T = gemm_threads(s, g, max_threads());
  while (T > 1 && !fits(needed_floats(s, g, pass, T), workspace_floats)) --T;
  return fits(needed_floats(s, g, pass, T), workspace_floats) ? T : 0;
}

// For kernel column offset w_off = t*dil_w - pad_w: the output columns q with 0 <= q*sw + w_off < W.
void valid_q(const Conv2dShape& s, index_t w_off, index_t& q_lo, index_t& q_hi) {
  q_lo = w_off >= 0 ? 0 : ceil_div(-w_off, s.stride_w);
  q_hi = (s.W - 1 - w_off) < 0 ? 0 : std::min(s.Q, (s.W - 1 - w_off) / s.stride_w + 1);
  if (q_hi < q_lo) q_hi = q_lo;
}

// One output row p's share of an im2col row: columns q in [q, qe) of output row p, for a kernel tap
// whose valid columns are [q_lo, q_hi) (valid_q). Copies x or writes 0 (padding). `out[qq - q]` is
// column p*Q + qq. Kept branch-light: with small P*Q (LeNet: 8x8) this runs once per 8 floats.
inline void im2col_segment(const float* __restrict xrow, float* __restrict out, index_t q, index_t qe,
                           index_t q_lo, index_t q_hi, index_t sw, index_t w_off) {
  const index_t a = std::clamp(q_lo, q, qe), b = std::clamp(q_hi, a, qe);
  for (index_t qq = q; qq < a; ++qq) out[qq - q] = 0.0f;
  if (sw == 1) {
    // In blocks of 8: a plain loop becomes a memmove call, which costs more than it moves here.
    index_t qq = a;
    for (; qq + 8 <= b; qq += 8)
      for (int l = 0; l < 8; ++l) out[qq - q + l] = xrow[qq + w_off + l];
    for (; qq < b; ++qq) out[qq - q] = xrow[qq + w_off];
  } else {
    for (index_t qq = a; qq < b; ++qq) out[qq - q] = xrow[qq * sw + w_off];
  }
  for (index_t qq = b; qq < qe; ++qq) out[qq - q] = 0.0f;
}

// Columns [j0, j1) of the im2col matrix of one image and group: row (c, r, t), column j = p*Q + q
// holds x[c, p*sh - ph + r*dh, q*sw - pw + t*dw], 0 where that falls in the padding. Written to
// cols[row * ld + j - j0].
// A `#pragma omp parallel ... if (false)` region still costs a libgomp team set-up (~0.5 us, a
// malloc): the conv helpers run thousands of small loops per call (per image, per channel), so
// they skip OpenMP entirely when not parallel.
template <class F>
inline void maybe_parallel_for(bool parallel, index_t n, F body) {
  if (parallel) {
#pragma omp parallel for schedule(static) num_threads(max_threads())
    for (index_t i = 0; i < n; ++i) body(i);
  } else {
    for (index_t i = 0; i < n; ++i) body(i);
  }
}

// Plain geometry (is_plain), whole image (the LeNet layers): row (c, r, t) is the P x Q block of
// plane c at (r, t), copied a row at a time with no bounds logic at all.
template <int QC>  // QC > 0: Q known at compile time (a few vector moves per row); 0: any Q
void im2col_plain(const Conv2dShape& s, const float* x, index_t rows, float* cols, index_t ld, bool parallel) {
  const index_t RS = s.R * s.S, P = s.P, Q = QC > 0 ? QC : s.Q, W = s.W;
  maybe_parallel_for(parallel, rows, [&](index_t row) {
    const index_t c = row / RS, r = (row / s.S) % s.R, t = row % s.S;
    const float* __restrict src = x + (c * s.H + r) * W + t;
    float* __restrict out = cols + row * ld;
    for (index_t p = 0; p < P; ++p, src += W, out += Q) {
#pragma omp simd
      for (index_t q = 0; q < Q; ++q) out[q] = src[q];
    }
  });
}

void im2col(const Conv2dShape& s, const float* x, index_t Cg, index_t j0, index_t j1, float* cols,
            index_t ld, bool parallel) {
  const index_t RS = s.R * s.S, rows = Cg * RS, sw = s.stride_w, Q = s.Q;
  if (j0 == 0 && j1 == s.P * Q && is_plain(s)) {
    if (Q == 8) return im2col_plain<8>(s, x, rows, cols, ld, parallel);
    if (Q == 24) return im2col_plain<24>(s, x, rows, cols, ld, parallel);
    return im2col_plain<0>(s, x, rows, cols, ld, parallel);
  }
  assert(0 <= j0 && j0 < j1 && j1 <= s.P * Q);
  const index_t p0 = j0 / Q, p1 = (j1 - 1) / Q;  // output rows touched; first and last may be partial
  maybe_parallel_for(parallel, rows, [&](index_t row) {
    const index_t c = row / RS, r = (row / s.S) % s.R, t = row % s.S;
    const float* xc = x + c * s.H * s.W;
    const index_t h_off = r * s.dil_h - s.pad_h, w_off = t * s.dil_w - s.pad_w;
    index_t q_lo, q_hi;
    valid_q(s, w_off, q_lo, q_hi);
    float* out = cols + row * ld;  // out[j - j0] is column j
    for (index_t p = p0; p <= p1; ++p) {
      const index_t q = p == p0 ? j0 - p * Q : 0, qe = p == p1 ? j1 - p * Q : Q;
      const index_t ih = p * s.stride_h + h_off;
      float* seg = out + (p * Q + q - j0);  // column p*Q + q
      if (ih < 0 || ih >= s.H) {
        for (index_t qq = q; qq < qe; ++qq) seg[qq - q] = 0.0f;
      } else {
        im2col_segment(xc + ih * s.W, seg, q, qe, q_lo, q_hi, sw, w_off);
      }
    }
  });
}

// The adjoint of im2col: grad_x[c, ih, iw] += cols[row, j] over columns [j0, j1). Parallel over
// channels, so no two threads write the same element and the summation order is fixed.
template <int QC>
void col2im_add_plain(const Conv2dShape& s, const float* cols, index_t ld, index_t Cg, float* gx, bool parallel) {
  const index_t P = s.P, Q = QC > 0 ? QC : s.Q, W = s.W;
  // Taps t outermost: consecutive read-modify-writes then hit either different rows or exactly the
  // same floats (r -> r+1), which store forwarding handles; with t innermost they overlap by all
  // but one float, which it cannot (a stall per row: col2im was 20% of LeNet conv2 backward-data).
  maybe_parallel_for(parallel, Cg, [&](index_t c) {
    for (index_t t = 0; t < s.S; ++t)
      for (index_t r = 0; r < s.R; ++r) {
        const float* __restrict in = cols + ((c * s.R + r) * s.S + t) * ld;
        float* __restrict g = gx + (c * s.H + r) * W + t;
        for (index_t p = 0; p < P; ++p, g += W, in += Q) {
#pragma omp simd  // cols and grad_x never overlap; without this GCC kept it scalar
          for (index_t q = 0; q < Q; ++q) g[q] += in[q];
        }
      }
  });
}

void col2im_add(const Conv2dShape& s, const float* cols, index_t ld, index_t Cg, index_t j0, index_t j1,
                float* gx, bool parallel) {
  const index_t sw = s.stride_w, Q = s.Q;
  if (j0 == 0 && j1 == s.P * Q && is_plain(s)) {
    if (Q == 8) return col2im_add_plain<8>(s, cols, ld, Cg, gx, parallel);
    if (Q == 24) return col2im_add_plain<24>(s, cols, ld, Cg, gx, parallel);
    return col2im_add_plain<0>(s, cols, ld, Cg, gx, parallel);
  }
  assert(0 <= j0 && j0 < j1 && j1 <= s.P * Q);
  const index_t p0 = j0 / Q, p1 = (j1 - 1) / Q;
  maybe_parallel_for(parallel, Cg, [&](index_t c) {
    float* gc = gx + c * s.H * s.W;
    for (index_t r = 0; r < s.R; ++r) {
      for (index_t t = 0; t < s.S; ++t) {
        const index_t row = (c * s.R + r) * s.S + t;
        const index_t h_off = r * s.dil_h - s.pad_h, w_off = t * s.dil_w - s.pad_w;
        index_t q_lo, q_hi;
        valid_q(s, w_off, q_lo, q_hi);
        const float* in = cols + row * ld;  // in[j - j0] is column j
        for (index_t p = p0; p <= p1; ++p) {
          const index_t ih = p * s.stride_h + h_off;
          if (ih < 0 || ih >= s.H) continue;
          const index_t q = p == p0 ? j0 - p * Q : 0, qe = p == p1 ? j1 - p * Q : Q;
          const index_t a = std::clamp(q_lo, q, qe), b = std::clamp(q_hi, a, qe);
          const float* __restrict seg = in + (p * Q + q - j0);  // column p*Q + q
          float* __restrict grow = gc + ih * s.W;
          if (sw == 1) {
#pragma omp simd  // as in col2im_add_plain: otherwise scalar
            for (index_t qq = a; qq < b; ++qq) grow[qq + w_off] += seg[qq - q];
          } else {
            for (index_t qq = a; qq < b; ++qq) grow[qq * sw + w_off] += seg[qq - q];
          }
        }
      }
    }
  });
}

// Rows [row0, row1) of a plain (is_plain) column matrix, cols[(row - row0) * ld + p*Q + q], into
// grad_x: the backward-data row blocks, while still in L1. A channel whose first row is in the
// block is overwritten (zero fill first), later blocks add. Taps t outer, as in col2im_add_plain
// (store forwarding).
template <int QC>
void col2im_rows_plain(const Conv2dShape& s, const float* cols, index_t ld, index_t row0, index_t row1, float* gx) {
  const index_t P = s.P, Q = QC > 0 ? QC : s.Q, W = s.W, RS = s.R * s.S;
  for (index_t c = row0 / RS; c * RS < row1; ++c) {
    if (c * RS >= row0) std::fill(gx + c * s.H * W, gx + (c + 1) * s.H * W, 0.0f);
    for (index_t t = 0; t < s.S; ++t)
      for (index_t r = 0; r < s.R; ++r) {
        const index_t row = (c * s.R + r) * s.S + t;
        if (row < row0 || row >= row1) continue;
        const float* __restrict in = cols + (row - row0) * ld;
        float* __restrict g = gx + (c * s.H + r) * W + t;
        for (index_t p = 0; p < P; ++p, g += W, in += Q) {
#pragma omp simd
          for (index_t q = 0; q < Q; ++q) g[q] += in[q];
        }
      }
  }
}

void col2im_rows(const Conv2dShape& s, const float* cols, index_t ld, index_t row0, index_t row1, float* gx) {
  if (s.Q == 8) return col2im_rows_plain<8>(s, cols, ld, row0, row1, gx);
  if (s.Q == 24) return col2im_rows_plain<24>(s, cols, ld, row0, row1, gx);
  return col2im_rows_plain<0>(s, cols, ld, row0, row1, gx);
}

// cols^T of one (image, group): row p (output pixel) holds its C/groups*R*S taps in W's order, zeros
// for taps in the padding. Parallel over pixels when `parallel`.
void im2col_pixel_major(const Conv2dShape& s, const float* x, index_t Cg, float* colsT, bool parallel) {
  const index_t Q = s.Q, RS = s.R * s.S, CRS = Cg * RS, HW = s.H * s.W;
  maybe_parallel_for(parallel, s.P * Q, [&](index_t p) {
    const index_t oh = p / Q, ow = p % Q;
    float* row = colsT + p * CRS;
    for (index_t r = 0; r < s.R; ++r) {
      const index_t ih = oh * s.stride_h - s.pad_h + r * s.dil_h;
      for (index_t t = 0; t < s.S; ++t) {
        const index_t iw = ow * s.stride_w - s.pad_w + t * s.dil_w;
        float* dst = row + r * s.S + t;
        if (ih >= 0 && ih < s.H && iw >= 0 && iw < s.W) {
          const float* src = x + ih * s.W + iw;
          for (index_t c = 0; c < Cg; ++c) dst[c * RS] = src[c * HW];
        } else {
          for (index_t c = 0; c < Cg; ++c) dst[c * RS] = 0.0f;
        }
      }
    }
  });
}

// Implicit GEMM (forward): sgemm packs its B panels (kc rows x NR columns of the im2col matrix)
// straight from the image through this callback, so the column matrix is never written and read
// back. Columns may span `nb` images side by side (column j: image j / PQ, pixel j % PQ).
struct ImplicitB {
  const Conv2dShape* s;
  const float* x;      // (image 0, group) channel 0
  index_t img_stride;  // floats between consecutive images (C*H*W)
  index_t PQ;
  index_t j_base;      // column 0 of the GEMM is column j_base of the im2col matrix
};

// A run of panel columns inside one output row: dst columns [d, d+len) are pixels (p, q..q+len)
// of one image; `off` is that image's x offset plus p*sh*W + q (the part that does not depend
// on the tap).
struct Segment {
  index_t off, p, q, len, d;
};

inline void copy_run(float* __restrict o, const float* __restrict src, index_t len) {
  // In blocks of 8: a plain loop becomes a memmove call, which costs more than it moves here.
  index_t l = 0;
  for (; l + 8 <= len; l += 8)
    for (int u = 0; u < 8; ++u) o[l + u] = src[l + u];
  for (; l < len; ++l) o[l] = src[l];
}

// Unit column stride only (use_implicit checks it): a run of output columns reads a contiguous
// run of an image row. kPlain: stride 1, no padding, no dilation (every tap of every pixel is
// inside the image), so each run is a bare copy from x + off + (row offset of the tap).
template <bool kPlain>
void pack_implicit_b_t(const ImplicitB& ib, index_t k0, index_t kc, index_t j0, index_t n, int nr, float* dst) {
  const Conv2dShape& s = *ib.s;
  const index_t Q = s.Q, H = s.H, W = s.W, HW = H * W, sh = s.stride_h;
  Segment seg[64 + 1];  // nr <= 64: at most one segment per column
  int ns = 0;
  for (index_t d = 0; d < n;) {
    const index_t j = ib.j_base + j0 + d, img = j / ib.PQ, pix = j % ib.PQ, p = pix / Q, q = pix % Q;
    const index_t len = std::min(Q - q, n - d);
    seg[ns++] = {img * ib.img_stride + p * sh * W + q, p, q, len, d};
    d += len;
  }
  // Run-major: the tap offsets of up to 512 rows first, then each run down the rows (a load of
  // the offset and a short copy per row; no per-row bookkeeping in the copy loops).
  constexpr index_t kChunk = 512;
  index_t rk[kChunk], hk[kChunk], wk[kChunk];  // x offset of the tap; its row / column offsets
  index_t c = k0 / (s.R * s.S), r = (k0 / s.S) % s.R, t = k0 % s.S;
  for (index_t kb = 0; kb < kc; kb += kChunk) {
    const index_t kn = std::min(kChunk, kc - kb);
    for (index_t k = 0; k < kn; ++k) {
      if constexpr (kPlain) {
        rk[k] = (c * H + r) * W + t;
      } else {
        hk[k] = r * s.dil_h - s.pad_h;
        wk[k] = t * s.dil_w - s.pad_w;
        rk[k] = c * HW + hk[k] * W + wk[k];
      }
      if (++t == s.S) {
        t = 0;
        if (++r == s.R) {
          r = 0;
          ++c;
        }
      }
    }
    float* d0 = dst + kb * nr;
    for (int i = 0; i < ns; ++i) {
      const Segment& g = seg[i];
      float* o = d0 + g.d;
      const index_t len = g.len;
      if constexpr (kPlain) {  // every tap of every pixel is inside the image
        const float* src = ib.x + g.off;
        if (len == 8) {
          for (index_t k = 0; k < kn; ++k) copy_run(o + k * nr, src + rk[k], 8);
        } else {
          for (index_t k = 0; k < kn; ++k) copy_run(o + k * nr, src + rk[k], len);
        }
        continue;
      }
      for (index_t k = 0; k < kn; ++k) {
        float* __restrict ok = o + k * nr;
        const index_t ih = g.p * sh + hk[k];
        const index_t iw0 = g.q + wk[k], iw1 = iw0 + len - 1;
        if (ih < 0 || ih >= H) {
          for (index_t l = 0; l < len; ++l) ok[l] = 0.0f;
        } else if (iw0 >= 0 && iw1 < W) {  // whole run inside the image
          copy_run(ok, ib.x + (rk[k] + g.off), len);
        } else {
          const index_t row = rk[k] + g.off - iw0;  // the image row starts at x + row
          for (index_t l = 0; l < len; ++l) {
            const index_t iw = iw0 + l;
            ok[l] = (iw >= 0 && iw < W) ? ib.x[row + iw] : 0.0f;
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

void fill(float* p, index_t n, float v, bool parallel) {
  if (parallel && n > kParallelGrain) {
#pragma omp parallel for simd schedule(static) num_threads(max_threads())
    for (index_t i = 0; i < n; ++i) p[i] = v;
  } else {
    std::fill(p, p + n, v);
  }
}

// Runs body(n, nbb, chunk, workspace_slice, inner_parallel) for blocks of nbb <= g.nb consecutive
// images. With T > 1 the images are cut into T static chunks (chunk t is images
// [t*N/T, (t+1)*N/T) with workspace slice t), one per thread; a smaller team (called from inside
// another parallel region) takes several chunks each, so the result does not depend on the team
// OpenMP actually gives. With T == 1, one block at a time, parallel inside.
template <class Body>
void for_each_block(const Conv2dShape& s, const Geometry& g, ConvPass pass, int T, float* workspace, Body body) {
  const index_t slice = slice_floats(g, pass);
  auto chunk = [&](int t, index_t n0, index_t n1, float* ws, bool inner) {
    for (index_t n = n0; n < n1; n += g.nb) body(n, std::min(g.nb, n1 - n), t, ws, inner);
  };
  if (T > 1) {
#pragma omp parallel num_threads(T)
    for (int t = omp_get_thread_num(); t < T; t += omp_get_num_threads())
      chunk(t, s.N * t / T, s.N * (t + 1) / T, workspace + t * slice, false);
  } else {
    chunk(0, 0, s.N, workspace, max_threads() > 1 && !omp_in_parallel());
  }
}

}  // namespace

// Winograd's transforms mix a whole input patch into every output of its tile, so one inf or NaN
// would turn outputs that do not depend on it NaN too. Such inputs take the GEMM path, where every
// output depends on its own window only. The scan costs ~1% of a Winograd call (one read of x).
static bool winograd_safe(const float* x, index_t nx, const float* w, index_t nw) {
  auto finite = [](const float* p, index_t n) {
    float acc = 0.0f;  // p[i] * 0 is (+-)0 for finite p[i], NaN for inf or NaN
#pragma omp parallel for simd reduction(+ : acc) schedule(static) if (n > kParallelGrain) num_threads(max_threads())
    for (index_t i = 0; i < n; ++i) acc += p[i] * 0.0f;
    return acc == 0.0f;
  };
  return finite(w, nw) && finite(x, nx);
}

// ---- conv_winograd_c16 per call (forward, and backward-data as the forward of grad_out with the
// filters transposed and flipped, padding R - 1 - p).
static bool bd_forward_shape(const Conv2dShape& s, Conv2dShape& t) {
  if (s.stride_h != 1 || s.stride_w != 1 || s.dil_h != 1 || s.dil_w != 1 || s.groups != 1) return false;
  if (s.pad_h > s.R - 1 || s.pad_w > s.S - 1) return false;
  // grad_x much larger than grad_out ("valid" convolutions): most of each patch is padding (the
  // course CNN's conv2, 8x8 -> 12x12, padding 4, batch 100, 1 thread: backward 12.2 ms on the
  // direct path, 13.2 this way); the Winograd's adjoint below takes those.
  if (10 * s.H * s.W > 11 * s.P * s.Q) return false;
  t = Conv2dShape{s.N, s.K, s.P, s.Q, s.C, s.R, s.S, s.H, s.W, 1, 1, s.R - 1 - s.pad_h, s.S - 1 - s.pad_w, 1, 1, 1};
  return true;
}

// Whether the forward convolution `f` (a forward pass, or backward-data's transposed shape) runs on
// conv_winograd_c16 per call. FASTLAYERS_CONV_WINO16 (read per call): "0" never, "1" wherever it
// can run (the tests reach it with small shapes this way), else by size: as the inference plan
// (up to 128 x 128 channels), with enough output pixels to pay for the filter transform per call.
static bool wino16_per_call(const Conv2dShape& f) {
  if (!winograd_c16_possible(f)) return false;
  const char* e = std::getenv("FASTLAYERS_CONV_WINO16");
  if (e != nullptr && (e[0] == '0' || e[0] == '1') && e[1] == '\0') return e[0] == '1';
  return f.C * f.K <= 128 * 128 && f.N * f.P * f.Q >= 1024;
}

// Backward-data on the Winograd's adjoint in x (winograd_c16_backward_data_call): the layers that
// the forward of grad_out above leaves for being "valid" (grad_x larger than grad_out), by the
// forward's own size rule (FASTLAYERS_CONV_WINO16 as there). Adjoint / other paths, paired medians
// of 15, AVX-512 (Zen 4), both on F(2x2, 5x5) then: the course CNN's conv2 (8x8 -> 12x12, batch
// 100) 0.53 at 1 and 2 threads (direct 5.85 -> 3.09 ms, 2.99 -> 1.60 ms; on F(4x4, 5x5) since, 1.58
// ms at 1 thread); on "same" layers the forward of grad_out stays ahead (3x3 on 28x28 / 14x14 /
// 56x56, 16-64 channels: the adjoint 1.15-1.22x slower, 5x5 on 12x12 0.93-0.98x).
static bool wino16_bd_adjoint(const Conv2dShape& s) {
  Conv2dShape t;
  return !(bd_forward_shape(s, t) && wino16_per_call(t)) && wino16_per_call(s);
}

// ---- Strided layers as a stride-1 3x3 convolution on a space-to-depth copy of x (forward): with
// stride st and R, S <= 3 st, x's st x st blocks become st^2 channels (C st^2 of them), the
// filters st x st blocks of taps (zero past R, S), and the convolution a "valid" 3x3 one on the
// channels-in-lanes Winograd: (3 st)^2 / (R S) times the multiplications, 4x fewer from F(4x4, 3x3).
// t: that 3x3 convolution (Hs = P + 2 block rows cover every tap's input).
static bool s2d_shape(const Conv2dShape& s, Conv2dShape& t) {
  const index_t st = s.stride_h;
  if (st < 2 || s.stride_w != st || s.dil_h != 1 || s.dil_w != 1 || s.groups != 1) return false;
  if ((s.R + st - 1) / st != 3 || (s.S + st - 1) / st != 3) return false;
  t = Conv2dShape{s.N, s.C * st * st, s.P + 2, s.Q + 2, s.K, 3, 3, s.P, s.Q, 1, 1, 0, 0, 1, 1, 1};
  return winograd_c16_possible(t);
}

// Whether the forward of `s` runs that way: FASTLAYERS_CONV_WINO16 as wino16_per_call; by default
// where the zero taps add at most 20 % (9 st^2 <= 1.2 R S). Other paths / this, 1 thread, paired
// medians of 9, AVX-512 (Zen 4): conv e (3 -> 64 11x11 stride 4, N=8, 224x224) 10.7 / 6.4 ms; 32
// -> 64 6x6 stride 2 on 56x56 (N=8) 2.22x; 16 -> 32 9x9 stride 3 on 57x57 1.85x; but 16 -> 32 5x5
// stride 2 on 28x28 (1.44x the taps) 1.03x, left to the other paths.
static bool s2d_per_call(const Conv2dShape& s, Conv2dShape& t) {
  if (!s2d_shape(s, t) || !wino16_per_call(t)) return false;
  const char* e = std::getenv("FASTLAYERS_CONV_WINO16");
  if (e != nullptr && e[0] == '1' && e[1] == '\0') return true;
  return 10 * 9 * s.stride_h * s.stride_h <= 12 * s.R * s.S;
}

// Images per space-to-depth copy: the batch goes through in chunks, so that the copy's room stays
// bounded (AlexNet's stem at batch 256 would otherwise take 160 MB); the filters' Winograd transform
// is redone per chunk (conv e: about 1 % of a chunk's time).
constexpr index_t kS2dChunk = 16;

// Workspace of the space-to-depth forward, in this order: its filters, one chunk's copy and the
// Winograd's room (t: s2d_shape's convolution, whole batch).
static index_t s2d_filter_floats(const Conv2dShape& t) { return round16(t.K * t.C * 9); }
static index_t s2d_chunk_floats(const Conv2dShape& t) { return round16(std::min(t.N, kS2dChunk) * t.C * t.H * t.W); }
static index_t s2d_floats(Conv2dShape t, int threads) {
  const index_t copies = s2d_filter_floats(t) + s2d_chunk_floats(t);
  t.N = std::min(t.N, kS2dChunk);
  return copies + winograd_c16_call_floats(t, threads);
}

// The space-to-depth filters of s2d_shape: wt[k][(c st + a) st + b][i][j] = w[k][c][st i + a][st j
// + b] (0 past R, S).
static void s2d_filters(const Conv2dShape& s, const Conv2dShape& t, const float* w, float* wt) {
  const index_t st = s.stride_h, C2 = t.C;
  for (index_t k = 0; k < s.K; ++k)
    for (index_t c2 = 0; c2 < C2; ++c2) {
      const index_t c = c2 / (st * st), a = (c2 / st) % st, b = c2 % st;
      for (index_t i = 0; i < 3; ++i)
        for (index_t j = 0; j < 3; ++j) {
          const index_t r = st * i + a, q = st * j + b;
          wt[((k * C2 + c2) * 3 + i) * 3 + j] = r < s.R && q < s.S ? w[((k * s.C + c) * s.R + r) * s.S + q] : 0.0f;
        }
    }
}

// The space-to-depth input of images [n0, n0 + count): xt[n - n0][(c st + a) st + b][u][v] =
// x[n][c][st u + a - pad_h][st v + b - pad_w] (0 outside x).
static void s2d_images(const Conv2dShape& s, const Conv2dShape& t, const float* x, index_t n0, index_t count,
                       float* xt) {
  const index_t st = s.stride_h, C2 = t.C;
  const index_t planes = count * C2, Hs = t.H, Ws = t.W;
#pragma omp parallel for schedule(static) if (planes * Hs * Ws > kParallelGrain) num_threads(max_threads())
  for (index_t pl = 0; pl < planes; ++pl) {
    const index_t n = n0 + pl / C2, c2 = pl % C2, c = c2 / (st * st), a = (c2 / st) % st, b = c2 % st;
    const float* src = x + (n * s.C + c) * s.H * s.W;
    float* dst = xt + pl * Hs * Ws;
    for (index_t u = 0; u < Hs; ++u) {
      const index_t h = st * u + a - s.pad_h;
      for (index_t v = 0; v < Ws; ++v) {
        const index_t wcol = st * v + b - s.pad_w;
        dst[u * Ws + v] = h >= 0 && h < s.H && wcol >= 0 && wcol < s.W ? src[h * s.W + wcol] : 0.0f;
      }
    }
  }
}

static index_t conv2d_workspace_floats_base(const Conv2dShape& s, ConvPass pass, int threads);

// Whether conv_pixels (output pixels in the lanes, at most 25 taps) runs this pass per call: the
// forward up to 16 output channels, and with more where its AVX2 blocked rows run (not 1x1: a
// plain GEMM on the other path, even there; 16 -> 32 1x1 on 14x14 batch 64 0.34 / 0.36 ms);
// backward-weight below 8 (where conv_smallc, channels in the lanes, takes none per call), and on
// AVX2 with any number but for 1x1 (kernels with 3 x 3 register blocks there). AVX2, other paths /
// this, paired median of 15, 1 thread: forward, the CNN's conv1 (1 -> 32 5x5) batch 100 1.23x,
// batch 1 1.18x; backward-weight the CNN's conv1 1.68-1.88x, the small ResNet's (1 -> 16 3x3 p1,
// batch 64) 2.83-2.92x, but 16 -> 32 1x1 stride 2 0.81x. FASTLAYERS_CONV_PIXELS=0 (read per call)
// turns it off. Before the blocked rows (session 25, AVX-512), one thread, ms, the other paths / this
// one, min of 7 interleaved: forward LeNet-5's conv1 (1 -> 6 5x5 p2, batch 64) 0.99 / 0.48, 1 -> 16
// 3x3 p1 batch 64 0.28 / 0.20, but the CNN's 1 -> 32 5x5 (batch 100) 1.36 / 1.49; backward-weight
// LeNet-5's conv1 1.77-2.04 / 0.46-0.48, 1 -> 8 5x5 0.55 / 0.54, 1 -> 16 0.59 / 0.99, 1 -> 32 1.21 /
// 2.13.
static bool pixels_per_call(const Conv2dShape& s, ConvPass pass) {
  const char* e = std::getenv("FASTLAYERS_CONV_PIXELS");
  if (e != nullptr && e[0] == '0' && e[1] == '\0') return false;
  if (pass == ConvPass::backward_data || !pixconv_possible(s)) return false;
  if (pass == ConvPass::backward_weight)  // (its kernel keeps at most kPixconvMaxTaps)
    return s.C * s.R * s.S <= kPixconvMaxTaps && (s.K < 8 || (active_isa() == Isa::avx2 && s.R * s.S > 1));
  return s.K <= 16 || (pixconv_blocked_rows(s) && s.R * s.S > 1);
}

// Whether conv_hwc (channels in the lanes on an HWC copy of each image) runs this forward, and this
// backward-weight, per call: by default (hwc_by_default: AVX2 machines, where conv_smallc is missing
// and im2col + GEMM ran at a third of the core) the layers the Winograd above does not take.
// Backward-weight, AVX2, 1 thread, batch 64, GEMM path / this, paired medians of 12: 16 -> 32 3x3
// stride 2 on 28x28 4.81 / 1.95 ms, 32 -> 64 on 14x14 4.75 / 1.80 ms, LeNet-5's conv2 1.17 / 0.44
// ms; 1x1 layers only at stride 2 with few channels (16 -> 32 1.44x, but 64 -> 256 and 256 -> 64
// stride 1 on 14x14 at batch 16 0.85x and 0.74x), no layers with fewer than 6 input channels or
// large filters (hwc_backward_weight_by_default, with the figures). FASTLAYERS_CONV_HWC (read per
// call): "0" never, "1" wherever it can run (the tests), else as said.
static bool hwc_per_call(const Conv2dShape& s, ConvPass pass = ConvPass::forward) {
  if (!hwc_possible(s)) return false;
  const char* e = std::getenv("FASTLAYERS_CONV_HWC");
  if (e != nullptr && (e[0] == '0' || e[0] == '1') && e[1] == '\0') return e[0] == '1';
  const bool by_default = pass == ConvPass::forward ? hwc_by_default(s) : hwc_backward_weight_by_default(s);
  return by_default && !wino16_per_call(s);
}

// Backward-data of stride-2 layers on conv_hwc's four phase sums (hwc_backward_data_by_default: AVX2,
// the smaller layers). FASTLAYERS_CONV_HWC as for the forward.
static bool hwc_bd_per_call(const Conv2dShape& s) {
  if (!hwc_bd_possible(s)) return false;
  const char* e = std::getenv("FASTLAYERS_CONV_HWC");
  if (e != nullptr && (e[0] == '0' || e[0] == '1') && e[1] == '\0') return e[0] == '1';
  return hwc_backward_data_by_default(s);
}

static index_t flipped_floats(const Conv2dShape& s) { return round16(s.K * s.C * s.R * s.S); }

index_t conv2d_workspace_floats(const Conv2dShape& s, ConvPass pass, int threads) {
  const index_t need = conv2d_workspace_floats_base(s, pass, threads);
  if (need < 0) return need;
  Conv2dShape t;
  if (pixels_per_call(s, pass)) return std::max(need, pixconv_call_floats(s, pass, threads));
  if (pass == ConvPass::forward && wino16_per_call(s)) return std::max(need, winograd_c16_call_floats(s, threads));
  if (pass == ConvPass::forward && s2d_per_call(s, t)) return std::max(need, s2d_floats(t, threads));
  if (pass == ConvPass::forward && hwc_per_call(s)) return std::max(need, hwc_call_floats(s, threads));
  if (pass == ConvPass::backward_data && hwc_bd_per_call(s))
    return std::max(need, hwc_backward_data_floats(s, threads));
  if (pass == ConvPass::backward_weight && hwc_per_call(s, pass))
    return std::max(need, hwc_backward_weight_floats(s, threads));
  if (pass == ConvPass::backward_weight && wino16_per_call(s))
    return std::max(need, winograd_c16_backward_weight_floats(s, threads));
  if (pass == ConvPass::backward_data && wino16_bd_adjoint(s))
    return std::max(need, winograd_c16_backward_data_floats(s, threads));
  if (pass == ConvPass::backward_data && bd_forward_shape(s, t) && wino16_per_call(t))
    return std::max(need, flipped_floats(s) + winograd_c16_call_floats(t, threads));
  return need;
}

// The other paths' workspace (the GEMM path's room always included: the others fall back to it).
static index_t conv2d_workspace_floats_base(const Conv2dShape& s, ConvPass pass, int threads) {
  assert(conv2d_shape_error(s) == nullptr);
  const Geometry gg = geometry(s, pass);
  index_t gemm = needed_floats(s, gg, pass, gemm_threads(s, gg, threads));
  if (gemm >= 0 && direct_applies(s, pass)) {  // conv_direct.h; the GEMM path's room stays (fallback)
    const index_t direct = direct_workspace_floats(s, pass, threads);
    gemm = direct < 0 ? -1 : std::max(gemm, direct);
  }
  // Room for the GEMM path too: non-finite inputs fall back to it (winograd_safe).
  if (gemm >= 0 && winograd_applies(s, pass)) {
    const index_t wino = winograd_workspace_floats(s, pass, threads);
    return wino < 0 ? -1 : std::max(gemm, wino);
  }
  return gemm;
}

// 3x3 stride-1 layers reducing over 16-32 channels per group, where conv_smallc's kernel (vectorised
// over output channels) takes the pass (geometry's smallc / smallc_bd): it beat the pixel-vectorised
// direct kernel (conv_direct.h) and Winograd at every batch measured (N=1, 8, 64; 1 and 2 threads),
// so those two leave such layers to it. Forward / backward-data ms, N=64, 2 threads, direct /
// Winograd / smallc: 16->16 28x28 1.53 / 1.76 / 1.33 and 1.48 / 1.83 / 1.32; 32->32 14x14 1.54 /
// 1.84 / 1.30 and 1.56 / 1.85 / 1.41 (1 thread 2.70 / 2.49 / 2.36); N=1, 2 threads 16->16: 42 /
// 56 / 32 us. At 64 channels Winograd stays ahead at N=64 (64->64 7x7: 1.50 against 1.72 ms).
static bool smallc_preferred(const Conv2dShape& s, ConvPass pass, const Geometry& g) {
  if (s.R != 3 || s.S != 3 || s.stride_h != 1 || s.stride_w != 1 || s.dil_h != 1 || s.dil_w != 1) return false;
  const index_t reduced = (pass == ConvPass::forward ? s.C : s.K) / s.groups;
  return reduced >= 16 && reduced <= 32 && (g.smallc || g.smallc_bd);
}

bool conv2d_forward(const Conv2dShape& s, const float* x, const float* w, const float* b, float* y,
                    float* workspace, index_t workspace_floats) {
  assert(conv2d_shape_error(s) == nullptr);  // the boundary checked it (common/conv_shape.h)
  if (pixels_per_call(s, ConvPass::forward) && pixconv_forward_call(s, x, w, b, y, workspace, workspace_floats)) return true;
  if (wino16_per_call(s) && winograd_c16_forward_call(s, x, w, b, y, workspace, workspace_floats)) return true;
  if (Conv2dShape t; s2d_per_call(s, t) && s2d_floats(t, 1) <= workspace_floats &&
                     winograd_safe(x, s.N * s.C * s.H * s.W, w, s.K * s.C * s.R * s.S)) {
    // (finite inputs only: the zero taps past R, S would meet a NaN or inf that the layer never reads)
    const index_t chunk = std::min(s.N, kS2dChunk);
    float* wt = workspace;
    float* xt = wt + s2d_filter_floats(t);
    float* rest = xt + s2d_chunk_floats(t);
    s2d_filters(s, t, w, wt);
    bool done = true;
    for (index_t n0 = 0; n0 < s.N && done; n0 += chunk) {
      Conv2dShape tc = t;
      tc.N = std::min(chunk, s.N - n0);
      s2d_images(s, t, x, n0, tc.N, xt);
      done = winograd_c16_forward_call(tc, xt, wt, b, y + n0 * s.K * s.P * s.Q, rest, workspace + workspace_floats - rest);
    }
    if (done) return true;  // (else the paths below write all of y)
  }
  if (hwc_per_call(s) && hwc_forward_call(s, x, w, b, y, workspace, workspace_floats)) return true;
  const Geometry g = geometry(s, ConvPass::forward);  // the GEMM-side paths' plan; also says if smallc takes it
  const bool smallc_first = smallc_preferred(s, ConvPass::forward, g);
  if (!smallc_first && direct_applies(s, ConvPass::forward) &&
      direct_forward(s, x, w, b, y, false, workspace, workspace_floats))
    return true;
  if (!smallc_first && winograd_applies(s, ConvPass::forward) && winograd_safe(x, s.N * s.C * s.H * s.W, w, s.K * s.C / s.groups * 9) &&
      winograd_forward(s, x, w, b, y, workspace, workspace_floats))
    return true;
  const int T = plan_threads(s, g, ConvPass::forward, workspace_floats);
  if (T == 0) return false;
  if (g.smallc) {  // filters repacked once, then one image (and group) at a time
    smallc_prepare_forward(s, w, workspace);
    for_each_block(s, g, ConvPass::forward, T, workspace + g.smallc_shared,
                   [&](index_t n, index_t /*nbb*/, int /*chunk*/, float* ws, bool inner) {
                     for (index_t grp = 0; grp < s.groups; ++grp)
                       smallc_forward_image(s, x + (n * s.C + grp * g.Cg) * g.HW, workspace, grp,
                                            b != nullptr ? b + grp * g.Kg : nullptr,
                                            y + (n * s.K + grp * g.Kg) * g.PQ, ws, inner);
                   });
    return true;
  }
  if (g.fwd_pixel_major) {  // y^T = cols^T W^T, then transposed into y (+ bias); threads inside
    const bool inner = max_threads() > 1 && !omp_in_parallel();
    float* colsT = workspace;
    float* outT = workspace + g.PQ * g.CRS;
    for (index_t n = 0; n < s.N; ++n)
      for (index_t grp = 0; grp < s.groups; ++grp) {
        im2col_pixel_major(s, x + (n * s.C + grp * g.Cg) * g.HW, g.Cg, colsT, inner);
        sgemm(false, true, g.PQ, g.Kg, g.CRS, 1.0f, colsT, g.CRS, w + grp * g.Kg * g.CRS, g.CRS, 0.0f, outT, g.Kg);
        float* yg = y + (n * s.K + grp * g.Kg) * g.PQ;
        const float* bg = b != nullptr ? b + grp * g.Kg : nullptr;
        for (index_t k = 0; k < g.Kg; ++k) {
          const float bias = bg != nullptr ? bg[k] : 0.0f;
          for (index_t j = 0; j < g.PQ; ++j) yg[k * g.PQ + j] = outT[j * g.Kg + k] + bias;
        }
      }
    return true;
  }
  for_each_block(s, g, ConvPass::forward, T, workspace, [&](index_t n, index_t nbb, int /*chunk*/, float* ws, bool inner) {
    for (index_t grp = 0; grp < s.groups; ++grp) {
      const float* xg = x + (n * s.C + grp * g.Cg) * g.HW;
      const float* wg = w + grp * g.Kg * g.CRS;
      float* yg = y + (n * s.K + grp * g.Kg) * g.PQ;
      const float* bg = b != nullptr ? b + grp * g.Kg : nullptr;
      if (g.nb > 1) {  // nbb images in one GEMM into a staging matrix, then out to y (+ bias)
        const index_t ld = nbb * g.PQ;
        if (g.implicit) {
          float* out = ws;
          const ImplicitB ib{&s, xg, s.C * g.HW, g.PQ, 0};
          sgemm_packed_b(false, g.Kg, ld, g.CRS, 1.0f, wg, g.CRS, {pack_implicit_b, &ib}, 0.0f, out, ld);
        } else {
          float* cols = ws;
          float* out = ws + g.CRS * g.tile;
          for (index_t i = 0; i < nbb; ++i) im2col(s, xg + i * s.C * g.HW, g.Cg, 0, g.PQ, cols + i * g.PQ, ld, inner);
          sgemm(false, false, g.Kg, ld, g.CRS, 1.0f, wg, g.CRS, cols, ld, 0.0f, out, ld);
        }
        const float* out = g.implicit ? ws : ws + g.CRS * g.tile;
        for (index_t i = 0; i < nbb; ++i)
          for (index_t k = 0; k < g.Kg; ++k) {
            const float* src = out + k * ld + i * g.PQ;
            float* dst = yg + i * s.K * g.PQ + k * g.PQ;
            const float bias = bg != nullptr ? bg[k] : 0.0f;
            for (index_t j = 0; j < g.PQ; ++j) dst[j] = src[j] + bias;
          }
        continue;
      }
      float beta = 0.0f;
      if (bg != nullptr) {  // start from the bias and let sgemm accumulate onto it
        for (index_t k = 0; k < g.Kg; ++k) fill(yg + k * g.PQ, g.PQ, bg[k], inner);
        beta = 1.0f;
      }
      if (g.direct) {
        sgemm(false, false, g.Kg, g.PQ, g.CRS, 1.0f, wg, g.CRS, xg, g.HW, beta, yg, g.PQ);
        continue;
      }
      if (g.implicit) {
        for (index_t j0 = 0; j0 < g.PQ; j0 += g.tile) {
          const index_t jn = std::min(g.PQ - j0, g.tile);
          const ImplicitB ib{&s, xg, s.C * g.HW, g.PQ, j0};
          sgemm_packed_b(false, g.Kg, jn, g.CRS, 1.0f, wg, g.CRS, {pack_implicit_b, &ib}, beta, yg + j0, g.PQ);
        }
        continue;
      }
      for (index_t j0 = 0; j0 < g.PQ; j0 += g.tile) {
        const index_t j1 = std::min(g.PQ, j0 + g.tile), jn = j1 - j0;
        im2col(s, xg, g.Cg, j0, j1, ws, jn, inner);
        sgemm(false, false, g.Kg, jn, g.CRS, 1.0f, wg, g.CRS, ws, jn, beta, yg + j0, g.PQ);
      }
    }
  });
  return true;
}

bool conv2d_backward_data(const Conv2dShape& s, const float* grad_out, const float* w, float* grad_x,
                          float* workspace, index_t workspace_floats) {
  assert(conv2d_shape_error(s) == nullptr);  // the boundary checked it (common/conv_shape.h)
  if (wino16_bd_adjoint(s) && winograd_safe(grad_out, s.N * s.K * s.P * s.Q, w, s.K * s.C * s.R * s.S) &&
      winograd_c16_backward_data_call(s, grad_out, w, grad_x, workspace, workspace_floats))
    return true;
  if (Conv2dShape t; bd_forward_shape(s, t) && wino16_per_call(t) &&  // (never where the adjoint applies)
                     flipped_floats(s) + winograd_c16_call_floats(t, 1) <= workspace_floats) {
    float* wt = workspace;  // wt[kk][cc][r][q] = w[cc][kk][R-1-r][S-1-q]: t's plain filters
    const index_t R = s.R, S = s.S;
    for (index_t cc = 0; cc < s.K; ++cc)
      for (index_t kk = 0; kk < s.C; ++kk)
        for (index_t r = 0; r < R; ++r)
          for (index_t q = 0; q < S; ++q)
            wt[((kk * s.K + cc) * R + r) * S + q] = w[((cc * s.C + kk) * R + (R - 1 - r)) * S + (S - 1 - q)];
    if (winograd_c16_forward_call(t, grad_out, wt, nullptr, grad_x, workspace + flipped_floats(s),
                                  workspace_floats - flipped_floats(s)))
      return true;
  }
  if (hwc_bd_per_call(s) && hwc_backward_data_call(s, grad_out, w, grad_x, workspace, workspace_floats))
    return true;
  const Geometry g = geometry(s, ConvPass::backward_data);  // the GEMM-side paths' plan; also says if smallc takes it
  const bool smallc_first = smallc_preferred(s, ConvPass::backward_data, g);
  if (!smallc_first && direct_applies(s, ConvPass::backward_data) &&
      direct_backward_data(s, grad_out, w, grad_x, workspace, workspace_floats))
    return true;
  if (!smallc_first && winograd_applies(s, ConvPass::backward_data) &&
      winograd_safe(grad_out, s.N * s.K * s.P * s.Q, w, s.K * s.C / s.groups * 9) &&
      winograd_backward_data(s, grad_out, w, grad_x, workspace, workspace_floats))
    return true;
  const int T = plan_threads(s, g, ConvPass::backward_data, workspace_floats);
  if (T == 0) return false;
  if (g.smallc) {  // the forward of grad_out with the transposed, flipped filters (transposed_shape)
    Conv2dShape t;
    transposed_shape(s, t);
    smallc_prepare_forward_flipped(s, t, w, workspace);
    for_each_block(s, g, ConvPass::backward_data, T, workspace + g.smallc_shared,
                   [&](index_t n, index_t /*nbb*/, int /*chunk*/, float* ws, bool inner) {
                     for (index_t grp = 0; grp < s.groups; ++grp)
                       smallc_forward_image(t, grad_out + (n * s.K + grp * g.Kg) * g.PQ, workspace, grp, nullptr,
                                            grad_x + (n * s.C + grp * g.Cg) * g.HW, ws, inner);
                   });
    return true;
  }
  if (g.smallc_bd) {
    smallc_prepare_backward_data(s, w, workspace);
    for_each_block(s, g, ConvPass::backward_data, T, workspace + g.smallc_shared,
                   [&](index_t n, index_t /*nbb*/, int /*chunk*/, float* /*ws*/, bool inner) {
                     for (index_t grp = 0; grp < s.groups; ++grp)
                       smallc_backward_data_image(s, grad_out + (n * s.K + grp * g.Kg) * g.PQ, workspace, grp,
                                                  grad_x + (n * s.C + grp * g.Cg) * g.HW, inner);
                   });
    return true;
  }
  // bd_prepacked, one thread per image: W^T packed once for the call (not once per sgemm call),
  // then per image and block of bd_rows rows of the column matrix, one product with grad_out used
  // in place (no staging copy) and its col2im while the block is in L1 (no separate zero fill).
  // Against the staged path, interleaved at 1 thread: LeNet conv2 (b) 1.01x, conv1 (a) 1.16-1.46x.
  // The col2im still costs ~10% of b (SSE read-modify-writes, ~3.5 cycles per 8 floats; an
  // AVX-512 version summing rows in registers was no faster). Parallel inside an image it takes
  // the staged path below (same workspace).
  const bool inner_parallel = T == 1 && max_threads() > 1 && !omp_in_parallel();
  // Where sgemm_prepacked_a would pack grad_out's panels again for every block of rows (AVX2: the
  // CNN's conv2, 800 rows in blocks of 60, 14 times per image), they are packed once per image.
  if (g.bd_prepacked && !inner_parallel) {
    const index_t packed = sgemm_packed_a_floats(g.CRS, g.Kg);
    for (index_t grp = 0; grp < s.groups; ++grp)
      sgemm_pack_a(true, g.CRS, g.Kg, 1.0f, w + grp * g.Kg * g.CRS, g.CRS, workspace + grp * packed);
    const bool pack_b = !sgemm_prepacked_a_reads_b_in_place();
    for_each_block(s, g, ConvPass::backward_data, T, workspace + g.bd_shared,
                   [&](index_t n, index_t nbb, int /*chunk*/, float* ws, bool /*inner*/) {
                     float* bp = align64(ws + g.bd_rows * g.PQ);
                     for (index_t i = n; i < n + nbb; ++i)
                       for (index_t grp = 0; grp < s.groups; ++grp) {
                         const float* gog = grad_out + (i * s.K + grp * g.Kg) * g.PQ;
                         const float* ap = workspace + grp * packed;
                         float* gxg = grad_x + (i * s.C + grp * g.Cg) * g.HW;
                         if (pack_b) sgemm_pack_b(false, g.Kg, g.PQ, gog, g.PQ, bp);
                         for (index_t r0 = 0; r0 < g.CRS; r0 += g.bd_rows) {
                           const index_t r1 = std::min(g.CRS, r0 + g.bd_rows);
                           if (pack_b)
                             sgemm_prepacked_ab(g.CRS, r0, r1 - r0, g.PQ, g.Kg, ap, bp, 0.0f, ws, g.PQ);
                           else
                             sgemm_prepacked_a(g.CRS, r0, r1 - r0, g.PQ, g.Kg, ap, gog, g.PQ, 0.0f, ws, g.PQ);
                           col2im_rows(s, ws, g.PQ, r0, r1, gxg);
                         }
                       }
                   });
    return true;
  }
  for_each_block(s, g, ConvPass::backward_data, T, workspace, [&](index_t n, index_t nbb, int /*chunk*/, float* ws, bool inner) {
    for (index_t grp = 0; grp < s.groups; ++grp) {
      const float* gog = grad_out + (n * s.K + grp * g.Kg) * g.PQ;
      const float* wg = w + grp * g.Kg * g.CRS;
      float* gxg = grad_x + (n * s.C + grp * g.Cg) * g.HW;
      if (g.nb > 1) {  // nbb images' grad_out side by side, one GEMM (W^T packed once), then col2im each
        const index_t ld = nbb * g.PQ;
        float* cols = ws;
        float* go = ws + g.CRS * g.tile;
        for (index_t i = 0; i < nbb; ++i)
          for (index_t k = 0; k < g.Kg; ++k)
            std::copy_n(gog + i * s.K * g.PQ + k * g.PQ, g.PQ, go + k * ld + i * g.PQ);
        sgemm(true, false, g.CRS, ld, g.Kg, 1.0f, wg, g.CRS, go, ld, 0.0f, cols, ld);
        for (index_t i = 0; i < nbb; ++i) {
          float* gxi = gxg + i * s.C * g.HW;
          fill(gxi, g.Cg * g.HW, 0.0f, inner);
          col2im_add(s, cols + i * g.PQ, ld, g.Cg, 0, g.PQ, gxi, inner);
        }
        continue;
      }
      if (g.direct) {  // grad_x = W^T grad_out
        sgemm(true, false, g.CRS, g.PQ, g.Kg, 1.0f, wg, g.CRS, gog, g.PQ, 0.0f, gxg, g.HW);
        continue;
      }
      fill(gxg, g.Cg * g.HW, 0.0f, inner);
      for (index_t j0 = 0; j0 < g.PQ; j0 += g.tile) {
        const index_t j1 = std::min(g.PQ, j0 + g.tile), jn = j1 - j0;
        if (g.bd_pixel_major && !inner) {  // colsT (jn x CRS) = grad_out^T W, then runs into grad_x
          sgemm(true, false, jn, g.CRS, g.Kg, 1.0f, gog + j0, g.PQ, wg, g.CRS, 0.0f, ws, g.CRS);
          col2im_runs(s, ws, g.CRS, j0, j1, gxg);
          continue;
        }
        sgemm(true, false, g.CRS, jn, g.Kg, 1.0f, wg, g.CRS, gog + j0, g.PQ, 0.0f, ws, jn);
        col2im_add(s, ws, jn, g.Cg, j0, j1, gxg, inner);
      }
    }
  });
  return true;
}

// grad_b (K,) = grad_out summed over N, P, Q (both backward-weight paths).
static void conv_bias_grad(const Conv2dShape& s, const float* grad_out, float* grad_b) {
  const index_t PQ = s.P * s.Q;
  // Sixteen float lanes per row (vectorisable, and pairwise-like accuracy), rows added in double.
  constexpr int L = 16;
#pragma omp parallel for schedule(static) if (s.N * s.K * PQ > kParallelGrain) num_threads(max_threads())
  for (index_t k = 0; k < s.K; ++k) {
    double acc = 0.0;
    for (index_t n = 0; n < s.N; ++n) {
      const float* row = grad_out + (n * s.K + k) * PQ;
      float lanes[L] = {};
      index_t i = 0;
      for (; i + L <= PQ; i += L)
        for (int l = 0; l < L; ++l) lanes[l] += row[i + l];
      for (; i < PQ; ++i) lanes[i % L] += row[i];
      for (int l = 0; l < L; ++l) acc += lanes[l];
    }
    grad_b[k] = static_cast<float>(acc);
  }
}

bool conv2d_backward_weight(const Conv2dShape& s, const float* grad_out, const float* x, float* grad_w,
                            float* grad_b, float* workspace, index_t workspace_floats) {
  assert(conv2d_shape_error(s) == nullptr);  // the boundary checked it (common/conv_shape.h)
  if (pixels_per_call(s, ConvPass::backward_weight) && pixconv_backward_weight_call(s, grad_out, x, grad_w, workspace, workspace_floats)) {
    if (grad_b != nullptr) conv_bias_grad(s, grad_out, grad_b);
    return true;
  }
  if (wino16_per_call(s) && winograd_safe(grad_out, s.N * s.K * s.P * s.Q, x, s.N * s.C * s.H * s.W) &&
      winograd_c16_backward_weight_call(s, grad_out, x, grad_w, workspace, workspace_floats)) {
    if (grad_b != nullptr) conv_bias_grad(s, grad_out, grad_b);
    return true;
  }
  if (hwc_per_call(s, ConvPass::backward_weight) &&
      hwc_backward_weight_call(s, grad_out, x, grad_w, workspace, workspace_floats)) {
    if (grad_b != nullptr) conv_bias_grad(s, grad_out, grad_b);
    return true;
  }
  if (winograd_applies(s, ConvPass::backward_weight) &&
      winograd_safe(grad_out, s.N * s.K * s.P * s.Q, x, s.N * s.C * s.H * s.W) &&
      winograd_backward_weight(s, grad_out, x, grad_w, workspace, workspace_floats)) {
    if (grad_b != nullptr) conv_bias_grad(s, grad_out, grad_b);
    return true;
  }
  if (direct_applies(s, ConvPass::backward_weight) &&
      direct_backward_weight(s, grad_out, x, grad_w, workspace, workspace_floats)) {
    if (grad_b != nullptr) conv_bias_grad(s, grad_out, grad_b);
    return true;
  }
  const Geometry g = geometry(s, ConvPass::backward_weight);
  const int T = plan_threads(s, g, ConvPass::backward_weight, workspace_floats);
  if (T == 0) return false;
  const index_t gw_size = s.K * g.CRS;
  float* partials = workspace + T * slice_floats(g, ConvPass::backward_weight);  // chunks 1..T-1; chunk 0: grad_w

  // gw (K/groups x CRS) = or += go (K/groups x kd) * cols^T (cols: CRS x kd). When CRS is small
  // (LeNet's first layer: 1x5x5 = 25) that GEMM's N = CRS is too narrow for the micro-kernel, so
  // compute gw^T = cols * go^T (N = K/groups) into `tmp` and add it transposed.
  auto gw_gemm = [&](const float* go, index_t ldgo, const float* cols, index_t ldcols, index_t kd, bool overwrite,
                     float* gwg, float* tmp) {
    if (!g.gw_transposed) {
      sgemm(false, true, g.Kg, g.CRS, kd, 1.0f, go, ldgo, cols, ldcols, overwrite ? 0.0f : 1.0f, gwg, g.CRS);
      return;
    }
    sgemm(false, true, g.CRS, g.Kg, kd, 1.0f, cols, ldcols, go, ldgo, 0.0f, tmp, g.Kg);
    for (index_t k = 0; k < g.Kg; ++k)
      for (index_t r = 0; r < g.CRS; ++r)
        gwg[k * g.CRS + r] = overwrite ? tmp[r * g.Kg + k] : gwg[k * g.CRS + r] + tmp[r * g.Kg + k];
  };

  if (s.N == 0) fill(grad_w, gw_size, 0.0f, true);
  for_each_block(s, g, ConvPass::backward_weight, T, workspace, [&](index_t n, index_t nbb, int t, float* ws, bool inner) {
    float* gw = t == 0 ? grad_w : partials + (t - 1) * gw_size;
    float* tmp = ws + slice_floats(g, ConvPass::forward);  // the gw_transposed matrix, after cols/staging
    const bool first = n == s.N * t / T;  // a chunk's first block overwrites its partial sum
    for (index_t grp = 0; grp < s.groups; ++grp) {
      const float* gog = grad_out + (n * s.K + grp * g.Kg) * g.PQ;
      const float* xg = x + (n * s.C + grp * g.Cg) * g.HW;
      float* gwg = gw + grp * g.Kg * g.CRS;
      if (g.smallc) {  // the whole chunk of images in one call (g.nb = N), grad_b from the same pass
        float* gb = grad_b == nullptr ? nullptr : (t == 0 ? grad_b : smallc_bias_partial(s, ws)) + grp * g.Kg;
        smallc_backward_weight(s, gog, xg, nbb, gwg, gb, first, ws, inner);
        continue;
      }
      if (g.nb > 1) {  // nbb images side by side: one GEMM with inner dimension nbb*P*Q
        const index_t ld = nbb * g.PQ;
        float* cols = ws;
        float* go = ws + g.CRS * g.tile;
        for (index_t i = 0; i < nbb; ++i) {
          im2col(s, xg + i * s.C * g.HW, g.Cg, 0, g.PQ, cols + i * g.PQ, ld, inner);
          for (index_t k = 0; k < g.Kg; ++k)
            std::copy_n(gog + i * s.K * g.PQ + k * g.PQ, g.PQ, go + k * ld + i * g.PQ);
        }
        gw_gemm(go, ld, cols, ld, ld, first, gwg, tmp);
        continue;
      }
      if (g.direct) {  // grad_w += grad_out x^T
        gw_gemm(gog, g.PQ, xg, g.HW, g.PQ, first, gwg, tmp);
        continue;
      }
      for (index_t j0 = 0; j0 < g.PQ; j0 += g.tile) {
        const index_t j1 = std::min(g.PQ, j0 + g.tile), jn = j1 - j0;
        im2col(s, xg, g.Cg, j0, j1, ws, jn, inner);
        gw_gemm(gog + j0, g.PQ, ws, jn, jn, first && j0 == 0, gwg, tmp);
      }
    }
  });
  if (T > 1) {  // add the partial sums in chunk order: the same bits on every run
#pragma omp parallel for simd schedule(static) if (gw_size > kParallelGrain) num_threads(max_threads())
    for (index_t i = 0; i < gw_size; ++i) {
      float acc = grad_w[i];
      for (int t = 1; t < T; ++t) acc += partials[(t - 1) * gw_size + i];
      grad_w[i] = acc;
    }
  }
  if (grad_b != nullptr && g.smallc && s.N > 0) {  // the smallc kernel summed grad_b per chunk
    for (int t = 1; t < T; ++t) {
      const float* part = smallc_bias_partial(s, workspace + t * slice_floats(g, ConvPass::backward_weight));
      for (index_t k = 0; k < s.K; ++k) grad_b[k] += part[k];
    }
    return true;
  }
  if (grad_b != nullptr) conv_bias_grad(s, grad_out, grad_b);
  return true;
}

}  // namespace fastlayers::cpu
