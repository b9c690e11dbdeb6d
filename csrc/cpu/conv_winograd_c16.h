// Winograd convolution with channels in the vector lanes, for the inference plan (csrc/cpu/plan):
// F(4x4, 3x3) for 3x3 layers (6x6 input patches, interpolation points 0, +-1, +-2, inf) and
// F(4x4, 5x5) for 5x5 layers (8x8 patches, points 0, +-1, +-2, +-1/2, inf), stride 1, dilation 1,
// one group, input and output channels multiples of 16. (Before F(4x4, 5x5), 5x5 layers ran
// F(2x2, 5x5) on 6x6 patches: figures in conv_winograd_c16.cpp, alpha_for.)
//
// Why a second Winograd (conv_winograd.h is the per-call one): that one puts 16 *tiles* in the
// lanes, gathers each patch with scalar loads and runs 36 small sgemm calls per block, which
// loses to the direct kernel below 64 channels. Here one image is first transposed to HWC
// (channels contiguous, zero padding included), so a patch is 36 vector loads per 16 channels; the
// 36 per-position products M[xi] = V[xi] U[xi] are a register-blocked micro-kernel over
// (tiles x 16-channel vectors) with the filters transformed once at plan build; the output
// transform writes HWC tiles that a 16x16 transpose puts back to NCHW.
// Multiplications per output: F(4x4, 3x3) 36/16 per (c, k) against 9 for the direct sum,
// F(4x4, 5x5) 64/16 against 25.
//
// Numerics: as conv_winograd.h (F(4x4, 3x3) from 16 input channels stays within the GEMM path's
// tolerance; F(4x4, 5x5)'s rounding error is about 1.3x F(2x2, 5x5)'s, in conv_winograd_c16.cpp,
// alpha_for). A NaN or inf in a patch would spread to its whole output tile, so the transpose
// checks each image, and an image holding one is computed by the direct sum instead (from the
// plain filters `w`), which spreads it only to the outputs that read it, as the other paths do.
#pragma once
#include "common/conv_shape.h"
#include "common/types.h"

