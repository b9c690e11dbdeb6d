// Device code of the CUDA 3-D pooling (csrc/cuda/pool3d.cu has the launchers). Forward: a thread
// per output window. Backward: a thread per input cell gathering from every window that contains it,
// in window order (the CPU's scatter order), each cell written once: no atomics, deterministic. Max
// backward recomputes each covering window's winner from x. A header with no host-only CUDA API, so
// csrc/cuda/host_emulation can compile and run it with g++.
#pragma once
#include <cmath>
#include <cstdint>

#include "common/types.h"

namespace fastlayers::cuda::pool3d_detail {

template <class I>
struct Geo3 {
  I planes, d, h, w, kd, kh, kw, sd, sh, sw, pd, ph, pw, dd, dh, dw, od, oh, ow;
};

// G: Pool3dGeometry (csrc/common/pool3d_geometry.h).
template <class I, class G>
Geo3<I> narrow3(const G& g) {
  return {static_cast<I>(g.planes), static_cast<I>(g.d),  static_cast<I>(g.h),  static_cast<I>(g.w),
          static_cast<I>(g.kd),     static_cast<I>(g.kh), static_cast<I>(g.kw), static_cast<I>(g.sd),
          static_cast<I>(g.sh),     static_cast<I>(g.sw), static_cast<I>(g.pd), static_cast<I>(g.ph),
          static_cast<I>(g.pw),     static_cast<I>(g.dd), static_cast<I>(g.dh), static_cast<I>(g.dw),
          static_cast<I>(g.od),     static_cast<I>(g.oh), static_cast<I>(g.ow)};
}

template <class I>
__device__ __forceinline__ I cdiv(I a, I b) {
  return (a + b - 1) / b;
}

// Taps [lo, hi) of window i along one axis whose cells i*s - p + j*dil lie in [0, n).
template <class I>
__device__ __forceinline__ void taps(I i, I n, I k, I s, I p, I dil, I& lo, I& hi) {
  const I start = i * s - p;
  lo = start >= 0 ? I(0) : cdiv<I>(-start, dil);
  hi = (n - 1 - start) < 0 ? I(0) : ((n - 1 - start) / dil + 1 < k ? (n - 1 - start) / dil + 1 : k);
  if (hi < lo) hi = lo;
}

// Windows along one axis whose taps can reach cell x: [first, last] (empty when first > last).
template <class I>
__device__ __forceinline__ void covering(I x, I k, I s, I p, I dil, I n_out, I& first, I& last) {
  const I reach = x + p - (k - 1) * dil;  // smallest window start (+p) whose last tap reaches x
  first = reach <= 0 ? I(0) : cdiv<I>(reach, s);
  const I l = (x + p) / s;  // largest i with i*s - p <= x
  last = l < n_out - 1 ? l : n_out - 1;
}

__device__ __forceinline__ bool beats3(float v, float best) { return v > best || v != v; }

// Flat in-volume index of window (i, j, l)'s winner, -1 when it has no real cell; its value in *best.
template <class I>
__device__ __forceinline__ I argmax3(const float* __restrict__ vol, const Geo3<I>& g, I i, I j, I l, float* best) {
  I d0, d1, h0, h1, w0, w1;
  taps(i, g.d, g.kd, g.sd, g.pd, g.dd, d0, d1);
  taps(j, g.h, g.kh, g.sh, g.ph, g.dh, h0, h1);
  taps(l, g.w, g.kw, g.sw, g.pw, g.dw, w0, w1);
  const I ds = i * g.sd - g.pd, hs = j * g.sh - g.ph, ws = l * g.sw - g.pw;
  I at = -1;
  float b = -INFINITY;
  for (I t = d0; t < d1; ++t)
    for (I r = h0; r < h1; ++r)
      for (I c = w0; c < w1; ++c) {
        const I idx = ((ds + t * g.dd) * g.h + hs + r * g.dh) * g.w + ws + c * g.dw;
        const float v = vol[idx];
        if (at < 0 || beats3(v, b)) {
          b = v;
          at = idx;
        }
      }
  *best = b;
  return at;
}

// PyTorch's divisor for window (i, j, l) (double: three extents may multiply past 2^63).
template <class I>
__device__ __forceinline__ double divisor3(const Geo3<I>& g, I i, I j, I l, bool include, std::int64_t override_) {
  if (override_ != 0) return static_cast<double>(override_);
  auto extent = [include](I o, I n, I k, I s, I p) {
    const I start = o * s - p, end_pad = start + k < n + p ? start + k : n + p;
    if (include) return static_cast<double>(end_pad - start);
    const I lo = start > 0 ? start : I(0), hi = start + k < n ? start + k : n;
    return static_cast<double>(hi - lo);
  };
  return extent(i, g.d, g.kd, g.sd, g.pd) * extent(j, g.h, g.kh, g.sh, g.ph) * extent(l, g.w, g.kw, g.sw, g.pw);
}

template <class I>
__device__ __forceinline__ I first_index3() {
  return static_cast<I>(blockIdx.x) * static_cast<I>(blockDim.x) + static_cast<I>(threadIdx.x);
}
template <class I>
__device__ __forceinline__ I grid_step3() {
  return static_cast<I>(gridDim.x) * static_cast<I>(blockDim.x);
}

template <class I>
__global__ void max3_forward_kernel(const float* __restrict__ x, float* __restrict__ y, std::int64_t* __restrict__ idx,
                                    Geo3<I> g, I n) {
  for (I o = first_index3<I>(); o < n; o += grid_step3<I>()) {
    const I l = o % g.ow, t1 = o / g.ow, j = t1 % g.oh, t2 = t1 / g.oh, i = t2 % g.od, p = t2 / g.od;
    float best;
    const I at = argmax3(x + p * g.d * g.h * g.w, g, i, j, l, &best);
    y[o] = best;
    if (idx != nullptr) idx[o] = static_cast<std::int64_t>(at);
  }
}

// Input cell e's gradient: grad_out summed over the windows covering it whose winner is e.
// winner(i, j, l) gives the flat index of window (i, j, l)'s winner in e's volume: recomputed from x,
// or read from max_pool3d's indices. A gather per input cell: deterministic, no atomics.
template <class I, class Winner>
__device__ __forceinline__ float max3_gather(const float* __restrict__ gp, const Geo3<I>& g, I z, I r, I c,
                                             Winner winner) {
  const I self = (z * g.h + r) * g.w + c;
  I i0, i1, j0, j1, l0, l1;
  covering(z, g.kd, g.sd, g.pd, g.dd, g.od, i0, i1);
  covering(r, g.kh, g.sh, g.ph, g.dh, g.oh, j0, j1);
  covering(c, g.kw, g.sw, g.pw, g.dw, g.ow, l0, l1);
  float acc = 0.0f;
  for (I i = i0; i <= i1; ++i)
    for (I j = j0; j <= j1; ++j)
      for (I l = l0; l <= l1; ++l)
        if (winner(i, j, l) == self) acc += gp[(i * g.oh + j) * g.ow + l];
  return acc;
}

template <class I>
__global__ void max3_backward_kernel(const float* __restrict__ go, const float* __restrict__ x, float* __restrict__ gi,
                                     Geo3<I> g, I n) {
  for (I e = first_index3<I>(); e < n; e += grid_step3<I>()) {
    const I c = e % g.w, t1 = e / g.w, r = t1 % g.h, t2 = t1 / g.h, z = t2 % g.d, p = t2 / g.d;
    const float* vol = x + p * g.d * g.h * g.w;
    gi[e] = max3_gather(go + p * g.od * g.oh * g.ow, g, z, r, c, [&](I i, I j, I l) {
      float best;
      return argmax3(vol, g, i, j, l, &best);
    });
  }
}

// As max3_backward_kernel, the winners read from max_pool3d's indices instead of recomputed.
template <class I>
__global__ void max3_backward_indices_kernel(const float* __restrict__ go, const std::int64_t* __restrict__ idx,
                                             float* __restrict__ gi, Geo3<I> g, I n) {
  for (I e = first_index3<I>(); e < n; e += grid_step3<I>()) {
    const I c = e % g.w, t1 = e / g.w, r = t1 % g.h, t2 = t1 / g.h, z = t2 % g.d, p = t2 / g.d;
    const std::int64_t* ip = idx + p * g.od * g.oh * g.ow;
    gi[e] = max3_gather(go + p * g.od * g.oh * g.ow, g, z, r, c,
                        [&](I i, I j, I l) { return static_cast<std::int64_t>(ip[(i * g.oh + j) * g.ow + l]); });
  }
}

template <class I>
__global__ void avg3_forward_kernel(const float* __restrict__ x, float* __restrict__ y, Geo3<I> g, I n, bool include,
                                    std::int64_t override_) {
  for (I o = first_index3<I>(); o < n; o += grid_step3<I>()) {
    const I l = o % g.ow, t1 = o / g.ow, j = t1 % g.oh, t2 = t1 / g.oh, i = t2 % g.od, p = t2 / g.od;
    const float* vol = x + p * g.d * g.h * g.w;
    I d0, d1, h0, h1, w0, w1;
    taps(i, g.d, g.kd, g.sd, g.pd, I(1), d0, d1);
    taps(j, g.h, g.kh, g.sh, g.ph, I(1), h0, h1);
    taps(l, g.w, g.kw, g.sw, g.pw, I(1), w0, w1);
    const I ds = i * g.sd - g.pd, hs = j * g.sh - g.ph, ws = l * g.sw - g.pw;
    float s = 0.0f;
    for (I t = d0; t < d1; ++t)
      for (I r = h0; r < h1; ++r)
        for (I c = w0; c < w1; ++c) s += vol[((ds + t) * g.h + hs + r) * g.w + ws + c];
    y[o] = static_cast<float>(s / divisor3(g, i, j, l, include, override_));
  }
}

template <class I>
__global__ void avg3_backward_kernel(const float* __restrict__ go, float* __restrict__ gi, Geo3<I> g, I n, bool include,
                                     std::int64_t override_) {
  for (I e = first_index3<I>(); e < n; e += grid_step3<I>()) {
    const I c = e % g.w, t1 = e / g.w, r = t1 % g.h, t2 = t1 / g.h, z = t2 % g.d, p = t2 / g.d;
    const float* gp = go + p * g.od * g.oh * g.ow;
    I i0, i1, j0, j1, l0, l1;
    covering(z, g.kd, g.sd, g.pd, I(1), g.od, i0, i1);
    covering(r, g.kh, g.sh, g.ph, I(1), g.oh, j0, j1);
    covering(c, g.kw, g.sw, g.pw, I(1), g.ow, l0, l1);
    float acc = 0.0f;
    for (I i = i0; i <= i1; ++i)
      for (I j = j0; j <= j1; ++j)
        for (I l = l0; l <= l1; ++l)
          acc += static_cast<float>(gp[(i * g.oh + j) * g.ow + l] / divisor3(g, i, j, l, include, override_));
    gi[e] = acc;
  }
}

}  // namespace fastlayers::cuda::pool3d_detail
