// Direct convolution vectorised over output pixels ("flat padded grid"), forward and
// backward-data (stride 1, as the forward of grad_out with the filters flipped and transposed).
// Written for 3x3 layers on small images (the small ResNet's 16/32/64-channel layers on 28x28,
// 14x14 and 7x7, stride 1 and 2), where Winograd's per-call transforms and the GEMM path's
// im2col/packing cost more than the arithmetic (batch 1, 64->64 on 7x7: Winograd ran at ~2 GF/s).
//
// Layout: each image's channels are copied once into zero-padded phase planes (the stride's
// "space to depth", as conv_smallc.h does), xs[c][ph][pw][hq][wq] = x[c][hq*sh+ph-pad][wq*sw+pw-pad],
// so that tap (c, r, t) of output pixel (p, q) is xs[off(c, r, t) + p*Wq + q]. Output pixels are
// numbered on a grid of width Wq (>= Q): j = p*Wq + q, and every tap reads consecutive floats for
// consecutive j. The columns q >= Q of the grid are computed and dropped (7x7 pad 1: 49 of 63).
// The product is then a GEMM, y[k][j] = sum_tap w[k][tap] * xs[off(tap) + j], whose "B" is shifted
// views of xs (never packed) and whose "A" is the filters as PyTorch stores them (never packed:
// MR rows are broadcast from MR streams). Micro-tile: MR output channels x NV vectors of pixels
// (AVX-512: 8 x 3x16, AVX2: 4 x 3x8). Same ideas as MLAS's NCHWc direct kernels (register tile of
// output channels x pixels, broadcast one operand), but on NCHW in and out, so it drops into the
// unfused per-layer path with no layout conversions.
//
// Same contract as conv.h: caller-owned workspace, no allocation, false when it is too small.
#pragma once
#include "common/conv_shape.h"
#include "common/types.h"

namespace fastlayers::cpu {

// Whether conv.cpp takes this path for `pass` (forward or backward_data). FASTLAYERS_CONV_DIRECT
// (environment, read on every call): "0" never, "1" wherever the geometry allows (tests), unset:
// by the measured rule in conv_direct.cpp.
bool direct_applies(const Conv2dShape& s, ConvPass pass);
// Whether the geometry allows it at all (ISA >= AVX2, sizes in range), regardless of the rule.
bool direct_possible(const Conv2dShape& s, ConvPass pass);

index_t direct_workspace_floats(const Conv2dShape& s, ConvPass pass, int threads);

// y = conv(x, w) + b (b may be null), then max(y, 0) when relu (for a fused inference plan).
bool direct_forward(const Conv2dShape& s, const float* x, const float* w, const float* b, float* y, bool relu,
                    float* workspace, index_t workspace_floats);

// grad_w (K, C, R, S) from grad_out and x (R*S == 9, groups 1: direct_possible says); grad_b is the
// caller's. Vectorised over output channels instead: per image, grad_out is staged transposed onto
// the grid (goT[j][k], zeros in the dropped columns), and a tile is the 9 taps of one input channel
// x 16-32 output channels, summed over the image's grid pixels (one broadcast of x per tap and
// pixel). Threads take fixed chunks of images and keep partial sums, added in thread order:
// deterministic for a given thread count.
bool direct_backward_weight(const Conv2dShape& s, const float* grad_out, const float* x, float* grad_w,
                            float* workspace, index_t workspace_floats);

// grad_x from grad_out and w; stride 1 only (direct_possible says).
bool direct_backward_data(const Conv2dShape& s, const float* grad_out, const float* w, float* grad_x,
                          float* workspace, index_t workspace_floats);

// ---- internal: the per-ISA micro-kernels (conv_direct_avx2.cpp / conv_direct_avx512.cpp) ----
struct DirectImage {
  const float* xs;      // this image's (and group's) phase planes
  const float* w;       // this group's filters: Kg rows of Cg*RS floats
  const float* bias;    // this group's Kg biases, or null
  const int* poff;      // RS tap offsets within one channel's phase planes
  float* y;             // this image's (and group's) output planes, P*Q floats each
  index_t Kg, Cg, RS, CP;  // output channels, input channels, taps per channel, floats per channel
  index_t Wq, P, Q;     // grid width, output rows and columns
  bool relu;
};
// Blocks of the grid an ISA's kernel cuts an image into: kblocks(Kg) x jblocks(P*Wq).
struct DirectTiling {
  index_t mr, jb;  // output channels and grid pixels per block
};
DirectTiling direct_tiling_avx512();
DirectTiling direct_tiling_avx2();
// Computes blocks [b0, b1) of the image, block b = (jblock b / kblocks, kblock b % kblocks).
void direct_blocks_avx512(const DirectImage& d, index_t b0, index_t b1);
void direct_blocks_avx2(const DirectImage& d, index_t b0, index_t b1);

struct DirectBwImage {
  const float* xs;   // this image's phase planes
  const float* goT;  // J x Kv: this image's grad_out transposed onto the grid (zeros where q >= Q)
  const int* poff;   // 9 tap offsets within one channel's phase planes
  float* gwT;        // Cg*9 x Kv partial sums, accumulated into
  index_t Cg, CP, Kv, J;
};
index_t direct_bw_lanes_avx512();  // Kv is a multiple of this
index_t direct_bw_lanes_avx2();
void direct_bw_image_avx512(const DirectBwImage& d);
void direct_bw_image_avx2(const DirectBwImage& d);

}  // namespace fastlayers::cpu
