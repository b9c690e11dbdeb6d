// Direct convolution with channels in the vector lanes on an HWC copy of each image, for the
// layers the channels-in-lanes Winograd cannot take: strides 2 to 4 (and 1x1 stride-2 projections),
// input channels that are not a multiple of 16 (LeNet-5's 6, an RGB image's 3), filters up to 7x7
// (any size where a run is a whole kernel row: C not 16, 32 or 64, as AlexNet's 11x11 stem);
// output channels a multiple of 16, one group, dilation 1.
//
// Why: on AVX2 machines those layers had only the im2col + GEMM path (conv_smallc, their
// direct kernel, is AVX-512 only): 16 -> 32 3x3 stride 2 on 28x28 at batch 64 ran at 34 GF/s
// there, a third of the core. Here an image is transposed to HWC once (zero padding included, the
// Winograd kernel's transpose), then each output row is cut into blocks of up to max_rows pixels;
// a block keeps pixels x output-channel vectors of sums in registers and, per tap and input
// channel, loads the filter vectors once and broadcasts one input value per pixel (C not known at
// compile time: per kernel row, its S taps x C channels as one run, consecutive in HWC): the pixels of
// a block sit at constant offsets (stride x C floats apart) from one base, so the whole tile is
// one implicit GEMM with no packing of x. The HWC result goes back to NCHW with the bias, the
// residual and ReLU fused into the transpose (the Winograd kernel's too).
#pragma once
#include "common/conv_shape.h"
#include "common/types.h"
#include "cpu/conv_winograd_c16.h"

namespace fastlayers::cpu {

constexpr int kHwcMaxTaps = 49;  // 7x7 (hwc_possible)

// Whether this kernel can run the forward of `s` on this machine (AVX2 or AVX-512).
bool hwc_possible(const Conv2dShape& s);

// Whether the kernel takes the forward of `s` by default, per call (where Winograd does not:
// conv.cpp) and in the inference plan: on AVX2 machines, the layers that are not 1x1, have more than
// one input channel and at most 2^17 filter floats. Backward-weight per call also needs 6 input
// channels or more (its register blocks of 6 channels), and takes 1x1 stride-2 layers of at most
// 2048 filter floats. The reasons and figures are in conv_hwc.cpp.
bool hwc_by_default(const Conv2dShape& s);
bool hwc_backward_weight_by_default(const Conv2dShape& s);

// Filters packed once: Wk[(r*S + t)*C + c][k] = w[k][c][r][t].
index_t hwc_filter_floats(const Conv2dShape& s);
void hwc_prepare(const Conv2dShape& s, const float* w, float* Wk);

// One thread's workspace, in the geometry struct the Winograd's transposes read: the HWC image
// (Hp x Wp x C, every tap of every output pixel inside it and the whole padded image) at xin_off,
// the HWC output (P x Q x K) at yout_off, its 2x2 pool (OutPool) at pool_off, `slice` floats in all.
WinoC16Geom hwc_geom(const Conv2dShape& s);
index_t hwc_slice_floats(const Conv2dShape& s);

// y (K, P, Q) of one image, as winograd_c16_forward_image (conv_winograd_c16.h): + bias (may be
// null), then + res (may be null) and ReLU when `relu`; ws, t / team and io the same way.
void hwc_forward_image(const Conv2dShape& s, const float* x, const float* Wk, const float* bias, const float* res,
                       bool relu, float* y, float* ws, int t, int team, ImageIo io = {});

// ---- Per call (conv.cpp): the filters packed into the workspace, then the images over the
// threads (or the threads over each image).
index_t hwc_call_floats(const Conv2dShape& s, int threads);
bool hwc_forward_call(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y,
                      float* workspace, index_t workspace_floats);

// ---- Backward-weight per call (conv.cpp): grad_w (K, C, R, S), overwritten, from grad_out and x,
// the adjoint of the forward's sum in the filters on the same HWC copies (conv_hwc_kernels.h): the
// stride-2 layers' backward-weight ran on im2col + GEMM at ~20 GF/s on AVX2 (a strided gather and
// a GEMM with a reduction of one image's pixels per call).
index_t hwc_backward_weight_floats(const Conv2dShape& s, int threads);
bool hwc_backward_weight_call(const Conv2dShape& s, const float* grad_out, const float* x, float* grad_w,
                              float* workspace, index_t workspace_floats);

// ---- Backward-data per call of stride-2 layers (conv.cpp), as four stride-1 sums, one per phase of
// grad_x's rows and columns (conv_hwc_kernels.h, backward_data_image): the im2col + GEMM path's
// col2im scatter ran it at ~30 GF/s on AVX2. C and K multiples of 16, padding below the filter size.
struct HwcBdPhase {
  index_t rows, cols;        // grad_x pixels of this phase
  index_t runs;              // its taps
  index_t dr[kHwcMaxTaps], dt[kHwcMaxTaps];  // each tap's grad_out offset (rows, columns)
  index_t w_off;             // its packed filters (runs x K x C) in hwc_bd_prepare's array
  index_t out_off;           // its HWC output in the slice
};
struct HwcBdGeom {
  index_t B, Wg, gpad_floats;  // grad_out in HWC with a zero border of B pixels, Wg pixels a row
  HwcBdPhase phase[2][2];
  index_t slice;
};
bool hwc_bd_possible(const Conv2dShape& s);
bool hwc_backward_data_by_default(const Conv2dShape& s);  // AVX2, up to 2^15 filter floats (figures: conv_hwc.cpp)
HwcBdGeom hwc_bd_geom(const Conv2dShape& s);
void hwc_bd_prepare(const Conv2dShape& s, const float* w, float* Wp);  // R*S*K*C floats
index_t hwc_backward_data_floats(const Conv2dShape& s, int threads);
bool hwc_backward_data_call(const Conv2dShape& s, const float* grad_out, const float* w, float* grad_x,
                            float* workspace, index_t workspace_floats);

}  // namespace fastlayers::cpu
