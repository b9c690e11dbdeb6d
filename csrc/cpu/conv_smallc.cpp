// The ISA-neutral half of the direct small-channel convolution (conv_smallc.h): when it applies,
// its workspace, and the dispatch to the AVX-512 kernels (conv_smallc_avx512.cpp).
#include "cpu/conv_smallc.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>

#include "common/checked.h"
#include "cpu/align.h"
#include "cpu/cpu_features.h"

namespace fastlayers::cpu {

#if defined(__x86_64__) || defined(_M_X64)
void smallc_pack_weights_avx512(const Conv2dShape& s, const SmallCPlan& pl, const float* w, float* wp);
void smallc_forward_image_avx512(const Conv2dShape& s, const SmallCPlan& pl, const float* x, const float* wp,
                                 const int32_t* off, const float* bias, float* y, index_t ldy, float* slice,
                                 bool parallel);
bool smallc_bd_has_kernel(index_t W, index_t S);
void smallc_pack_bd_weights_avx512(const Conv2dShape& s, index_t Cv, const float* w, float* wb);
void smallc_backward_data_image_avx512(const Conv2dShape& s, index_t Cv, const float* grad_out, const float* wb,
                                       float* grad_x, bool parallel);
void smallc_backward_weight_avx512(const Conv2dShape& s, const SmallCPlan& pl, const float* grad_out,
                                   const float* x, index_t images, float* grad_w, float* grad_b, bool overwrite,
                                   float* slice, bool parallel);
#endif

namespace {
// Measured up to 512 x 3 x 3 = 4608 taps (ResNet-18 in the inference plan); larger filters stay on
// the GEMM paths, unmeasured here.
constexpr index_t kMaxCRS = 4608;

// The forward's shared workspace: the tap offsets (int32, in a float-sized slot each, rounded up
// to 16 so the filters start on a 64-byte boundary of the workspace), then the packed filters.
index_t offsets_floats(const SmallCPlan& pl) { return (pl.CRS + 15) / 16 * 16; }

// off[tap] for tap = (c*R + r)*S + t: where that tap's run starts in the phase planes (once per
// call: its divisions cost ~2% of LeNet conv2's forward when done per image).
void tap_offsets(const Conv2dShape& s, const SmallCPlan& pl, int32_t* off) {
  const index_t sh = s.stride_h, sw = s.stride_w, plane = pl.Hq * pl.Wq;
  index_t k = 0;
  for (index_t c = 0; c < s.C / s.groups; ++c)
    for (index_t r = 0; r < s.R; ++r)
      for (index_t t = 0; t < s.S; ++t, ++k) {
        const index_t rr = r * s.dil_h, tt = t * s.dil_w;
        off[k] = static_cast<int32_t>(((c * sh + rr % sh) * sw + tt % sw) * plane + (rr / sh) * pl.Wq + tt / sw);
      }
}

int32_t* offsets_in(float* shared) { return reinterpret_cast<int32_t*>(shared); }
}  // namespace

SmallCPlan smallc_plan(const Conv2dShape& s) {
  SmallCPlan pl{};
  const index_t sh = s.stride_h, sw = s.stride_w, Cg = s.C / s.groups;
  pl.Hq = s.P + ((s.R - 1) * s.dil_h) / sh;
  pl.Wq = s.Q + ((s.S - 1) * s.dil_w) / sw;
  // Tiles of 8 pixels where they fill the rows at least as well as 14-pixel ones. Measured, same
  // process: LeNet conv2 (Q = 8) 6.8 -> 6.5 ms (14: 57% filled, off the path), LeNet conv1 (Q = 24)
  // 1.50 -> 1.26-1.44 ms; equal on AlexNet conv1 (Q = 55) and on 28x28 / 56x56 3x3 layers.
  const index_t fill14 = s.Q * 100 / ((s.Q + 13) / 14 * 14), fill8 = s.Q * 100 / ((s.Q + 7) / 8 * 8);
  pl.TP = fill14 >= fill8 ? 14 : 8;
  pl.Kv = (s.K / s.groups + 15) / 16 * 16;
  pl.KB = 32;
  // Rows of 7, 21, 35 pixels (ResNets' 7x7 maps) fill 7-pixel tiles exactly: 7 pixels x 64
  // channels, 28 accumulators, where 8-pixel tiles used 7/8 of their 16. Inference plan step, min
  // of 40 interleaved runs (ms), 8-pixel / 7-pixel tiles, 1 thread: 64->64 on 7x7 batch 1 0.046 /
  // 0.041, batch 16 0.69 / 0.62; 32->64 stride 2 onto 7x7 batch 64 1.74 / 1.60; 256->512 stride 2
  // batch 1 1.32 / 1.17; 512->512 on 7x7 batch 1 2.73 / 2.61; 2 threads: 0.63 / 0.57 (batch 16),
  // 1.19 / 0.97 (batch 64), 0.86 / 0.76 (256->512 batch 1).
  if (s.Q % 7 == 0 && s.Q % 14 != 0 && pl.Kv % 64 == 0) pl.TP = 7, pl.KB = 64;
  // Rows of 9 to 13 pixels: one tile of exactly that many per row, where 14- or 8-pixel tiles
  // used 56-93% of theirs. Plan step at batch 64, 1 thread, min of 40 interleaved runs (ms), before
  // / after: 32->32 3x3 on 9x9 (two 8-pixel tiles per row before) 1.98 / 1.47; LeNet-5's conv2
  // (10-pixel rows, 14-pixel tiles before) 0.44 / 0.43, 16->32 on 12x12 and 16->16 on 13x13 equal.
  if (s.Q >= 9 && s.Q <= 13) pl.TP = s.Q;
  // At most 8 output channels per group: a vector holds two pixels x 8 channels (lane 2c + p) and
  // each FMA takes one 64-bit broadcast of a pixel pair, so twice the lanes do work (LeNet-5's
  // conv1, 6 channels: 12 of 16 lanes instead of 6). Tiles of 16, 24, 28 or 32 pixels, whichever
  // fills the rows best, where that is at least 70%. Plan step (+ReLU+pool), 1 thread, min of 40
  // interleaved runs, one-pixel / pair tiles: LeNet-5 conv1 batch 1 8.2 / 6.8 us, batch 64 0.46 /
  // 0.36 ms, batch 100 0.72 / 0.56 ms; 3->8 5x5 p2 on 32x32 batch 64 1.58 / 1.14 ms; 4->8 5x5 on
  // 26x26 1.07 / 0.77 ms; 16->1 3x3 on 14x14 (16-pixel tiles for 14) equal.
  if (s.K / s.groups <= 8) {
    index_t best = 0, best_fill = 0;
    for (index_t tp : {16, 24, 28, 32}) {
      const index_t fill = s.Q * 100 / ((s.Q + tp - 1) / tp * tp);
      if (fill >= best_fill) best = tp, best_fill = fill;
    }
    if (best_fill >= 70) pl.TP = best, pl.pairs = true;
  }
  // The last tile of the last row reads up to TP - 1 floats past the end of its plane.
  // Checked: with the boundary's limits (sh*Hq <= 2*padded H) it is < 2^51, but it gates the path.
  pl.xs_floats = (CheckedSize(Cg) * sh * sw * pl.Hq * pl.Wq + 32).value();
  pl.CRS = Cg * s.R * s.S;
  pl.Hp = (s.P - 1) * sh + (s.R - 1) * s.dil_h + 1;
  pl.Wp = (s.Q - 1) * sw + (s.S - 1) * s.dil_w + 1;
  pl.xp_floats = (s.pad_h > 0 || s.pad_w > 0) ? Cg * pl.Hp * pl.Wp : 0;
  // grad_out^T in blocks of up to 128 KiB (whole output rows, equal blocks), read from L2 by the
  // tap tiles: each tile then keeps its accumulators over more pixels. Against 16 KiB blocks
  // (L1): AlexNet conv1 (one 14 KiB row per block, 22 accumulators loaded and stored per row)
  // 4-5% faster, LeNet conv1 (whole image, 72 KiB) and conv2 (whole image either way) unchanged.
  const index_t max_rows = std::clamp<index_t>(32768 / std::max<index_t>(1, s.Q * pl.Kv), 1, s.P);
  pl.rows_block = (s.P + (s.P + max_rows - 1) / max_rows - 1) / ((s.P + max_rows - 1) / max_rows);
  return pl;
}

// Measured (/tmp A/B runs of benchmarks/conv_tune.py-style timings, one thread, this path against
// the im2col / implicit GEMM paths, same process, interleaved):
// - forward: faster wherever its tiles are well filled: AlexNet conv1 66 -> 101 GF/s, LeNet conv1
//   62 -> 75, and also with many channels (64 -> 64 3x3 on 56x56: 87 -> 68 ms; 128 -> 128 3x3 on
//   56x56: 79 -> 67 ms; 256 -> 256 3x3 on 14x14: 21 -> 18 ms; 64 -> 64 5x5 on 28x28: 35 -> 23
//   ms; LeNet conv2 with 8-pixel tiles 6.8 -> 6.5 ms). It computes whole tiles of 8 or 14 pixels
//   per output row: skipped where that wastes over 30% (with 14-pixel tiles only, LeNet conv2
//   was 57% filled and slower than the GEMM).
// - backward-weight: faster for C/groups <= 4 (AlexNet conv1 63 -> 101 GF/s, LeNet conv1 53 ->
//   72) and for S >= 5 with any C (LeNet conv2 7.5 -> 6.1 ms, 64 -> 64 5x5 on 28x28 32 -> 24 ms,
//   32 -> 64 7x7 stride 2: 25 -> 15 ms); with S < 5 and more channels a tile has too few taps
//   (3x3: 6 accumulators, latency-bound) and the GEMM wins (64 -> 64 3x3 on 56x56: 87 vs 99 ms).
// - K/groups < 8 (depthwise and the like) fills a 16-channel vector poorly: not taken per call;
//   the inference plan takes it from 4 channels (below, with its figures).
namespace {
bool smallc_applies_impl(const Conv2dShape& s, ConvPass pass, bool prepacked) {
#if defined(__x86_64__) || defined(_M_X64)
  if (pass == ConvPass::backward_data || active_isa() != Isa::avx512) return false;
  if (const char* e = std::getenv("FASTLAYERS_CONV_SMALLC"); e != nullptr && e[0] == '0') return false;
  const index_t Cg = s.C / s.groups, Kg = s.K / s.groups;
  // Fewer than 8 output channels fill under half of a 16-lane vector; with the filters packed once
  // (the inference plan) the kernel still wins from 4 channels, and below that while the taps are
  // few. Plan step conv(+relu+pool), min of 30 interleaved runs, GEMM / pixel paths against this
  // kernel: LeNet-5 conv1 (1 -> 6 5x5 p2 on 28x28) batch 1 16.7 / 10.3 us, batch 64 1.07 / 0.56 ms
  // (2 threads 0.68 / 0.33), batch 100 1.86 / 0.92 ms; 6 -> 6 5x5 on 14x14 batch 64 0.88 / 0.50 ms;
  // 1 -> 2 and 1 -> 3 5x5 p2 batch 64 0.67 / 0.43, 0.84 / 0.44 ms; 16 -> 1 3x3 on 14x14 2.4 / 1.4
  // ms; but 32 -> 2 5x5 on 12x12 (800 taps) 1.02 / 1.07 ms.
  if (Kg < 8 && (!prepacked || (Kg < 4 && Cg * s.R * s.S > 256))) return false;
  if (pass == ConvPass::backward_weight) return s.dil_w == 1 && (Cg <= 4 || s.S >= 5);
  // Forward from 256 channels up the GEMM path wins (ResNet-18's 256 -> 512 3x3 stride 2 on 14x14,
  // this path / GEMM: batch 1 3.5 / 2.1 ms at 1 thread, 6.7 / 1.1 ms at 2; batch 16 33 / 26 and
  // 23 / 14 ms); at 128 channels it still wins or ties (128 -> 128 stride 2 on 28x28, batch 4:
  // 3.0 / 4.1 ms at 1 thread).
  // With the filters packed once (the inference plan) it wins there too, in blocks of 32 output
  // channels: plan step, 2 threads, min of 15-40 interleaved runs (ms), GEMM or pixel-vectorised
  // direct path / this: 256 -> 256 on 14x14 batch 1 1.52 / 1.11, batch 4 7.7 / 4.7; 256 -> 512
  // stride 2 batch 1 1.00 / 0.78, batch 8 6.2 / 5.7; 512 -> 512 on 7x7 batch 1 1.88 / 1.71,
  // batch 32 41.6 / 39.9 (Winograd keeps 14x14 from batch 16 on: choose_conv_paths).
  if (Cg >= 256 && !prepacked) return false;
  const SmallCPlan pl = smallc_plan(s);
  const index_t tiles = (s.Q + pl.TP - 1) / pl.TP * pl.TP;
  // The tap offsets into the phase planes are int32.
  return pl.CRS <= kMaxCRS && pl.xs_floats >= 0 && pl.xs_floats < (index_t{1} << 31) && 10 * s.Q >= 7 * tiles;
#else
  (void)s;
  (void)pass;
  (void)prepacked;
  return false;
#endif
}
}  // namespace

bool smallc_applies(const Conv2dShape& s, ConvPass pass) { return smallc_applies_impl(s, pass, false); }

bool smallc_applies_prepacked(const Conv2dShape& s) { return smallc_applies_impl(s, ConvPass::forward, true); }

index_t smallc_shared_floats(const Conv2dShape& s, ConvPass pass) {
  if (pass != ConvPass::forward) return 0;
  const SmallCPlan pl = smallc_plan(s);
  return offsets_floats(pl) + s.groups * pl.Kv * pl.CRS;
}

index_t smallc_slice_floats(const Conv2dShape& s, ConvPass pass) {
  const SmallCPlan pl = smallc_plan(s);
  if (pass != ConvPass::backward_weight) return pl.xs_floats + kAlignSlackFloats;
  // xp, goT, gwT, the grad_b sums (Kv doubles), each with alignment slack; then K floats for the
  // caller (smallc_bias_partial).
  return pl.xp_floats + pl.rows_block * s.Q * pl.Kv + pl.CRS * pl.Kv + 2 * pl.Kv + 4 * kAlignSlackFloats + s.K;
}

void smallc_prepare_forward(const Conv2dShape& s, const float* w, float* shared) {
#if defined(__x86_64__) || defined(_M_X64)
  const SmallCPlan pl = smallc_plan(s);
  tap_offsets(s, pl, offsets_in(shared));
  smallc_pack_weights_avx512(s, pl, w, shared + offsets_floats(pl));
#else
  (void)s, (void)w, (void)shared;
  std::abort();  // smallc_applies is false here
#endif
}

void smallc_prepare_forward_flipped(const Conv2dShape& s, const Conv2dShape& t, const float* w, float* shared) {
  const SmallCPlan pl = smallc_plan(t);
  tap_offsets(t, pl, offsets_in(shared));
  // The transposed convolution has C/groups output channels (padded to Kv) and taps (k, r, t).
  const index_t Cg = s.C / s.groups, Kg = s.K / s.groups, RS = s.R * s.S, Kv = pl.Kv;
  const index_t taps = Kg * RS;
  float* wp = shared + offsets_floats(pl);
  for (index_t g = 0; g < s.groups; ++g) {
    float* dst = wp + g * taps * Kv;  // blocked as smallc_filter_index says
    for (index_t k = 0; k < Kg; ++k)
      for (index_t r = 0; r < s.R; ++r)
        for (index_t t = 0; t < s.S; ++t) {
          const index_t tap = (k * s.R + r) * s.S + t;
          const float* src = w + (g * Kg + k) * Cg * RS + (s.R - 1 - r) * s.S + (s.S - 1 - t);
          for (index_t c = 0; c < Kv; ++c) dst[smallc_filter_index(taps, Kv, pl.KB, tap, c)] = c < Cg ? src[c * RS] : 0.0f;
        }
    if (pl.pairs) smallc_expand_pairs(dst, taps);
  }
}

void smallc_forward_image(const Conv2dShape& s, const float* x, const float* shared, index_t group,
                          const float* bias, float* y, float* slice, bool parallel, index_t ldy) {
#if defined(__x86_64__) || defined(_M_X64)
  const SmallCPlan pl = smallc_plan(s);
  const float* wp = shared + offsets_floats(pl) + group * pl.Kv * pl.CRS;
  smallc_forward_image_avx512(s, pl, x, wp, reinterpret_cast<const int32_t*>(shared), bias, y,
                              ldy > 0 ? ldy : s.P * s.Q, slice, parallel);
#else
  (void)s, (void)x, (void)shared, (void)group, (void)bias, (void)y, (void)slice, (void)parallel, (void)ldy;
  std::abort();
#endif
}

float* smallc_bias_partial(const Conv2dShape& s, float* slice) {
  return slice + smallc_slice_floats(s, ConvPass::backward_weight) - s.K;
}

void smallc_backward_weight(const Conv2dShape& s, const float* grad_out, const float* x, index_t images,
                            float* grad_w, float* grad_b, bool overwrite, float* slice, bool parallel) {
#if defined(__x86_64__) || defined(_M_X64)
  smallc_backward_weight_avx512(s, smallc_plan(s), grad_out, x, images, grad_w, grad_b, overwrite, slice, parallel);
#else
  (void)s, (void)grad_out, (void)x, (void)images, (void)grad_w, (void)grad_b, (void)overwrite, (void)slice,
      (void)parallel;
  std::abort();
#endif
}

// Backward-data, direct (conv_smallc.h).
namespace {
index_t bd_channels_padded(const Conv2dShape& s) { return (s.C / s.groups + 15) / 16 * 16; }
}  // namespace

// Measured against the GEMM path (im2col-free packed product + col2im), interleaved, 1 thread:
// LeNet conv2 (100x32->64, 12x12, 5x5) 6.85 -> 5.93 ms; 32->64 14x14 5x5 1.37x; 16->64 14x14
// 1.34x; 48->64 10x10 1.60x; 16->32 8x8 1.77x. Channel vectors must be well filled: C/groups = 24
// (75% of 32 lanes) was 0.91x, C/groups = 8 (half of 16) 0.68x. 3x3 layers with K/groups >= 16
// take Winograd before this.
bool smallc_backward_data_applies(const Conv2dShape& s) {
#if defined(__x86_64__) || defined(_M_X64)
  if (active_isa() != Isa::avx512) return false;
  if (const char* e = std::getenv("FASTLAYERS_CONV_SMALLC"); e != nullptr && e[0] == '0') return false;
  const index_t Cg = s.C / s.groups;
  return is_plain(s) && Cg >= 16 && 5 * Cg >= 4 * bd_channels_padded(s) && smallc_bd_has_kernel(s.W, s.S);
#else
  (void)s;
  return false;
#endif
}

index_t smallc_backward_data_shared_floats(const Conv2dShape& s) { return s.K * s.R * s.S * bd_channels_padded(s); }

void smallc_prepare_backward_data(const Conv2dShape& s, const float* w, float* shared) {
#if defined(__x86_64__) || defined(_M_X64)
  smallc_pack_bd_weights_avx512(s, bd_channels_padded(s), w, shared);
#else
  (void)s, (void)w, (void)shared;
  std::abort();
#endif
}

void smallc_backward_data_image(const Conv2dShape& s, const float* grad_out, const float* shared, index_t group,
                                float* grad_x, bool parallel) {
#if defined(__x86_64__) || defined(_M_X64)
  const index_t Cv = bd_channels_padded(s);
  smallc_backward_data_image_avx512(s, Cv, grad_out, shared + group * (s.K / s.groups) * s.R * s.S * Cv, grad_x,
                                    parallel);
#else
  (void)s, (void)grad_out, (void)shared, (void)group, (void)grad_x, (void)parallel;
  std::abort();
#endif
}

}  // namespace fastlayers::cpu
