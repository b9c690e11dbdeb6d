// Direct convolution with output *pixels* in the vector lanes, for the inference plan
// (csrc/cpu/plan): layers with at most 25 taps (C x R x S; 64 for AVX2's blocked rows) - a
// network's first conv on 1-channel images (1 -> 16 3x3, 1 -> 32 5x5, LeNet-5's 1 -> 6 5x5) and the
// 1x1 stride-2 projections of residual blocks (16 -> 32, 32 -> 64). Stride 1 or 2, dilation 1, one group, any K.
//
// Why: with so few taps, the channels-in-lanes direct kernel (conv_smallc.h) spends as much on
// transposing its tiles back to NCHW as on its FMAs, and fills a 16-lane vector with 6 channels.
// Here the 16 output pixels of a row segment are a vector: their taps' input vectors (a zero-padded
// copy of the image, even columns gathered for stride 2) are loaded once into registers, then each
// output channel is TAPS FMAs with broadcast weights and one store straight into its NCHW row.
#pragma once
#include "common/conv_shape.h"
#include "common/types.h"

namespace fastlayers::cpu {

// The zero-padded copy of an image the kernels read: plane c, row i, column j =
// x[c][i - pad_h][j - pad_w] (0 outside), Wp floats a row. Without padding x is read in place
// (copy == false). slack (backward-weight): always a copy, each row with 32 floats of zeros after
// it, so that whole-vector loads stay in their row. (Masked loads read x in place; in
// backward-weight, one per FMA, those that crossed a page made the CNN's conv1 3.8x slower.)
// subsampled (the blocked rows' 1x1 stride-2 layers): the copy is x's even rows and columns, P x Q
// a plane, read as a stride-1 image.
struct PixconvPadded {
  index_t Hp, Wp, plane;
  bool copy;
  bool subsampled = false;
};
PixconvPadded pixconv_padded(const Conv2dShape& s, bool slack);

// Whether this kernel can run the forward of `s` on this machine.
bool pixconv_possible(const Conv2dShape& s);

// Whether the forward runs the register-blocked rows (AVX2, more than 11 taps: up to kPixconvMaxTaps
// at stride 1, up to kPixconvMaxBlockedTaps for 1x1 stride-2 layers; the reasons are in
// conv_pixels.cpp) rather than the rows that keep every tap's input vector in registers (up to
// kPixconvMaxTaps, as backward-weight).
bool pixconv_blocked_rows(const Conv2dShape& s);
constexpr index_t kPixconvMaxTaps = 25, kPixconvMaxBlockedTaps = 64;

// Workspace floats per thread (the zero-padded image; 0 without padding, x is read in place).
index_t pixconv_slice_floats(const Conv2dShape& s);

// y (K, P, Q) of one image = conv(x (C, H, W)) with the plain filters w (K, C, R, S) + bias (may be
// null), then + res (shaped as y; may be null) and ReLU when `relu`. `ws`: the calling thread's
// slice (team == 1), or - inside an OpenMP parallel region of `team` threads, each calling with its
// thread number `t` - the first thread's slice, shared (the team splits the rows).
void pixconv_forward_image(const Conv2dShape& s, const float* x, const float* w, const float* bias, const float* res,
                           bool relu, float* y, float* ws, int t, int team);

// ---- Per call (conv.cpp): the forward over the batch (images over the threads, or the threads over
// each image), and backward-weight: per thread, per output channel, a 16-lane sum for every tap
// over its images; the lanes, then the threads (in order) added at the end.
index_t pixconv_call_floats(const Conv2dShape& s, ConvPass pass, int threads);
bool pixconv_forward_call(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y,
                          float* workspace, index_t workspace_floats);
bool pixconv_backward_weight_call(const Conv2dShape& s, const float* grad_out, const float* x, float* grad_w,
                                  float* workspace, index_t workspace_floats);

}  // namespace fastlayers::cpu
