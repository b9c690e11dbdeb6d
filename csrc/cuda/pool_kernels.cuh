// Device code of the CUDA pooling (csrc/cuda/pool.cu has the launchers and the overview). A header
// with no host-only CUDA API, so csrc/cuda/host_emulation can compile it with g++ and run it.
#pragma once
#include <cmath>

#include "common/types.h"

namespace fastlayers::cuda::pool_detail {

template <class I>
struct Geo {
  I planes, h, w, kh, kw, sh, sw, ph, pw, oh, ow;
};

// G: any struct with Pool2dGeometry's fields and oh()/ow() (csrc/common/pool_geometry.h).
template <class I, class G>
Geo<I> narrow(const G& g) {
  return {static_cast<I>(g.planes), static_cast<I>(g.h),  static_cast<I>(g.w),  static_cast<I>(g.kh),
          static_cast<I>(g.kw),     static_cast<I>(g.sh), static_cast<I>(g.sw), static_cast<I>(g.ph),
          static_cast<I>(g.pw),     static_cast<I>(g.oh()), static_cast<I>(g.ow())};
}

// Input rows [r0, r1) and columns [c0, c1) of window (i, j), padding clipped (never empty, as
// padding <= kernel/2).
template <class I>
struct Win {
  I r0, r1, c0, c1;
};

template <class I>
__device__ __forceinline__ Win<I> window(const Geo<I>& g, I i, I j) {
  const I hs = i * g.sh - g.ph, ws = j * g.sw - g.pw;
  return {hs > 0 ? hs : I(0), hs + g.kh < g.h ? hs + g.kh : g.h, ws > 0 ? ws : I(0),
          ws + g.kw < g.w ? ws + g.kw : g.w};
}

// Windows (along one axis) that contain input coordinate r: [first, last], empty when first > last.
template <class I>
__device__ __forceinline__ I first_window(I r, I pad, I k, I s) {
  return r + pad < k ? I(0) : (r + pad - k) / s + 1;  // smallest i with i*s - pad + k > r
}
template <class I>
__device__ __forceinline__ I last_window(I r, I pad, I s, I n_out) {
  const I i = (r + pad) / s;  // largest i with i*s - pad <= r
  return i < n_out - 1 ? i : n_out - 1;
}

// A larger value or any NaN displaces the running maximum (csrc/cpu/pool_2x2.h, pool_beats): ties
// keep the first maximum, the gradient goes to the last NaN.
__device__ __forceinline__ bool beats(float v, float best) { return v > best || v != v; }

// In-plane flat index of the winner of a window, row-major scan.
template <class I>
__device__ __forceinline__ I argmax(const float* __restrict__ plane, I w, const Win<I>& win) {
  I at = win.r0 * w + win.c0;
  float best = plane[at];
  for (I r = win.r0; r < win.r1; ++r)
    for (I c = win.c0; c < win.c1; ++c) {
      const float v = plane[r * w + c];
      if (beats(v, best)) {
        best = v;
        at = r * w + c;
      }
    }
  return at;
}

template <class I>
__device__ __forceinline__ I first_index() {
  return static_cast<I>(blockIdx.x) * static_cast<I>(blockDim.x) + static_cast<I>(threadIdx.x);
}
template <class I>
__device__ __forceinline__ I grid_step() {
  return static_cast<I>(gridDim.x) * static_cast<I>(blockDim.x);
}

// ------------------------------------------------------------------------------------- kernels

template <class I>
__global__ void max_forward_kernel(const float* __restrict__ x, float* __restrict__ y, Geo<I> g, I n) {
  for (I idx = first_index<I>(); idx < n; idx += grid_step<I>()) {
    const I j = idx % g.ow, t = idx / g.ow, i = t % g.oh, p = t / g.oh;
    const float* plane = x + p * g.h * g.w;
    const Win<I> win = window(g, i, j);
    float best = plane[win.r0 * g.w + win.c0];
    for (I r = win.r0; r < win.r1; ++r)
      for (I c = win.c0; c < win.c1; ++c) {
        const float v = plane[r * g.w + c];
        best = beats(v, best) ? v : best;
      }
    y[idx] = best;
  }
}

template <class I>
__global__ void max_backward_kernel(const float* __restrict__ go, const float* __restrict__ x,
                                    float* __restrict__ gi, Geo<I> g, I n) {
  for (I idx = first_index<I>(); idx < n; idx += grid_step<I>()) {
    const I c = idx % g.w, t = idx / g.w, r = t % g.h, p = t / g.h;
    const float* plane = x + p * g.h * g.w;
    const float* gp = go + p * g.oh * g.ow;
    const I self = r * g.w + c;
    const I i0 = first_window(r, g.ph, g.kh, g.sh), i1 = last_window(r, g.ph, g.sh, g.oh);
    const I j0 = first_window(c, g.pw, g.kw, g.sw), j1 = last_window(c, g.pw, g.sw, g.ow);
    float acc = 0.0f;
    for (I i = i0; i <= i1; ++i)
      for (I j = j0; j <= j1; ++j)
        if (argmax(plane, g.w, window(g, i, j)) == self) acc += gp[i * g.ow + j];
    gi[idx] = acc;
  }
}

template <class I>
__global__ void avg_forward_kernel(const float* __restrict__ x, float* __restrict__ y, Geo<I> g, I n,
                                   float full, bool count_include_pad) {
  for (I idx = first_index<I>(); idx < n; idx += grid_step<I>()) {
    const I j = idx % g.ow, t = idx / g.ow, i = t % g.oh, p = t / g.oh;
    const float* plane = x + p * g.h * g.w;
    const Win<I> win = window(g, i, j);
    float s = 0.0f;
    for (I r = win.r0; r < win.r1; ++r)
      for (I c = win.c0; c < win.c1; ++c) s += plane[r * g.w + c];
    y[idx] = s / (count_include_pad ? full : static_cast<float>((win.r1 - win.r0) * (win.c1 - win.c0)));
  }
}

template <class I>
__global__ void avg_backward_kernel(const float* __restrict__ go, float* __restrict__ gi, Geo<I> g, I n,
                                    float full, bool count_include_pad) {
  for (I idx = first_index<I>(); idx < n; idx += grid_step<I>()) {
    const I c = idx % g.w, t = idx / g.w, r = t % g.h, p = t / g.h;
    const float* gp = go + p * g.oh * g.ow;
    const I i0 = first_window(r, g.ph, g.kh, g.sh), i1 = last_window(r, g.ph, g.sh, g.oh);
    const I j0 = first_window(c, g.pw, g.kw, g.sw), j1 = last_window(c, g.pw, g.sw, g.ow);
    float acc = 0.0f;
    for (I i = i0; i <= i1; ++i)
      for (I j = j0; j <= j1; ++j) {
        float div = full;
        if (!count_include_pad) {
          const Win<I> win = window(g, i, j);
          div = static_cast<float>((win.r1 - win.r0) * (win.c1 - win.c0));
        }
        acc += gp[i * g.ow + j] / div;
      }
    gi[idx] = acc;
  }
}

// |v|^p and the window norm exactly as csrc/cpu/pool.cpp computes them (double).
__device__ __forceinline__ double abs_pow(float v, double p) {
  const double a = fabs(static_cast<double>(v));
  return p == 1.0 ? a : p == 2.0 ? a * a : pow(a, p);
}

template <class I>
__device__ __forceinline__ double lp_norm(const float* __restrict__ plane, I w, const Win<I>& win, double p) {
  double s = 0.0;
  for (I r = win.r0; r < win.r1; ++r)
    for (I c = win.c0; c < win.c1; ++c) s += abs_pow(plane[r * w + c], p);
  return p == 1.0 ? s : p == 2.0 ? sqrt(s) : pow(s, 1.0 / p);
}

template <class I>
__global__ void lp_forward_kernel(const float* __restrict__ x, float* __restrict__ y, Geo<I> g, I n,
                                  double p) {
  for (I idx = first_index<I>(); idx < n; idx += grid_step<I>()) {
    const I j = idx % g.ow, t = idx / g.ow, i = t % g.oh, pl = t / g.oh;
    y[idx] = static_cast<float>(lp_norm(x + pl * g.h * g.w, g.w, window(g, i, j), p));
  }
}

template <class I>
__global__ void lp_backward_kernel(const float* __restrict__ go, const float* __restrict__ x,
                                   float* __restrict__ gi, Geo<I> g, I n, double p) {
  for (I idx = first_index<I>(); idx < n; idx += grid_step<I>()) {
    const I c = idx % g.w, t = idx / g.w, r = t % g.h, pl = t / g.h;
    const float* plane = x + pl * g.h * g.w;
    const float* gp = go + pl * g.oh * g.ow;
    const double v = plane[r * g.w + c];
    float acc = 0.0f;
    if (v != 0.0) {  // x == 0: gradient defined as 0
      const I i0 = first_window(r, g.ph, g.kh, g.sh), i1 = last_window(r, g.ph, g.sh, g.oh);
      const I j0 = first_window(c, g.pw, g.kw, g.sw), j1 = last_window(c, g.pw, g.sw, g.ow);
      for (I i = i0; i <= i1; ++i)
        for (I j = j0; j <= j1; ++j) {
          const double yv = lp_norm(plane, g.w, window(g, i, j), p);
          if (yv == 0.0) continue;  // y == 0: defined as 0 (no 0/0)
          const double ratio = fabs(v) / yv;
          const double d = p == 1.0 ? 1.0 : p == 2.0 ? ratio : pow(ratio, p - 1.0);
          acc += static_cast<float>(static_cast<double>(gp[i * g.ow + j]) * (v > 0 ? d : -d));
        }
    }
    gi[idx] = acc;
  }
}

template <class I>
__global__ void global_avg_backward_kernel(const float* __restrict__ go, float* __restrict__ gi, I hw, I n) {
  for (I idx = first_index<I>(); idx < n; idx += grid_step<I>())
    gi[idx] = static_cast<float>(static_cast<double>(go[idx / hw]) / static_cast<double>(hw));
}


}  // namespace fastlayers::cuda::pool_detail
