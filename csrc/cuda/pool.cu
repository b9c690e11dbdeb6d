// 2-D pooling on the GPU. One thread per output cell, grid-stride. Forward: a thread per output
// window. Backward: a thread per input cell that gathers from every window containing it, in
// row-major window order (the CPU's scatter order), so each cell is written once: no atomics, no
// zero-fill, deterministic. Max and Lp backward recompute the window's winner / norm from x (the
// bindings get no forward output), which costs reads that hit L1/L2, not DRAM.
//
// Index type: the kernels are templated on I. When every element index of the call fits in 30 bits
// (the usual case) they run with int32 (integer division is several times cheaper in 32 bits);
// otherwise with int64. The 2^30 bound leaves room for the grid-stride step without overflow.
#include <cstdint>

#include "cuda/check.h"
#include "cuda/launch.h"
#include "cuda/pool.h"

namespace fastlayers::cuda {
namespace {

template <class I>
struct Geo {
  I planes, h, w, kh, kw, sh, sw, ph, pw, oh, ow;
};

template <class I>
Geo<I> narrow(const Pool2dGeometry& g) {
  return {static_cast<I>(g.planes), static_cast<I>(g.h),  static_cast<I>(g.w),  static_cast<I>(g.kh),
          static_cast<I>(g.kw),     static_cast<I>(g.sh), static_cast<I>(g.sw), static_cast<I>(g.ph),
          static_cast<I>(g.pw),     static_cast<I>(g.oh()), static_cast<I>(g.ow())};
}

// Whether int32 indices are safe for this call: every flat index, every padded extent and the strides
// stay below 2^30 (kh <= h + 2*ph, so window arithmetic stays below 2^31 too).
bool fits_int32(const Pool2dGeometry& g) {
  const index_t limit = index_t(1) << 30;
  return g.planes * g.h * g.w < limit && g.planes * g.oh() * g.ow() < limit && g.h + 2 * g.ph < limit &&
         g.w + 2 * g.pw < limit && g.sh < limit && g.sw < limit;
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

// A warp per plane: lanes stride through the plane (coalesced), double partial sums, shuffle reduce.
// The plane loop is warp-uniform, so the full-mask shuffles are safe.
__global__ void global_avg_forward_kernel(const float* __restrict__ x, float* __restrict__ y, index_t planes,
                                          index_t hw) {
  const int lane = threadIdx.x & 31;
  const index_t warp = (static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const index_t warps = static_cast<index_t>(gridDim.x) * blockDim.x / 32;
  for (index_t p = warp; p < planes; p += warps) {
    const float* plane = x + p * hw;
    double s = 0.0;
    for (index_t k = lane; k < hw; k += 32) s += plane[k];
    for (int off = 16; off > 0; off /= 2) s += __shfl_down_sync(0xffffffffu, s, off);
    if (lane == 0) y[p] = static_cast<float>(s / static_cast<double>(hw));
  }
}

template <class I>
__global__ void global_avg_backward_kernel(const float* __restrict__ go, float* __restrict__ gi, I hw, I n) {
  for (I idx = first_index<I>(); idx < n; idx += grid_step<I>())
    gi[idx] = static_cast<float>(static_cast<double>(go[idx / hw]) / static_cast<double>(hw));
}

// ------------------------------------------------------------------------------------ launchers

// Runs `launch.template operator()<I>(Geo<I>, I n)` with the narrowest safe index type.
template <class Launch>
void dispatch(const Pool2dGeometry& g, index_t n, Launch launch) {
  if (fits_int32(g))
    launch(narrow<std::int32_t>(g), static_cast<std::int32_t>(n));
  else
    launch(narrow<std::int64_t>(g), static_cast<std::int64_t>(n));
}

index_t out_count(const Pool2dGeometry& g) { return g.planes * g.oh() * g.ow(); }
index_t in_count(const Pool2dGeometry& g) { return g.planes * g.h * g.w; }
float full_window(const Pool2dGeometry& g) { return static_cast<float>(g.kh * g.kw); }

}  // namespace

void max_pool2d_forward(const float* x, float* y, const Pool2dGeometry& g, cudaStream_t stream) {
  const index_t n = out_count(g);
  if (n == 0 || in_count(g) == 0) return;
  dispatch(g, n, [&](auto geo, auto count) {
    max_forward_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(x, y, geo, count);
  });
  check_launch("max_pool2d");
}

void max_pool2d_backward(const float* grad_out, const float* x, float* grad_in, const Pool2dGeometry& g,
                         cudaStream_t stream) {
  const index_t n = in_count(g);
  if (n == 0) return;
  dispatch(g, n, [&](auto geo, auto count) {
    max_backward_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(grad_out, x, grad_in, geo, count);
  });
  check_launch("max_pool2d_backward");
}

void avg_pool2d_forward(const float* x, float* y, const Pool2dGeometry& g, bool count_include_pad,
                        cudaStream_t stream) {
  const index_t n = out_count(g);
  if (n == 0 || in_count(g) == 0) return;
  dispatch(g, n, [&](auto geo, auto count) {
    avg_forward_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(x, y, geo, count, full_window(g),
                                                                      count_include_pad);
  });
  check_launch("avg_pool2d");
}

void avg_pool2d_backward(const float* grad_out, float* grad_in, const Pool2dGeometry& g, bool count_include_pad,
                         cudaStream_t stream) {
  const index_t n = in_count(g);
  if (n == 0) return;
  dispatch(g, n, [&](auto geo, auto count) {
    avg_backward_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(grad_out, grad_in, geo, count,
                                                                       full_window(g), count_include_pad);
  });
  check_launch("avg_pool2d_backward");
}

void lp_pool2d_forward(const float* x, float* y, const Pool2dGeometry& g, double p, cudaStream_t stream) {
  const index_t n = out_count(g);
  if (n == 0 || in_count(g) == 0) return;
  dispatch(g, n, [&](auto geo, auto count) {
    lp_forward_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(x, y, geo, count, p);
  });
  check_launch("lp_pool2d");
}

void lp_pool2d_backward(const float* grad_out, const float* x, float* grad_in, const Pool2dGeometry& g,
                        double p, cudaStream_t stream) {
  const index_t n = in_count(g);
  if (n == 0) return;
  dispatch(g, n, [&](auto geo, auto count) {
    lp_backward_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(grad_out, x, grad_in, geo, count, p);
  });
  check_launch("lp_pool2d_backward");
}

void global_avg_pool2d_forward(const float* x, float* y, index_t planes, index_t hw, cudaStream_t stream) {
  if (planes == 0 || hw == 0) return;
  global_avg_forward_kernel<<<grid_for(planes * 32), kThreadsPerBlock, 0, stream>>>(x, y, planes, hw);
  check_launch("global_avg_pool2d");
}

void global_avg_pool2d_backward(const float* grad_out, float* grad_in, index_t planes, index_t hw,
                                cudaStream_t stream) {
  const index_t n = planes * hw;
  if (n == 0) return;
  if (n < (index_t(1) << 30))
    global_avg_backward_kernel<std::int32_t><<<grid_for(n), kThreadsPerBlock, 0, stream>>>(
        grad_out, grad_in, static_cast<std::int32_t>(hw), static_cast<std::int32_t>(n));
  else
    global_avg_backward_kernel<std::int64_t><<<grid_for(n), kThreadsPerBlock, 0, stream>>>(grad_out, grad_in,
                                                                                            hw, n);
  check_launch("global_avg_pool2d_backward");
}

}  // namespace fastlayers::cuda
