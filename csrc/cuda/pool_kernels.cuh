// Device code of the CUDA pooling (csrc/cuda/pool.cu has the launchers and the overview). A header
// with no host-only CUDA API, so csrc/cuda/host_emulation can compile it with g++ and run it.
#pragma once
#include <cfloat>
#include <cmath>
#include <cstdint>

#include "common/types.h"

namespace fastlayers::cuda::pool_detail {

template <class I>
struct Geo {
  I planes, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, ekh, ekw;
};

// G: any struct with Pool2dGeometry's fields and ekh()/ekw() (csrc/common/pool_geometry.h).
template <class I, class G>
Geo<I> narrow(const G& g) {
  return {static_cast<I>(g.planes), static_cast<I>(g.h),  static_cast<I>(g.w),  static_cast<I>(g.kh),
          static_cast<I>(g.kw),     static_cast<I>(g.sh), static_cast<I>(g.sw), static_cast<I>(g.ph),
          static_cast<I>(g.pw),     static_cast<I>(g.dh), static_cast<I>(g.dw), static_cast<I>(g.oh),
          static_cast<I>(g.ow),     static_cast<I>(g.ekh()), static_cast<I>(g.ekw())};
}

template <class I>
struct AGeo {
  I planes, h, w, oh, ow;
};

template <class I, class G>
AGeo<I> narrow_adaptive(const G& g) {
  return {static_cast<I>(g.planes), static_cast<I>(g.h), static_cast<I>(g.w), static_cast<I>(g.oh),
          static_cast<I>(g.ow)};
}

// The input cells a window covers along one axis: lo, lo + step, ... < hi (empty when lo >= hi).
template <class I>
struct Span {
  I lo, hi;
};

// The first of start, start + step, ... that is >= 0 (the first cell past the left padding).
template <class I>
__device__ __forceinline__ I first_real(I start, I step) {
  return start >= 0 ? start : start + (-start + step - 1) / step * step;
}

template <class I>
__device__ __forceinline__ Span<I> win_rows(const Geo<I>& g, I i) {
  const I hs = i * g.sh - g.ph, he = hs + g.ekh;
  return {first_real(hs, g.dh), he < g.h ? he : g.h};
}
template <class I>
__device__ __forceinline__ Span<I> win_cols(const Geo<I>& g, I j) {
  const I ws = j * g.sw - g.pw, we = ws + g.ekw;
  return {first_real(ws, g.dw), we < g.w ? we : g.w};
}

// PyTorch's count_include_pad extent of window i along one axis (clipped to the padded input only),
// as double: two of them multiplied may pass 2^63.
template <class I>
__device__ __forceinline__ double pool_extent(I i, I s, I p, I k, I n) {
  const I start = i * s - p, end = start + k < n + p ? start + k : n + p;
  return static_cast<double>(end - start);
}

// Windows (along one axis) whose extent [i*s - pad, i*s - pad + ek) contains input coordinate r:
// [first, last], empty when first > last. With dilation this is a superset of the windows that
// hold r as a cell; the callers that use it compare a winner's index with r, so that is exact.
template <class I>
__device__ __forceinline__ I first_window(I r, I pad, I ek, I s) {
  return r + pad < ek ? I(0) : (r + pad - ek) / s + 1;  // smallest i with i*s - pad + ek > r
}
template <class I>
__device__ __forceinline__ I last_window(I r, I pad, I s, I n_out) {
  const I i = (r + pad) / s;  // largest i with i*s - pad <= r
  return i < n_out - 1 ? i : n_out - 1;
}

// Adaptive windows: cell a covers [floor(a*n/o), ceil((a+1)*n/o)); those containing r are
// floor(r*o/n) .. floor(((r+1)*o - 1)/n).
template <class I>
__device__ __forceinline__ Span<I> adaptive_span(I a, I n, I o) {
  return {a * n / o, ((a + 1) * n + o - 1) / o};
}

// A larger value or any NaN displaces the running maximum (csrc/cpu/pool_2x2.h, pool_beats): ties
// keep the first maximum, the gradient goes to the last NaN.
__device__ __forceinline__ bool beats(float v, float best) { return v > best || v != v; }

// In-plane flat index of the winner of the cells rows x cols (steps dh, dw), row-major scan; -1
// when empty. *value gets its value (-inf when empty).
template <class I>
__device__ __forceinline__ I argmax(const float* __restrict__ plane, I w, Span<I> rows, Span<I> cols, I dh,
                                    I dw, float* value) {
  if (rows.lo >= rows.hi || cols.lo >= cols.hi) {
    *value = -INFINITY;
    return I(-1);
  }
  I at = rows.lo * w + cols.lo;
  float best = plane[at];
  for (I r = rows.lo; r < rows.hi; r += dh)
    for (I c = cols.lo; c < cols.hi; c += dw) {
      const float v = plane[r * w + c];
      if (beats(v, best)) {
        best = v;
        at = r * w + c;
      }
    }
  *value = best;
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

// ----------------------------------------------------------------------------------------- max

// A thread per output window. y and/or indices may be null (the backward's first pass writes only
// the indices).
template <class I>
__global__ void max_forward_kernel(const float* __restrict__ x, float* __restrict__ y,
                                   std::int64_t* __restrict__ indices, Geo<I> g, I n) {
  for (I idx = first_index<I>(); idx < n; idx += grid_step<I>()) {
    const I j = idx % g.ow, t = idx / g.ow, i = t % g.oh, p = t / g.oh;
    float best;
    const I at = argmax(x + p * g.h * g.w, g.w, win_rows(g, i), win_cols(g, j), g.dh, g.dw, &best);
    if (y) y[idx] = best;
    if (indices) indices[idx] = at;
  }
}

// Windows that tile the input (stride == kernel, no padding or dilation): a thread per window finds
// its winner once and writes its whole rectangle of grad_in (the last row/column of windows also the
// cells right of / below them that no window covers): each cell written once, one pass.
template <class I>
__global__ void max_backward_tiled_kernel(const float* __restrict__ go, const float* __restrict__ x,
                                          float* __restrict__ gi, Geo<I> g, I n) {
  for (I idx = first_index<I>(); idx < n; idx += grid_step<I>()) {
    const I j = idx % g.ow, t = idx / g.ow, i = t % g.oh, p = t / g.oh;
    const float* plane = x + p * g.h * g.w;
    float* gp = gi + p * g.h * g.w;
    const Span<I> rows = win_rows(g, i), cols = win_cols(g, j);
    float best;
    const I at = argmax(plane, g.w, rows, cols, I(1), I(1), &best);
    const float gv = go[idx];
    const I r_end = i == g.oh - 1 ? g.h : rows.hi, c_end = j == g.ow - 1 ? g.w : cols.hi;
    for (I r = rows.lo; r < r_end; ++r)
      for (I c = cols.lo; c < c_end; ++c) gp[r * g.w + c] = r * g.w + c == at ? gv : 0.0f;
  }
}

// From saved indices: a thread per input cell gathers the gradient of every window whose winner it
// is, in row-major window order (the CPU's scatter order: same sums, bit for bit). No atomics, no
// zero fill, no argmax; reads grad_out and indices (cached across neighbouring cells) once from DRAM.
// An index that is not a cell of its window is never matched: it adds nothing.
template <class I>
__global__ void max_backward_indices_kernel(const float* __restrict__ go, const std::int64_t* __restrict__ ind,
                                            float* __restrict__ gi, Geo<I> g, I n) {
  for (I idx = first_index<I>(); idx < n; idx += grid_step<I>()) {
    const I c = idx % g.w, t = idx / g.w, r = t % g.h, p = t / g.h;
    const I o0 = p * g.oh * g.ow;
    const std::int64_t self = static_cast<std::int64_t>(r * g.w + c);
    const I i0 = first_window(r, g.ph, g.ekh, g.sh), i1 = last_window(r, g.ph, g.sh, g.oh);
    const I j0 = first_window(c, g.pw, g.ekw, g.sw), j1 = last_window(c, g.pw, g.sw, g.ow);
    float acc = 0.0f;
    for (I i = i0; i <= i1; ++i)
      for (I j = j0; j <= j1; ++j)
        if (ind[o0 + i * g.ow + j] == self) acc += go[o0 + i * g.ow + j];
    gi[idx] = acc;
  }
}

// ----------------------------------------------------------------------------------------- avg

// PyTorch's divisor: divisor_override when != 0, else the window clipped to the padded input
// (count_include_pad) or its number of input cells.
template <class I>
__device__ __forceinline__ float avg_divisor(const Geo<I>& g, I i, I j, Span<I> rows, Span<I> cols,
                                             bool count_include_pad, float divisor_override) {
  if (divisor_override != 0.0f) return divisor_override;
  if (count_include_pad)
    return static_cast<float>(pool_extent(i, g.sh, g.ph, g.kh, g.h) * pool_extent(j, g.sw, g.pw, g.kw, g.w));
  return static_cast<float>(static_cast<double>(rows.hi - rows.lo) * static_cast<double>(cols.hi - cols.lo));
}

// Average pools have no dilation (dh = dw = 1).
template <class I>
__global__ void avg_forward_kernel(const float* __restrict__ x, float* __restrict__ y, Geo<I> g, I n,
                                   bool count_include_pad, float divisor_override) {
  for (I idx = first_index<I>(); idx < n; idx += grid_step<I>()) {
    const I j = idx % g.ow, t = idx / g.ow, i = t % g.oh, p = t / g.oh;
    const float* plane = x + p * g.h * g.w;
    const Span<I> rows = win_rows(g, i), cols = win_cols(g, j);
    float s = 0.0f;
    for (I r = rows.lo; r < rows.hi; ++r)
      for (I c = cols.lo; c < cols.hi; ++c) s += plane[r * g.w + c];
    y[idx] = s / avg_divisor(g, i, j, rows, cols, count_include_pad, divisor_override);
  }
}

template <class I>
__global__ void avg_backward_kernel(const float* __restrict__ go, float* __restrict__ gi, Geo<I> g, I n,
                                    bool count_include_pad, float divisor_override) {
  for (I idx = first_index<I>(); idx < n; idx += grid_step<I>()) {
    const I c = idx % g.w, t = idx / g.w, r = t % g.h, p = t / g.h;
    const float* gp = go + p * g.oh * g.ow;
    const I i0 = first_window(r, g.ph, g.kh, g.sh), i1 = last_window(r, g.ph, g.sh, g.oh);
    const I j0 = first_window(c, g.pw, g.kw, g.sw), j1 = last_window(c, g.pw, g.sw, g.ow);
    float acc = 0.0f;
    for (I i = i0; i <= i1; ++i) {
      const Span<I> rows = win_rows(g, i);
      for (I j = j0; j <= j1; ++j)
        acc += gp[i * g.ow + j] / avg_divisor(g, i, j, rows, win_cols(g, j), count_include_pad, divisor_override);
    }
    gi[idx] = acc;
  }
}

// ------------------------------------------------------------------------------------------ lp

// |v|^p, the window sum and the root exactly as csrc/cpu/pool.cpp computes them (double).
__device__ __forceinline__ double abs_pow(float v, double p) {
  const double a = fabs(static_cast<double>(v));
  return p == 1.0 ? a : p == 2.0 ? a * a : pow(a, p);
}
__device__ __forceinline__ double lp_root(double s, double p) {
  return p == 1.0 ? s : p == 2.0 ? sqrt(s) : pow(s, 1.0 / p);
}

// The window's norm (F * sum |x|^p)^(1/p) as scale * t, F = kh*kw / (the window clipped to the
// padded input). Fast path: the power sum in double, scale 1; where it overflows or underflows
// although every cell is finite (|x| = 3e38 with p = 9), summed again over |x| / max|x| so the
// result and the gradient's ratios stay exact (as the CPU kernel, cpu/pool.cpp).
struct LpNorm {
  double scale, t;
};

template <class I>
__device__ __forceinline__ LpNorm lp_norm(const float* __restrict__ plane, const Geo<I>& g, I i, I j, double p,
                                          double* factor) {
  const Span<I> rows = win_rows(g, i), cols = win_cols(g, j);
  const double eh = pool_extent(i, g.sh, g.ph, g.kh, g.h), ew = pool_extent(j, g.sw, g.pw, g.kw, g.w);
  const double kh = static_cast<double>(g.kh), kw = static_cast<double>(g.kw);
  const double f = (eh == kh && ew == kw) ? 1.0 : (kh * kw) / (eh * ew);
  *factor = f;
  double s = 0.0;
  for (I r = rows.lo; r < rows.hi; ++r)
    for (I c = cols.lo; c < cols.hi; ++c) s += abs_pow(plane[r * g.w + c], p);
  s *= f;
  if (s >= DBL_MIN && s <= DBL_MAX) return {1.0, lp_root(s, p)};
  double m = 0.0;
  for (I r = rows.lo; r < rows.hi; ++r)
    for (I c = cols.lo; c < cols.hi; ++c) m = fmax(m, fabs(static_cast<double>(plane[r * g.w + c])));
  if (!(m > 0.0 && m <= DBL_MAX) || s != s) return {1.0, lp_root(s, p)};  // 0, inf or NaN inside
  double q = 0.0;
  for (I r = rows.lo; r < rows.hi; ++r)
    for (I c = cols.lo; c < cols.hi; ++c) q += pow(fabs(static_cast<double>(plane[r * g.w + c])) / m, p);
  return {m, lp_root(q * f, p)};
}

template <class I>
__global__ void lp_forward_kernel(const float* __restrict__ x, float* __restrict__ y, Geo<I> g, I n,
                                  double p) {
  for (I idx = first_index<I>(); idx < n; idx += grid_step<I>()) {
    const I j = idx % g.ow, t = idx / g.ow, i = t % g.oh, pl = t / g.oh;
    double f;
    const LpNorm nrm = lp_norm(x + pl * g.h * g.w, g, i, j, p, &f);
    y[idx] = static_cast<float>(nrm.scale * nrm.t);
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
          double f;
          const LpNorm nrm = lp_norm(plane, g, i, j, p, &f);
          if (nrm.t == 0.0) continue;  // y == 0: defined as 0 (no 0/0)
          const double ratio = fabs(v) / nrm.scale / nrm.t;
          const double d = p == 1.0 ? 1.0 : p == 2.0 ? ratio : pow(ratio, p - 1.0);
          acc += static_cast<float>(static_cast<double>(gp[i * g.ow + j]) * f * (v > 0 ? d : -d));
        }
    }
    gi[idx] = acc;
  }
}

