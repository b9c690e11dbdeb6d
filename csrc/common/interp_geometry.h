// The per-axis index maps of interpolate (torch.nn.functional.interpolate, modes "nearest" and
// "bilinear"/"linear"), shared by the CPU and CUDA kernels and the host emulation. They reproduce
// PyTorch's CPU arithmetic (aten/src/ATen/native/UpSample.h) in float32 step for step, so the
// nearest source index is the same integer PyTorch picks. Semantics: python/fastlayers/reference/interpolate.py.
//
// `scale` is computed once on the host, as PyTorch does (float32):
//   nearest and align_corners=False: 1/scale_factor when a scale factor is used, else in/out;
//   align_corners=True: (in - 1)/(out - 1), or 0 when out == 1.
#pragma once
#include <cmath>

#include "common/types.h"

#if !defined(FL_HOST_DEVICE)
#if defined(__CUDACC__)
#define FL_HOST_DEVICE __host__ __device__
#else
#define FL_HOST_DEVICE
#endif
#endif

namespace fastlayers {

enum InterpMode : int { kInterpNearest = 0, kInterpLinear = 1, kInterpNearest1d = 2 };

// One call: `planes` (N*C) planes of in_h x in_w -> out_h x out_w (a 1-D interpolation has
// in_h = out_h = 1), per-axis scales as above. `mode` is kInterpNearest, kInterpLinear or
// kInterpNearest1d: PyTorch's 1-D nearest kernel uses the float formula alone, without the
// equal-size and double-size shortcuts of its 2-D kernel (they differ when a scale factor gives
// out == in or out == 2*in but is not 1 or 2).
struct InterpGeometry {
  index_t planes, in_h, in_w, out_h, out_w;
  int mode;
  bool align_corners;
  float scale_h, scale_w;
};

// PyTorch's nearest_idx: sizes equal -> o, output twice the input -> o / 2, else
// min(floor(o * scale), in - 1) in float32. shortcuts = false: the formula alone (1-D).
template <class I>
FL_HOST_DEVICE inline I nearest_source(I o, I in, I out, float scale, bool shortcuts = true) {
  if (shortcuts && out == in) return o;
  if (shortcuts && out == 2 * in) return o >> 1;
  const I i = static_cast<I>(floorf(static_cast<float>(o) * scale));
  return i < in - 1 ? i : in - 1;
}

// PyTorch's compute_source_index_and_lambda (float32): the two input cells and their weights.
template <class I>
FL_HOST_DEVICE inline void linear_source(I o, I in, I out, float scale, bool align_corners, I& i0, I& i1,
                                         float& w0, float& w1) {
  if (out == in) {
    i0 = i1 = o;
    w0 = 1.0f;
    w1 = 0.0f;
    return;
  }
  float real;
  if (align_corners) {
    real = scale * static_cast<float>(o);
  } else {
    real = scale * (static_cast<float>(o) + 0.5f) - 0.5f;
    if (real < 0.0f) real = 0.0f;
  }
  const I f = static_cast<I>(floorf(real));
  i0 = f < in - 1 ? f : in - 1;
  float lambda = real - static_cast<float>(i0);
  lambda = lambda < 0.0f ? 0.0f : (lambda > 1.0f ? 1.0f : lambda);
  i1 = i0 + (i0 < in - 1 ? 1 : 0);
  w1 = lambda;
  w0 = 1.0f - lambda;
}

// The weight output index o gives input index i along one axis (0 when it does not read i).
template <class I>
FL_HOST_DEVICE inline float axis_weight(int mode, I o, I i, I in, I out, float scale, bool align_corners) {
  if (mode != kInterpLinear) return nearest_source<I>(o, in, out, scale, mode == kInterpNearest) == i ? 1.0f : 0.0f;
  I i0, i1;
  float w0, w1;
  linear_source<I>(o, in, out, scale, align_corners, i0, i1, w0, w1);
  return (i0 == i ? w0 : 0.0f) + (i1 == i ? w1 : 0.0f);
}

// The first (lowest) input index output o reads along one axis: non-decreasing in o.
template <class I>
FL_HOST_DEVICE inline I first_source(int mode, I o, I in, I out, float scale, bool align_corners) {
  if (mode != kInterpLinear) return nearest_source<I>(o, in, out, scale, mode == kInterpNearest);
  I i0, i1;
  float w0, w1;
  linear_source<I>(o, in, out, scale, align_corners, i0, i1, w0, w1);
  return i0;
}

// The smallest output index o in [0, out] with first_source(o) >= i (out when none): a guess from the
// inverse map, corrected by stepping (the map is monotone and the guess is off by a cell or two).
template <class I>
FL_HOST_DEVICE inline I first_output_reading(int mode, I i, I in, I out, float scale, bool align_corners) {
  if (i <= 0) return 0;
  I o;
  if (out == in && mode != kInterpNearest1d) {
    o = i;
  } else if (mode == kInterpNearest && out == 2 * in) {
    o = 2 * i;
  } else if (scale > 0.0f) {
    const float inv = mode == kInterpLinear && !align_corners ? (static_cast<float>(i) + 0.5f) / scale - 0.5f
                                                              : static_cast<float>(i) / scale;
    const float g = inv < 0.0f ? 0.0f : (inv > static_cast<float>(out) ? static_cast<float>(out) : inv);
    o = static_cast<I>(g);
  } else {
    o = 0;
  }
  if (o > out) o = out;
  while (o > 0 && first_source<I>(mode, o - 1, in, out, scale, align_corners) >= i) --o;
  while (o < out && first_source<I>(mode, o, in, out, scale, align_corners) < i) ++o;
  return o;
}

// The outputs along one axis that read input index i: [lo, hi). Nearest: first_source == i. Linear:
// first_source in {i - 1, i} (the second cell of an output is its first + 0 or 1).
template <class I>
FL_HOST_DEVICE inline void outputs_reading(int mode, I i, I in, I out, float scale, bool align_corners, I& lo,
                                           I& hi) {
  if (mode != kInterpLinear) {
    lo = first_output_reading<I>(mode, i, in, out, scale, align_corners);
    hi = first_output_reading<I>(mode, i + 1, in, out, scale, align_corners);
  } else {
    lo = first_output_reading<I>(mode, i - 1, in, out, scale, align_corners);
    hi = first_output_reading<I>(mode, i + 1, in, out, scale, align_corners);
  }
}

}  // namespace fastlayers