namespace fastlayers::cpu {

// Sizes of one image's work: tiles of m x m outputs (r x r filters), the transposed input xin
// (Hp x Wp x C, covering every tile's 6x6 patch), the HWC output yout (Pp x Qp x K, whole tiles),
// TB tiles per block (V: 36 x TB x C, M: 36 x TB x K), each buffer's offset in a thread's slice.
struct WinoC16Geom {
  int m = 4, r = 3, alpha = 6;  // alpha = m + r - 1: the patch side
  index_t tiles_h = 0, tiles_w = 0, tiles = 0;
  index_t Hp = 0, Wp = 0, Pp = 0, Qp = 0, TB = 0;
  index_t v_stride = 0, m_stride = 0;  // floats between consecutive positions xi in V and in M (or D)
  index_t xin_off = 0, yout_off = 0, v_off = 0, m_off = 0, flag_off = 0, slice = 0;
  index_t pool_off = 0;  // the pooled HWC output ((P/2) x (Q/2) x K) of a forward with an OutPool
};

// A 2x2 stride-2 max or average pool (floor mode: an odd last row or column is dropped) run on the
// HWC output before it goes back to NCHW (the inference plan's conv + pool steps): the transpose
// then moves a quarter of the floats and no full-size NCHW output is written and read again.
// With a pool, `relu` applies to the pooled values, or (relu_first) to the pool's inputs; max
// pooling propagates NaN, as max_pool2d does.
struct OutPool {
  enum Kind : int { none = 0, max = 1, avg = 2 };
  Kind kind = none;
  bool relu_first = false;
};

// How one image comes in and goes out of the HWC kernels (conv_winograd_c16, conv_hwc) in the
// inference plan: the fused pool, and whether x and y are HWC rather than NCHW. Between two such
// kernels the plan keeps the value in HWC (H x W x C, channels innermost): the producer copies its
// rows out and the consumer copies them into its zero-padded image, where each would otherwise
// transpose (the small ResNet at batch 64: a fifth of the plan's time in transposes).
struct ImageIo {
  OutPool pool;
  bool x_hwc = false, y_hwc = false;
};

// blocks_across_images (backward-weight): TB fills a block from several images when one has fewer
// tiles.
WinoC16Geom winograd_c16_geom(const Conv2dShape& s, bool blocks_across_images = false);

// G (6 x 3) of F(4x4, 3x3) for the points 0, +-1, +-2, inf (B^T, the input transform, and A^T,
// the output transform, are in the kernels).
constexpr double kWinoC16G3[6][3] = {{1.0 / 4, 0, 0},           {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                     {-1.0 / 6, 1.0 / 6, -1.0 / 6}, {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                     {1.0 / 24, -1.0 / 12, 1.0 / 6}, {0, 0, 1}};

// G (8 x 5) of F(4x4, 5x5) for the points 0, +-1, +-2, +-1/2, inf (B^T and A^T in the kernels).
constexpr double kWinoC16G5x8[8][5] = {{1, 0, 0, 0, 0},
                                       {-2.0 / 9, -2.0 / 9, -2.0 / 9, -2.0 / 9, -2.0 / 9},
                                       {-2.0 / 9, 2.0 / 9, -2.0 / 9, 2.0 / 9, -2.0 / 9},
                                       {1.0 / 90, 1.0 / 45, 2.0 / 45, 4.0 / 45, 8.0 / 45},
                                       {1.0 / 90, -1.0 / 45, 2.0 / 45, -4.0 / 45, 8.0 / 45},
                                       {32.0 / 45, 16.0 / 45, 8.0 / 45, 4.0 / 45, 2.0 / 45},
                                       {32.0 / 45, -16.0 / 45, 8.0 / 45, -4.0 / 45, 2.0 / 45},
                                       {0, 0, 0, 0, 1}};

// Whether this kernel can run the forward of `s` on this machine (AVX-512 or AVX2, the geometry above).
bool winograd_c16_possible(const Conv2dShape& s);

// Floats of the transformed filters U[36][C][K] (winograd_c16_prepare fills them).
index_t winograd_c16_filter_floats(const Conv2dShape& s);
void winograd_c16_prepare(const Conv2dShape& s, const float* w, float* U);

// Workspace floats one thread needs (its transposed image, transformed tiles, products, output).
index_t winograd_c16_slice_floats(const Conv2dShape& s);

// y (K, P, Q) of one image = conv(x (C, H, W)) + bias (may be null), then + res (the image's
// residual, shaped as y; may be null) and ReLU when `relu` (NaN stays NaN, as the op). `ws`: the calling thread's
// slice (team == 1), or - inside an OpenMP parallel region of `team` threads, every thread calling
// with the same arguments and its own thread number `t` - the first thread's slice for the shared
// image buffers and ws + t * slice for the rest (the team splits the image's tiles).
// `w`: the plain filters (K, C, R, S), read only for an image holding a NaN or inf.
// io: with io.pool.kind != none, y is the pooled image (K, P/2, Q/2) and res must be null; x_hwc /
// y_hwc: x (H, W, C) / y and res (P, Q, K) in HWC.
void winograd_c16_forward_image(const Conv2dShape& s, const float* x, const float* U, const float* w,
                                const float* bias, const float* res, bool relu, float* y, float* ws, int t, int team,
                                ImageIo io = {});

// ---- Per call (conv.cpp: conv2d_forward, and conv2d_backward_data as the forward of its transposed
// shape): the filters are transformed into the workspace on every call.

// Workspace floats of winograd_c16_forward_call with `threads` threads.
index_t winograd_c16_call_floats(const Conv2dShape& s, int threads);

// y = conv(x) + bias for the whole batch of `s` (plain filters w (K, C, R, S)): U into the workspace,
// then the images over the threads (or, with fewer images, the threads over each image). False if
// the workspace is too small.
bool winograd_c16_forward_call(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y,
                               float* workspace, index_t workspace_floats);

// Backward-data as the forward's adjoint in x (conv_winograd_c16_kernels.h, backward_data_image):
// grad_x (N, C, H, W) of `s` from grad_out and the plain filters w (both finite: conv.cpp checks),
// the filters transformed per call into U[36][K][C], whole images over the threads. conv.cpp takes
// it where grad_x is larger than grad_out (valid convolutions), which the forward of grad_out with
// flipped filters runs on a mostly zero-padded input.
index_t winograd_c16_backward_data_floats(const Conv2dShape& s, int threads);
bool winograd_c16_backward_data_call(const Conv2dShape& s, const float* grad_out, const float* w, float* grad_x,
                                     float* workspace, index_t workspace_floats);

// Backward-weight: grad_w (K, C, R, S) of `s` from grad_out and x (both finite: conv.cpp checks),
// images over the threads, each summing dL/dU into its own 36 K C floats, added in thread order.
index_t winograd_c16_backward_weight_floats(const Conv2dShape& s, int threads);
bool winograd_c16_backward_weight_call(const Conv2dShape& s, const float* grad_out, const float* x, float* grad_w,
                                       float* workspace, index_t workspace_floats);

}  // namespace fastlayers::cpu