// ------------------------------------------------------------------------------------ adaptive

template <class I>
__global__ void adaptive_avg_forward_kernel(const float* __restrict__ x, float* __restrict__ y, AGeo<I> g, I n) {
  for (I idx = first_index<I>(); idx < n; idx += grid_step<I>()) {
    const I j = idx % g.ow, t = idx / g.ow, i = t % g.oh, p = t / g.oh;
    const float* plane = x + p * g.h * g.w;
    const Span<I> rows = adaptive_span(i, g.h, g.oh), cols = adaptive_span(j, g.w, g.ow);
    float s = 0.0f;
    for (I r = rows.lo; r < rows.hi; ++r)
      for (I c = cols.lo; c < cols.hi; ++c) s += plane[r * g.w + c];
    y[idx] = s / static_cast<float>((rows.hi - rows.lo) * (cols.hi - cols.lo));
  }
}

template <class I>
__global__ void adaptive_avg_backward_kernel(const float* __restrict__ go, float* __restrict__ gi, AGeo<I> g,
                                             I n) {
  for (I idx = first_index<I>(); idx < n; idx += grid_step<I>()) {
    const I c = idx % g.w, t = idx / g.w, r = t % g.h, p = t / g.h;
    const float* gp = go + p * g.oh * g.ow;
    const I i0 = r * g.oh / g.h, i1 = ((r + 1) * g.oh - 1) / g.h;
    const I j0 = c * g.ow / g.w, j1 = ((c + 1) * g.ow - 1) / g.w;
    float acc = 0.0f;
    for (I i = i0; i <= i1; ++i) {
      const Span<I> rows = adaptive_span(i, g.h, g.oh);
      for (I j = j0; j <= j1; ++j) {
        const Span<I> cols = adaptive_span(j, g.w, g.ow);
        acc += gp[i * g.ow + j] / static_cast<float>((rows.hi - rows.lo) * (cols.hi - cols.lo));
      }
    }
    gi[idx] = acc;
  }
}

