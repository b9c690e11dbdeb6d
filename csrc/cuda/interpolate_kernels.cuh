// Device code of the CUDA interpolate (csrc/cuda/interpolate.cu has the launchers). No host-only CUDA
// API, so csrc/cuda/host_emulation can compile it with g++ and run it.
#pragma once
#include "common/interp_geometry.h"
#include "common/types.h"

namespace fastlayers::cuda::interp_detail {

template <class I>
struct Geo {
  I planes, in_h, in_w, out_h, out_w;
  int mode;
  bool align;
  float scale_h, scale_w;
};

template <class I>
Geo<I> narrow(const InterpGeometry& g) {
  return {static_cast<I>(g.planes), static_cast<I>(g.in_h), static_cast<I>(g.in_w), static_cast<I>(g.out_h),
          static_cast<I>(g.out_w),  g.mode,                   g.align_corners,         g.scale_h,
          g.scale_w};
}

template <class I>
__global__ void interpolate_forward_kernel(const float* __restrict__ x, float* __restrict__ y, Geo<I> g, I total) {
  const I step = static_cast<I>(gridDim.x) * blockDim.x;
  for (I e = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += step) {
    const I ow = e % g.out_w, r = e / g.out_w;
    const I oh = r % g.out_h, p = r / g.out_h;
    const float* plane = x + p * g.in_h * g.in_w;
    if (g.mode != kInterpLinear) {
      const bool shortcuts = g.mode == kInterpNearest;
      const I h = nearest_source<I>(oh, g.in_h, g.out_h, g.scale_h, shortcuts);
      const I w = nearest_source<I>(ow, g.in_w, g.out_w, g.scale_w, shortcuts);
      y[e] = plane[h * g.in_w + w];
    } else {
      I h0, h1, w0, w1;
      float lh0, lh1, lw0, lw1;
      linear_source<I>(oh, g.in_h, g.out_h, g.scale_h, g.align, h0, h1, lh0, lh1);
      linear_source<I>(ow, g.in_w, g.out_w, g.scale_w, g.align, w0, w1, lw0, lw1);
      const float* r0 = plane + h0 * g.in_w;
      const float* r1 = plane + h1 * g.in_w;
      const float top = r0[w0] * lw0 + r0[w1] * lw1;
      const float bottom = r1[w0] * lw0 + r1[w1] * lw1;
      y[e] = top * lh0 + bottom * lh1;
    }
  }
}

template <class I>
__global__ void interpolate_backward_kernel(const float* __restrict__ grad_out, float* __restrict__ grad_in,
                                            Geo<I> g, I total) {
  const I step = static_cast<I>(gridDim.x) * blockDim.x;
  for (I e = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += step) {
    const I w = e % g.in_w, r = e / g.in_w;
    const I h = r % g.in_h, p = r / g.in_h;
    I oh0, oh1, ow0, ow1;
    outputs_reading<I>(g.mode, h, g.in_h, g.out_h, g.scale_h, g.align, oh0, oh1);
    outputs_reading<I>(g.mode, w, g.in_w, g.out_w, g.scale_w, g.align, ow0, ow1);
    const float* plane = grad_out + p * g.out_h * g.out_w;
    float sum = 0.0f;
    for (I oh = oh0; oh < oh1; ++oh) {
      const float wh = axis_weight<I>(g.mode, oh, h, g.in_h, g.out_h, g.scale_h, g.align);
      if (wh == 0.0f) continue;
      float s = 0.0f;
      for (I ow = ow0; ow < ow1; ++ow) {
        const float ww = axis_weight<I>(g.mode, ow, w, g.in_w, g.out_w, g.scale_w, g.align);
        if (ww != 0.0f) s += ww * plane[oh * g.out_w + ow];  // as the CPU: weight-0 taps add nothing
      }
      sum += wh * s;
    }
    grad_in[e] = sum;
  }
}

}  // namespace fastlayers::cuda::interp_detail
