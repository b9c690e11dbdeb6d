#include "cpu/pool.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "cpu/cpu_features.h"
#include "cpu/parallel.h"
#include "cpu/pool_2x2.h"

namespace fastlayers::cpu {

namespace {

// Rows [r0, r1) and columns [c0, c1) of the input that window (i, j) covers (padding clipped).
struct Window {
  index_t r0, r1, c0, c1;
  index_t cells() const { return (r1 - r0) * (c1 - c0); }
};

inline Window window(const Pool2dGeometry& g, index_t i, index_t j) {
  const index_t hs = i * g.sh - g.ph, ws = j * g.sw - g.pw;
  return {std::max<index_t>(hs, 0), std::min(hs + g.kh, g.h), std::max<index_t>(ws, 0),
          std::min(ws + g.kw, g.w)};
}

// Flat in-plane index of the first maximum of a window (padding <= kernel/2: never empty).
inline index_t first_max(const float* plane, index_t w, const Window& win) {
  index_t best_at = win.r0 * w + win.c0;
  float best = plane[best_at];
  for (index_t r = win.r0; r < win.r1; ++r)
    for (index_t c = win.c0; c < win.c1; ++c)
      if (pool_beats(plane[r * w + c], best)) {
        best = plane[r * w + c];
        best_at = r * w + c;
      }
  return best_at;
}

// Output columns [lo, hi) whose windows lie wholly inside the plane horizontally: there the inner
// loops need no clipping and run over j with a fixed stride, which the compiler vectorises.
struct Interior {
  index_t lo, hi;
};

inline Interior interior_cols(const Pool2dGeometry& g) {
  const index_t ow = g.ow();
  const index_t lo = std::min(ow, (g.pw + g.sw - 1) / g.sw);  // first j with j*sw - pw >= 0
  const index_t room = g.w + g.pw - g.kw;                      // last start column is room - pw
  const index_t hi = room < 0 ? 0 : std::min(ow, room / g.sw + 1);
  return {lo, std::max(lo, hi)};
}

// The interior inner loops, one window cell against n outputs spaced `stride` input columns apart.
// Stride 1 and 2 (nearly every pool) are compile-time constants so GCC turns the strided loads into
// vector loads and shuffles; other strides load element by element.
template <int kStride>
void max_step(const float* src, float* acc, index_t n, index_t stride) {
  const index_t s = kStride ? kStride : stride;
  for (index_t jj = 0; jj < n; ++jj) {
    const float v = src[jj * s];
    acc[jj] = pool_beats(v, acc[jj]) ? v : acc[jj];
  }
}

template <int kStride>
void argmax_step(const float* src, float* best, std::int32_t* loc, std::int32_t cell, index_t n,
                 index_t stride) {
  const index_t s = kStride ? kStride : stride;
  for (index_t jj = 0; jj < n; ++jj) {
    const float v = src[jj * s];
    const bool wins = pool_beats(v, best[jj]);
    best[jj] = wins ? v : best[jj];
    loc[jj] = wins ? cell : loc[jj];
  }
}

template <int kStride>
void sum_step(const float* src, float* acc, index_t n, index_t stride) {
  const index_t s = kStride ? kStride : stride;
  for (index_t jj = 0; jj < n; ++jj) acc[jj] += src[jj * s];
}

template <class F>
F by_stride(index_t stride, F one, F two, F any) {
  return stride == 1 ? one : stride == 2 ? two : any;
}

// y[j] = max of window (i, j) for j in [0, ow). The interior scans the window cells in row-major
// order in the outer loops and j in the inner one: the same order per window as first_max, but
// branch-free selects over a contiguous output row instead of unpredictable branches.
void row_max(const float* plane, const Pool2dGeometry& g, const Interior& in, index_t i, float* y) {
  const index_t ow = g.ow(), sw = g.sw, w = g.w;
  for (index_t j = 0; j < in.lo; ++j) y[j] = plane[first_max(plane, w, window(g, i, j))];
  for (index_t j = in.hi; j < ow; ++j) y[j] = plane[first_max(plane, w, window(g, i, j))];
  if (in.lo >= in.hi) return;
  const Window rows = window(g, i, in.lo);
  const index_t n = in.hi - in.lo, c0 = in.lo * sw - g.pw;
  float* acc = y + in.lo;
  for (index_t jj = 0; jj < n; ++jj) acc[jj] = plane[rows.r0 * w + c0 + jj * sw];
  const auto step = by_stride(sw, &max_step<1>, &max_step<2>, &max_step<0>);
  for (index_t r = rows.r0; r < rows.r1; ++r)
    for (index_t c = 0; c < g.kw; ++c) step(plane + r * w + c0 + c, acc, n, sw);
}

// at[j] = in-plane index of the winner of window (i, j) for j in [0, ow). Scratch: best and loc,
// ow entries each. The interior tracks the winner's cell number within its window as int32, the
// width of a float, so the select vectorises; the in-plane index is formed once at the end.
void row_argmax(const float* plane, const Pool2dGeometry& g, const Interior& in, index_t i, float* best,
                std::int32_t* loc, index_t* at) {
  const index_t ow = g.ow(), sw = g.sw, w = g.w;
  for (index_t j = 0; j < in.lo; ++j) at[j] = first_max(plane, w, window(g, i, j));
  for (index_t j = in.hi; j < ow; ++j) at[j] = first_max(plane, w, window(g, i, j));
  if (in.lo >= in.hi) return;
  const Window rows = window(g, i, in.lo);
  const index_t n = in.hi - in.lo, c0 = in.lo * sw - g.pw;
  if (g.kh * g.kw > std::numeric_limits<std::int32_t>::max()) {  // (a > 8 GB window) keep 64-bit
    for (index_t j = in.lo; j < in.hi; ++j) at[j] = first_max(plane, w, window(g, i, j));
    return;
  }
  float* b = best + in.lo;
  std::int32_t* l = loc + in.lo;
  for (index_t jj = 0; jj < n; ++jj) {
    b[jj] = plane[rows.r0 * w + c0 + jj * sw];
    l[jj] = 0;
  }
  const auto step = by_stride(sw, &argmax_step<1>, &argmax_step<2>, &argmax_step<0>);
  for (index_t r = rows.r0; r < rows.r1; ++r)
    for (index_t c = 0; c < g.kw; ++c)
      step(plane + r * w + c0 + c, b, l, static_cast<std::int32_t>((r - rows.r0) * g.kw + c), n, sw);
  for (index_t jj = 0; jj < n; ++jj)
    at[in.lo + jj] = (rows.r0 + l[jj] / g.kw) * w + c0 + jj * sw + l[jj] % g.kw;
}

inline float window_sum(const float* plane, index_t w, const Window& win) {
  float s = 0.0f;
  for (index_t r = win.r0; r < win.r1; ++r)
    for (index_t c = win.c0; c < win.c1; ++c) s += plane[r * w + c];
  return s;
}

// y[j] = mean of window (i, j) for j in [0, ow); interior vectorised over j as in row_max.
void row_avg(const float* plane, const Pool2dGeometry& g, const Interior& in, index_t i, float* y,
             bool count_include_pad) {
  const index_t ow = g.ow(), sw = g.sw, w = g.w;
  const float full = static_cast<float>(g.kh * g.kw);
  auto edge = [&](index_t j) {
    const Window win = window(g, i, j);
    y[j] = window_sum(plane, w, win) / (count_include_pad ? full : static_cast<float>(win.cells()));
  };
  for (index_t j = 0; j < in.lo; ++j) edge(j);
  for (index_t j = in.hi; j < ow; ++j) edge(j);
  if (in.lo >= in.hi) return;
  const Window rows = window(g, i, in.lo);
  const index_t n = in.hi - in.lo, c0 = in.lo * sw - g.pw;
  float* acc = y + in.lo;
  std::fill(acc, acc + n, 0.0f);
  const auto step = by_stride(sw, &sum_step<1>, &sum_step<2>, &sum_step<0>);
  for (index_t r = rows.r0; r < rows.r1; ++r)
    for (index_t c = 0; c < g.kw; ++c) step(plane + r * w + c0 + c, acc, n, sw);
  const float div = count_include_pad ? full : static_cast<float>((rows.r1 - rows.r0) * g.kw);
  for (index_t jj = 0; jj < n; ++jj) acc[jj] /= div;
}

inline bool is_2x2_stride2(const Pool2dGeometry& g) {
  return g.kh == 2 && g.kw == 2 && g.sh == 2 && g.sw == 2 && g.ph == 0 && g.pw == 0;
}

// Windows tile the top-left of the plane exactly: each input cell lies in at most one window.
inline bool is_tiled(const Pool2dGeometry& g) {
  return g.sh == g.kh && g.sw == g.kw && g.ph == 0 && g.pw == 0;
}

inline bool parallel_worth_it(const Pool2dGeometry& g) { return g.planes * g.h * g.w > kParallelGrain; }

// The 2x2 stride-2 row kernels: AVX2 where the CPU has it, else the portable ones.
struct Rows2x2 {
  void (*max_fwd)(const float*, const float*, float*, index_t);
  void (*avg_fwd)(const float*, const float*, float*, index_t);
  void (*max_bwd)(const float*, const float*, const float*, float*, float*, index_t);
  void (*avg_bwd)(const float*, float*, float*, index_t);
};

Rows2x2 rows_2x2() {
  if (active_isa() != Isa::generic)
    return {avx2::max_pool_2x2_row, avx2::avg_pool_2x2_row, avx2::max_pool_2x2_backward_row,
            avx2::avg_pool_2x2_backward_row};
  return {generic::max_pool_2x2_row, generic::avg_pool_2x2_row, generic::max_pool_2x2_backward_row,
          generic::avg_pool_2x2_backward_row};
}

// Forward of a 2x2/2 pool: one call of `row_kernel` (max or avg) per output row.
void forward_2x2(const float* x, float* y, const Pool2dGeometry& g,
                 void (*row_kernel)(const float*, const float*, float*, index_t)) {
  const index_t oh = g.oh(), ow = g.ow(), hw = g.h * g.w;
#pragma omp parallel for collapse(2) schedule(static) if (parallel_worth_it(g))
  for (index_t p = 0; p < g.planes; ++p)
    for (index_t i = 0; i < oh; ++i) {
      const float* r0 = x + p * hw + 2 * i * g.w;
      row_kernel(r0, r0 + g.w, y + (p * oh + i) * ow, ow);
    }
}

// Backward of a 2x2/2 pool: rows 0 .. 2*oh-1 come from `row_kernel`, the odd leftover column and
// row (floor mode) get 0. Each grad_in cell is written once, no zero-fill pass.
template <class RowFn>
void backward_2x2(const Pool2dGeometry& g, float* grad_in, RowFn row_kernel) {
  const index_t oh = g.oh(), ow = g.ow(), h = g.h, w = g.w;
#pragma omp parallel for collapse(2) schedule(static) if (parallel_worth_it(g))
  for (index_t p = 0; p < g.planes; ++p)
    for (index_t i = 0; i < oh; ++i) {
      float* gi0 = grad_in + (p * h + 2 * i) * w;
      row_kernel(p, i, gi0, gi0 + w);
      if (w & 1) gi0[w - 1] = gi0[2 * w - 1] = 0.0f;
      if ((h & 1) && i == oh - 1) std::memset(gi0 + 2 * w, 0, sizeof(float) * w);
    }
}

}  // namespace

// ---------------------------------------------------------------------------------------- max

void max_pool2d_forward(const float* x, float* y, const Pool2dGeometry& g) {
  const index_t oh = g.oh(), ow = g.ow(), hw = g.h * g.w;
  if (is_2x2_stride2(g)) return forward_2x2(x, y, g, rows_2x2().max_fwd);
  const Interior in = interior_cols(g);
#pragma omp parallel for collapse(2) schedule(static) if (parallel_worth_it(g))
  for (index_t p = 0; p < g.planes; ++p)
    for (index_t i = 0; i < oh; ++i) row_max(x + p * hw, g, in, i, y + (p * oh + i) * ow);
}

void max_pool2d_backward(const float* grad_out, const float* x, float* grad_in, const Pool2dGeometry& g) {
  const index_t oh = g.oh(), ow = g.ow(), hw = g.h * g.w;
  if (is_2x2_stride2(g)) {
    const auto fn = rows_2x2().max_bwd;
    backward_2x2(g, grad_in, [&](index_t p, index_t i, float* gi0, float* gi1) {
      const float* r0 = x + p * hw + 2 * i * g.w;
      fn(grad_out + (p * oh + i) * ow, r0, r0 + g.w, gi0, gi1, ow);
    });
    return;
  }
  const Interior in = interior_cols(g);
  const bool tiled = is_tiled(g);
#pragma omp parallel if (parallel_worth_it(g))
  {
    // Per-thread scratch for one output row's winners, allocated once per call, outside the loops.
    std::vector<float> best(ow);
    std::vector<std::int32_t> loc(ow);
    std::vector<index_t> at(ow);
    if (tiled) {
      // Each cell lies in at most one window: write every cell once (0 or the window's gradient).
#pragma omp for collapse(2) schedule(static)
      for (index_t p = 0; p < g.planes; ++p)
        for (index_t i = 0; i < oh; ++i) {
          const float* plane = x + p * hw;
          const float* gout = grad_out + (p * oh + i) * ow;
          float* gi = grad_in + p * hw;
          row_argmax(plane, g, in, i, best.data(), loc.data(), at.data());
          for (index_t r = i * g.kh; r < (i + 1) * g.kh; ++r) {
            float* grow = gi + r * g.w;
            for (index_t j = 0; j < ow; ++j)
              for (index_t c = j * g.kw; c < (j + 1) * g.kw; ++c) grow[c] = (r * g.w + c == at[j]) ? gout[j] : 0.0f;
            std::fill(grow + ow * g.kw, grow + g.w, 0.0f);  // columns right of the last window
          }
          if (i == oh - 1) std::fill(gi + oh * g.kh * g.w, gi + hw, 0.0f);  // rows below the last window
        }
    } else {
      // Overlapping windows, gaps or padding: zero the plane, then scatter-add in window order
      // (row-major, as the reference) so accumulated cells round the same way; a thread per plane.
#pragma omp for schedule(static)
      for (index_t p = 0; p < g.planes; ++p) {
        const float* plane = x + p * hw;
        float* gi = grad_in + p * hw;
        std::fill(gi, gi + hw, 0.0f);
        for (index_t i = 0; i < oh; ++i) {
          row_argmax(plane, g, in, i, best.data(), loc.data(), at.data());
          const float* gout = grad_out + (p * oh + i) * ow;
          for (index_t j = 0; j < ow; ++j) gi[at[j]] += gout[j];
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------- avg

void avg_pool2d_forward(const float* x, float* y, const Pool2dGeometry& g, bool count_include_pad) {
  const index_t oh = g.oh(), ow = g.ow(), hw = g.h * g.w;
  if (is_2x2_stride2(g)) return forward_2x2(x, y, g, rows_2x2().avg_fwd);
  const Interior in = interior_cols(g);
#pragma omp parallel for collapse(2) schedule(static) if (parallel_worth_it(g))
  for (index_t p = 0; p < g.planes; ++p)
    for (index_t i = 0; i < oh; ++i) row_avg(x + p * hw, g, in, i, y + (p * oh + i) * ow, count_include_pad);
}

void avg_pool2d_backward(const float* grad_out, float* grad_in, const Pool2dGeometry& g,
                         bool count_include_pad) {
  const index_t oh = g.oh(), ow = g.ow(), hw = g.h * g.w;
  if (is_2x2_stride2(g)) {
    const auto fn = rows_2x2().avg_bwd;
    backward_2x2(g, grad_in, [&](index_t p, index_t i, float* gi0, float* gi1) {
      fn(grad_out + (p * oh + i) * ow, gi0, gi1, ow);
    });
    return;
  }
  // Zero the plane, then add g / divisor over each window (contiguous runs of kw cells; no integer
  // division per cell as a gather would need). A thread per plane.
  const float full = static_cast<float>(g.kh * g.kw);
#pragma omp parallel for schedule(static) if (parallel_worth_it(g))
  for (index_t p = 0; p < g.planes; ++p) {
    const float* gp = grad_out + p * oh * ow;
    float* gi = grad_in + p * hw;
    std::fill(gi, gi + hw, 0.0f);
    for (index_t i = 0; i < oh; ++i)
      for (index_t j = 0; j < ow; ++j) {
        const Window win = window(g, i, j);
        const float v = gp[i * ow + j] / (count_include_pad ? full : static_cast<float>(win.cells()));
        for (index_t r = win.r0; r < win.r1; ++r)
          for (index_t c = win.c0; c < win.c1; ++c) gi[r * g.w + c] += v;
      }
  }
}

// ----------------------------------------------------------------------------------------- lp

namespace {

inline double abs_pow(float v, double p) {
  const double a = std::fabs(static_cast<double>(v));
  return p == 1.0 ? a : p == 2.0 ? a * a : std::pow(a, p);
}

inline double lp_norm(const float* plane, index_t w, const Window& win, double p) {
  double s = 0.0;
  for (index_t r = win.r0; r < win.r1; ++r)
    for (index_t c = win.c0; c < win.c1; ++c) s += abs_pow(plane[r * w + c], p);
  return p == 1.0 ? s : p == 2.0 ? std::sqrt(s) : std::pow(s, 1.0 / p);
}

}  // namespace

void lp_pool2d_forward(const float* x, float* y, const Pool2dGeometry& g, double p) {
  const index_t oh = g.oh(), ow = g.ow(), hw = g.h * g.w;
#pragma omp parallel for collapse(2) schedule(static) if (parallel_worth_it(g))
  for (index_t pl = 0; pl < g.planes; ++pl)
    for (index_t i = 0; i < oh; ++i)
      for (index_t j = 0; j < ow; ++j)
        y[(pl * oh + i) * ow + j] = static_cast<float>(lp_norm(x + pl * hw, g.w, window(g, i, j), p));
}

void lp_pool2d_backward(const float* grad_out, const float* x, float* grad_in, const Pool2dGeometry& g,
                        double p) {
  const index_t oh = g.oh(), ow = g.ow(), hw = g.h * g.w;
  // Scatter per plane (the window norm is computed once per window), one thread per plane.
#pragma omp parallel for schedule(static) if (parallel_worth_it(g))
  for (index_t pl = 0; pl < g.planes; ++pl) {
    const float* plane = x + pl * hw;
    float* gi = grad_in + pl * hw;
    std::fill(gi, gi + hw, 0.0f);
    for (index_t i = 0; i < oh; ++i)
      for (index_t j = 0; j < ow; ++j) {
        const Window win = window(g, i, j);
        const double yv = lp_norm(plane, g.w, win, p);
        const double gv = grad_out[(pl * oh + i) * ow + j];
        if (yv == 0.0) continue;  // every cell is 0: the gradient is defined as 0 (no 0/0)
        for (index_t r = win.r0; r < win.r1; ++r)
          for (index_t c = win.c0; c < win.c1; ++c) {
            const double v = plane[r * g.w + c];
            if (v == 0.0) continue;
            const double ratio = std::fabs(v) / yv;
            const double d = p == 1.0 ? 1.0 : p == 2.0 ? ratio : std::pow(ratio, p - 1.0);
            gi[r * g.w + c] += static_cast<float>(gv * (v > 0 ? d : -d));
          }
      }
  }
}

// ------------------------------------------------------------------------------------- global

void global_avg_pool2d_forward(const float* x, float* y, index_t planes, index_t hw) {
#pragma omp parallel for schedule(static) if (planes * hw > kParallelGrain)
  for (index_t p = 0; p < planes; ++p) {
    const float* plane = x + p * hw;
    double s = 0.0;  // planes can be long (224x224): double keeps the sum exact enough
#pragma omp simd reduction(+ : s)
    for (index_t k = 0; k < hw; ++k) s += plane[k];
    y[p] = static_cast<float>(s / static_cast<double>(hw));
  }
}

void global_avg_pool2d_backward(const float* grad_out, float* grad_in, index_t planes, index_t hw) {
#pragma omp parallel for schedule(static) if (planes * hw > kParallelGrain)
  for (index_t p = 0; p < planes; ++p) {
    const float v = static_cast<float>(static_cast<double>(grad_out[p]) / static_cast<double>(hw));
    std::fill(grad_in + p * hw, grad_in + (p + 1) * hw, v);
  }
}

}  // namespace fastlayers::cpu
