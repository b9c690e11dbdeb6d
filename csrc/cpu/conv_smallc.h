// Direct AVX-512 convolution, forward and backward-weight. Written for layers with few input
// channels per group (hence "smallc": the first layers of a CNN, LeNet's 1 -> 32 5x5, AlexNet's
// 3 -> 64 11x11 stride 4); measured faster than im2col / implicit GEMM on many other shapes too,
// so smallc_applies (conv_smallc.cpp, with the figures) takes those as well. Internal to
// csrc/cpu/conv.cpp, which picks this path and owns the workspace.
//
// Why: with C*R*S small the GEMM of im2col + sgemm has a short inner dimension, and the im2col
// (a strided gather for stride > 1) and the packing cost as much as a third of the GEMM. Both
// passes here vectorise over output channels (16 per zmm) and broadcast x, so that x is read in
// place, never packed:
// - forward: each image is split into stride phases ("space to depth", zero padding included),
//     xs[c][ph][pw][hq][wq] = x[c][hq*sh + ph - pad_h][wq*sw + pw - pad_w]   (0 outside the image),
//   so tap (c, r, t) of output pixel (p, q) is xs[off(c, r, t) + p*Wq + q] with
//   off = plane(c, (r*dh) % sh, (t*dw) % sw) + ((r*dh) / sh) * Wq + (t*dw) / sw: consecutive output
//   pixels of a row read consecutive floats for every tap. A tile is 14 (or 8) pixels x 32
//   channels.
// - backward-weight: grad_w^T (taps x channels) in tiles of up to 14 taps of one kernel row x 32
//   channels, summed over the pixels: per pixel, grad_out^T (staged transposed) gives the channel
//   vectors and the taps' x values sit at offsets 0..13 of a (zero-padded) image row.
#pragma once
#include "common/conv_shape.h"
#include "common/types.h"

namespace fastlayers::cpu {

struct SmallCPlan {
  index_t Hq, Wq;     // forward: rows / columns of one phase plane
  index_t xs_floats;  // the phase planes of one (image, group), plus a zeroed tail for overreads
  index_t TP;         // forward: output pixels per tile, 7 (x 64 channels) or 8 to 14 (x 16 or 32)
  index_t KB;         // forward: output channels per filter block (smallc_filter_index), 32 or 64
  bool pairs;         // forward, K/groups <= 8: lanes are (channel, pixel pair), TP = 16 to 32 pixels
  index_t CRS;
  // Backward-weight: the zero-padded image (Hp x Wp per channel; xp_floats = 0 without padding,
  // x itself is read then), grad_out^T staged rows_block output rows at a time, channels padded
  // to Kv (a multiple of 16).
  index_t Hp, Wp, xp_floats, rows_block, Kv;
};

SmallCPlan smallc_plan(const Conv2dShape& s);

// Where channel c of tap `tap` sits in one group's packed filters: blocks of KB (SmallCPlan) output
// channels (the last one narrower when KB does not divide Kv), each block [tap][width], so that a
// tile's filter stream is contiguous whatever Kv is.
inline index_t smallc_filter_index(index_t CRS, index_t Kv, index_t KB, index_t tap, index_t c) {
  const index_t b0 = c / KB * KB, width = Kv - b0 < KB ? Kv - b0 : KB;
  return b0 * CRS + tap * width + (c - b0);
}

// With SmallCPlan::pairs (Kv = 16, K/groups <= 8): each tap's 16 floats become channels 0-7 each
// twice, lane 2c + p = w[c] (in place, from the top down).
inline void smallc_expand_pairs(float* w, index_t taps) {
  for (index_t t = 0; t < taps; ++t, w += 16)
    for (index_t c = 7; c >= 0; --c) w[2 * c] = w[2 * c + 1] = w[c];
}

// Whether the direct path runs this pass (forward or backward_weight) on this machine and shape.
bool smallc_applies(const Conv2dShape& s, ConvPass pass);

// Whether the forward runs here with filters packed once ahead of the calls (the inference plan,
// csrc/cpu/plan): as smallc_applies, and also from 256 channels up, where packing per call is
// what lost to the GEMM paths.
bool smallc_applies_prepacked(const Conv2dShape& s);

// Workspace: `shared` floats once per call (forward: the tap offsets, then the filters of every
// group as w^T with channels padded to Kv), then `slice` floats per thread.
index_t smallc_shared_floats(const Conv2dShape& s, ConvPass pass);
index_t smallc_slice_floats(const Conv2dShape& s, ConvPass pass);

// Forward: fills `shared` (smallc_shared_floats) once per call with what every image reads: the
// tap offsets into the phase planes and the packed filters of all groups.
void smallc_prepare_forward(const Conv2dShape& s, const float* w, float* shared);

// For backward-data as a forward convolution `t` (conv.cpp's transposed_shape of `s`): as
// smallc_prepare_forward for `t`, with the filters of `s` transposed (C <-> K within each group)
// and flipped (r -> R-1-r, t -> S-1-t).
void smallc_prepare_forward_flipped(const Conv2dShape& s, const Conv2dShape& t, const float* w, float* shared);

// y of one (image, group) = conv(x of that image and group) + bias (bias may be null). shared:
// filled by smallc_prepare_forward. `parallel`: split the work over an OpenMP team (called
// outside any parallel region). ldy: floats between y's channel planes (0: P*Q; conv3d's slices
// path writes an output depth slice of NCDHW straight into place with OD*P*Q).
void smallc_forward_image(const Conv2dShape& s, const float* x, const float* shared, index_t group,
                          const float* bias, float* y, float* slice, bool parallel, index_t ldy = 0);

// Backward-data computed directly for narrow unpadded stride-1 layers (LeNet conv2: 8x8 -> 12x12
// with 5x5 filters): a tile is a whole row of grad_x (W <= 14) x 32 input channels, and with W and
// S known at compile time every FMA is a useful one; no GEMM, no col2im, no zero fill. Filters
// packed once per call ([k][r][t][C/groups padded to 16]).
bool smallc_backward_data_applies(const Conv2dShape& s);
index_t smallc_backward_data_shared_floats(const Conv2dShape& s);
void smallc_prepare_backward_data(const Conv2dShape& s, const float* w, float* shared);
// grad_x of one (image, group) from its grad_out (the group's K/groups planes).
void smallc_backward_data_image(const Conv2dShape& s, const float* grad_out, const float* shared, index_t group,
                                float* grad_x, bool parallel);

// grad_w of one group (K/groups x C/groups*R*S) = (overwrite ? 0 : grad_w) + the contribution of
// `images` consecutive images, from their grad_out (the group's K/groups x P*Q rows of each) and x
// (the group's C/groups planes of each). Unit column dilation only (smallc_applies). grad_b (null:
// skipped): the group's K/groups biases, likewise = (overwrite ? 0 : grad_b) + the sum of those
// grad_out rows, taken from the transposing pass (no second read of grad_out).
void smallc_backward_weight(const Conv2dShape& s, const float* grad_out, const float* x, index_t images,
                            float* grad_w, float* grad_b, bool overwrite, float* slice, bool parallel);

// The last K floats of a backward-weight slice, unused by smallc_backward_weight: room for a
// thread's partial grad_b.
float* smallc_bias_partial(const Conv2dShape& s, float* slice);

}  // namespace fastlayers::cpu
