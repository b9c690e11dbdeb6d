// Direct AVX-512 convolution for layers with few input channels per group (the first layers of a
// CNN: LeNet's 1 -> 32 5x5, AlexNet's 3 -> 64 11x11 stride 4), forward and backward-weight.
// Internal to csrc/cpu/conv.cpp, which picks this path (smallc_applies) and owns the workspace.
//
// Why: with C*R*S small the GEMM of im2col + sgemm has a short inner dimension, and the im2col
// (a strided gather for stride > 1) costs as much as a third of the GEMM. Here each image is
// first split into stride phases ("space to depth", zero padding included):
//   xs[c][ph][pw][hq][wq] = x[c][hq*sh + ph - pad_h][wq*sw + pw - pad_w]   (0 outside the image)
// so that tap (c, r, t) of output pixel (p, q) is xs[off(c, r, t) + p*Wq + q], with
// off = plane(c, (r*dh) % sh, (t*dw) % sw) + ((r*dh) / sh) * Wq + (t*dw) / sw. Numbering output
// pixels "wide", j = p*Wq + q (Wq >= Q columns per row, the ones past Q computed and dropped),
// every tap reads a contiguous run of xs for consecutive j: the kernels load x vectors straight
// from xs, no im2col and no packing.
#pragma once
#include "common/conv_shape.h"
#include "common/types.h"

namespace fastlayers::cpu {

struct SmallCPlan {
  index_t Hq, Wq;     // rows / columns of one phase plane
  index_t xs_floats;  // the phase planes of one (image, group), plus a zeroed tail for overreads
  index_t jw;         // P * Wq: wide output pixels
  index_t jw_pad;     // jw rounded up to whole 48-pixel blocks
  index_t CRS;
  // Backward-weight: the zero-padded image (Hp x Wp per channel; xp_floats = 0 without padding,
  // x itself is read then), grad_out^T staged rows_block output rows at a time, channels padded
  // to Kv (a multiple of 16).
  index_t Hp, Wp, xp_floats, rows_block, Kv;
};

SmallCPlan smallc_plan(const Conv2dShape& s);

// Whether the direct path runs this pass (forward or backward_weight) on this machine and shape.
bool smallc_applies(const Conv2dShape& s, ConvPass pass);

// Workspace: `shared` floats once per call (forward: the repacked filters of every group), then
// `slice` floats per thread.
index_t smallc_shared_floats(const Conv2dShape& s, ConvPass pass);
index_t smallc_slice_floats(const Conv2dShape& s, ConvPass pass);

// Forward, filters of all groups into wp (smallc_shared_floats).
void smallc_pack_weights(const Conv2dShape& s, const float* w, float* wp);

// y of one (image, group) = conv(x of that image and group) + bias (bias may be null). wp: the
// group's packed filters. `parallel`: split the work over an OpenMP team (called outside any
// parallel region).
void smallc_forward_image(const Conv2dShape& s, const float* x, const float* wp, const float* bias, float* y,
                          float* slice, bool parallel);

// grad_w of one group (K/groups x C/groups*R*S) = (overwrite ? 0 : grad_w) + the contribution of
// `images` consecutive images, from their grad_out (the group's K/groups x P*Q rows of each) and x
// (the group's C/groups planes of each). Unit column dilation only (smallc_applies).
void smallc_backward_weight(const Conv2dShape& s, const float* grad_out, const float* x, index_t images,
                            float* grad_w, bool overwrite, float* slice, bool parallel);

}  // namespace fastlayers::cpu