template <class I>
__global__ void adaptive_max_forward_kernel(const float* __restrict__ x, float* __restrict__ y,
                                            std::int64_t* __restrict__ indices, AGeo<I> g, I n) {
  for (I idx = first_index<I>(); idx < n; idx += grid_step<I>()) {
    const I j = idx % g.ow, t = idx / g.ow, i = t % g.oh, p = t / g.oh;
    float best;
    const I at = argmax(x + p * g.h * g.w, g.w, adaptive_span(i, g.h, g.oh), adaptive_span(j, g.w, g.ow), I(1),
                        I(1), &best);
    if (y) y[idx] = best;
    if (indices) indices[idx] = at;
  }
}

template <class I>
__global__ void adaptive_max_backward_indices_kernel(const float* __restrict__ go,
                                                     const std::int64_t* __restrict__ ind, float* __restrict__ gi,
                                                     AGeo<I> g, I n) {
  for (I idx = first_index<I>(); idx < n; idx += grid_step<I>()) {
    const I c = idx % g.w, t = idx / g.w, r = t % g.h, p = t / g.h;
    const I o0 = p * g.oh * g.ow;
    const std::int64_t self = static_cast<std::int64_t>(r * g.w + c);
    const I i0 = r * g.oh / g.h, i1 = ((r + 1) * g.oh - 1) / g.h;
    const I j0 = c * g.ow / g.w, j1 = ((c + 1) * g.ow - 1) / g.w;
    float acc = 0.0f;
    for (I i = i0; i <= i1; ++i)
      for (I j = j0; j <= j1; ++j)
        if (ind[o0 + i * g.ow + j] == self) acc += go[o0 + i * g.ow + j];
    gi[idx] = acc;
  }
}

// -------------------------------------------------------------------------------------- unpool

// y must be zero already. A thread per input cell; an index outside [0, out_hw) is skipped. With
// duplicate indices the value written is one of them (unordered, as PyTorch's CUDA kernel).
template <class I>
__global__ void max_unpool_forward_kernel(const float* __restrict__ x, const std::int64_t* __restrict__ ind,
                                          float* __restrict__ y, I in_hw, I out_hw, I n) {
  for (I idx = first_index<I>(); idx < n; idx += grid_step<I>()) {
    const std::int64_t at = ind[idx];
    if (at >= 0 && at < static_cast<std::int64_t>(out_hw)) y[idx / in_hw * out_hw + static_cast<I>(at)] = x[idx];
  }
}

template <class I>
__global__ void max_unpool_backward_kernel(const float* __restrict__ go, const std::int64_t* __restrict__ ind,
                                           float* __restrict__ gx, I in_hw, I out_hw, I n) {
  for (I idx = first_index<I>(); idx < n; idx += grid_step<I>()) {
    const std::int64_t at = ind[idx];
    gx[idx] = (at >= 0 && at < static_cast<std::int64_t>(out_hw)) ? go[idx / in_hw * out_hw + static_cast<I>(at)]
                                                                   : 0.0f;
  }
}

// -------------------------------------------------------------------------------------- global

template <class I>
__global__ void global_avg_backward_kernel(const float* __restrict__ go, float* __restrict__ gi, I hw, I n) {
  for (I idx = first_index<I>(); idx < n; idx += grid_step<I>())
    gi[idx] = static_cast<float>(static_cast<double>(go[idx / hw]) / static_cast<double>(hw));
}

}  // namespace fastlayers::cuda::pool_detail
