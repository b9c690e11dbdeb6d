#include "cpu/pool3d.h"

// Every kernel works a volume (plane of N*C) at a time, a thread per volume when there are enough.
// Per output row (od, oh) the depth and height taps that fall inside the input are fixed; the
// output columns whose windows lie wholly inside the row ("interior") are computed cell by cell
// across the whole run of columns (cell loops outside, columns inside: branch-free selects and
// sums the compiler vectorises, in each window's own (t, r, s) order), the few edge columns window
// by window. The backward passes zero the volume, then add each window's share in window order, so
// overlapping windows accumulate in the reference's order.

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "cpu/parallel.h"

namespace fastlayers::cpu {

namespace {

index_t ceil_div(index_t a, index_t b) { return (a + b - 1) / b; }

// Taps [lo, hi) of window i along one axis whose cells i*s - p + j*dil lie in [0, n).
inline void taps(index_t i, index_t n, index_t k, index_t s, index_t p, index_t dil, index_t& lo, index_t& hi) {
  const index_t start = i * s - p;
  lo = start >= 0 ? 0 : ceil_div(-start, dil);
  hi = (n - 1 - start) < 0 ? 0 : std::min(k, (n - 1 - start) / dil + 1);
  if (hi < lo) hi = lo;
}

// A larger value or any NaN displaces the running maximum (PyTorch's scan).
inline bool beats(float v, float best) { return v > best || std::isnan(v); }

// Output columns [lo, hi) whose windows have every width tap inside the row.
inline void interior(const Pool3dGeometry& g, index_t& lo, index_t& hi) {
  lo = std::min(g.ow, ceil_div(g.pw, g.sw));                 // first j with j*sw - pw >= 0
  const index_t room = g.w - 1 - (g.kw - 1) * g.dw + g.pw;   // last start column + pw
  hi = room < 0 ? 0 : std::min(g.ow, room / g.sw + 1);
  if (hi < lo) hi = lo;
}

inline bool parallel_worth_it(const Pool3dGeometry& g) { return g.planes * g.d * g.h * g.w > kParallelGrain; }

// The interior inner loops: one window cell against n outputs `stride` input columns apart. Stride 1
// and 2 (nearly every pool) as compile-time constants, so the strided loads vectorise (as pool.cpp).
template <int kStride>
void max_step(const float* src, float* acc, index_t n, index_t stride) {
  const index_t s = kStride ? kStride : stride;
  for (index_t jj = 0; jj < n; ++jj) {
    const float v = src[jj * s];
    acc[jj] = (v > acc[jj] || v != v) ? v : acc[jj];
  }
}

template <int kStride>
void argmax_step(const float* src, float* best, std::int32_t* loc, std::int32_t cell, index_t n, index_t stride) {
  const index_t s = kStride ? kStride : stride;
  for (index_t jj = 0; jj < n; ++jj) {
    const float v = src[jj * s];
    const bool wins = v > best[jj] || v != v;
    best[jj] = wins ? v : best[jj];
    loc[jj] = wins ? cell : loc[jj];
  }
}

template <int kStride>
void copy_step(const float* src, float* acc, index_t n, index_t stride) {
  const index_t s = kStride ? kStride : stride;
  for (index_t jj = 0; jj < n; ++jj) acc[jj] = src[jj * s];
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

// Row (od, oh) of a volume's max pool: best[j] and, when `at` is not null, at[j] (flat in-volume
// index, -1: no real cell). loc: scratch of ow int32 (the winner's cell number within its window,
// the width of a float so the interior select vectorises; turned into the index at the end).
void row_argmax(const float* vol, const Pool3dGeometry& g, index_t od, index_t oh, index_t lo, index_t hi,
                float* best, index_t* at, std::int32_t* loc) {
  const index_t HW = g.h * g.w;
  index_t d0, d1, h0, h1;
  taps(od, g.d, g.kd, g.sd, g.pd, g.dd, d0, d1);
  taps(oh, g.h, g.kh, g.sh, g.ph, g.dh, h0, h1);
  const index_t ds = od * g.sd - g.pd, hs = oh * g.sh - g.ph;
  const float ninf = -std::numeric_limits<float>::infinity();
  if (d0 == d1 || h0 == h1) {
    std::fill(best, best + g.ow, ninf);
    if (at != nullptr) std::fill(at, at + g.ow, index_t{-1});
    return;
  }
  auto window = [&](index_t j) {
    index_t w0, w1;
    taps(j, g.w, g.kw, g.sw, g.pw, g.dw, w0, w1);
    const index_t ws = j * g.sw - g.pw;
    float b = ninf;
    index_t a = -1;
    for (index_t t = d0; t < d1; ++t)
      for (index_t r = h0; r < h1; ++r) {
        const index_t row = (ds + t * g.dd) * HW + (hs + r * g.dh) * g.w;
        for (index_t c = w0; c < w1; ++c) {
          const index_t i = row + ws + c * g.dw;
          if (a < 0 || beats(vol[i], b)) {
            b = vol[i];
            a = i;
          }
        }
      }
    best[j] = b;
    if (at != nullptr) at[j] = a;
  };
  for (index_t j = 0; j < lo; ++j) window(j);
  for (index_t j = hi; j < g.ow; ++j) window(j);
  if (lo >= hi) return;
  // Interior: every cell of the window grid in order, across the run of columns.
  const index_t n = hi - lo, c0 = lo * g.sw - g.pw, sw = g.sw, nh = h1 - h0;
  float* b = best + lo;
  std::int32_t* l = loc + lo;
  const bool track = at != nullptr && (d1 - d0) * nh * g.kw <= std::numeric_limits<std::int32_t>::max();
  const auto first = by_stride(sw, &copy_step<1>, &copy_step<2>, &copy_step<0>);
  const auto step = by_stride(sw, &max_step<1>, &max_step<2>, &max_step<0>);
  const auto astep = by_stride(sw, &argmax_step<1>, &argmax_step<2>, &argmax_step<0>);
  if (at != nullptr && !track) {  // (a window of 2^31 cells) keep 64-bit: window by window
    for (index_t j = lo; j < hi; ++j) window(j);
    return;
  }
  bool start = true;
  for (index_t t = d0; t < d1; ++t)
    for (index_t r = h0; r < h1; ++r) {
      const float* src = vol + (ds + t * g.dd) * HW + (hs + r * g.dh) * g.w + c0;
      for (index_t c = 0; c < g.kw; ++c) {
        const float* sc = src + c * g.dw;
        if (start) {
          first(sc, b, n, sw);
          if (track) std::fill(l, l + n, 0);
          start = false;
        } else if (track) {
          astep(sc, b, l, static_cast<std::int32_t>(((t - d0) * nh + (r - h0)) * g.kw + c), n, sw);
        } else {
          step(sc, b, n, sw);
        }
      }
    }
  if (!track) return;
  for (index_t jj = 0; jj < n; ++jj) {
    const index_t cell = l[jj], c = cell % g.kw, r = h0 + (cell / g.kw) % nh, t = d0 + cell / (g.kw * nh);
    at[lo + jj] = (ds + t * g.dd) * HW + (hs + r * g.dh) * g.w + c0 + jj * sw + c * g.dw;
  }
}

// The divisor of window (od, oh, j): PyTorch's rule (see the reference).
inline double avg_divisor(const Pool3dGeometry& g, index_t od, index_t oh, index_t j, bool count_include_pad,
                          index_t divisor_override) {
  if (divisor_override != 0) return static_cast<double>(divisor_override);
  auto extent = [](index_t i, index_t n, index_t k, index_t s, index_t p, bool include) {
    const index_t start = i * s - p;
    if (include) return static_cast<double>(std::min(start + k, n + p) - start);
    return static_cast<double>(std::min(start + k, n) - std::max<index_t>(start, 0));
  };
  return extent(od, g.d, g.kd, g.sd, g.pd, count_include_pad) * extent(oh, g.h, g.kh, g.sh, g.ph, count_include_pad) *
         extent(j, g.w, g.kw, g.sw, g.pw, count_include_pad);
}

}  // namespace

void max_pool3d_forward(const float* x, float* y, std::int64_t* indices, const Pool3dGeometry& g) {
  const index_t vol_in = g.d * g.h * g.w, vol_out = g.od * g.oh * g.ow;
  index_t lo, hi;
  interior(g, lo, hi);
#pragma omp parallel if (parallel_worth_it(g)) num_threads(max_threads())
  {
    std::vector<std::int32_t> loc(g.ow);  // per thread, once per call
#pragma omp for collapse(3) schedule(static)
    for (index_t p = 0; p < g.planes; ++p)
      for (index_t od = 0; od < g.od; ++od)
        for (index_t oh = 0; oh < g.oh; ++oh) {
          const index_t o = p * vol_out + (od * g.oh + oh) * g.ow;
          row_argmax(x + p * vol_in, g, od, oh, lo, hi, y + o, indices != nullptr ? indices + o : nullptr,
                     loc.data());
        }
  }
}

void max_pool3d_backward(const float* grad_out, const float* x, float* grad_in, const Pool3dGeometry& g) {
  const index_t vol_in = g.d * g.h * g.w, vol_out = g.od * g.oh * g.ow;
  index_t lo, hi;
  interior(g, lo, hi);
#pragma omp parallel if (parallel_worth_it(g)) num_threads(max_threads())
  {
    std::vector<float> best(g.ow);
    std::vector<index_t> at(g.ow);
    std::vector<std::int32_t> loc(g.ow);
#pragma omp for schedule(static)
    for (index_t p = 0; p < g.planes; ++p) {
      float* gi = grad_in + p * vol_in;
      std::fill(gi, gi + vol_in, 0.0f);
      for (index_t od = 0; od < g.od; ++od)
        for (index_t oh = 0; oh < g.oh; ++oh) {
          row_argmax(x + p * vol_in, g, od, oh, lo, hi, best.data(), at.data(), loc.data());
          const float* go = grad_out + p * vol_out + (od * g.oh + oh) * g.ow;
          for (index_t j = 0; j < g.ow; ++j)
            if (at[j] >= 0) gi[at[j]] += go[j];
        }
    }
  }
}

void avg_pool3d_forward(const float* x, float* y, const Pool3dGeometry& g, bool count_include_pad,
                        index_t divisor_override) {
  const index_t vol_in = g.d * g.h * g.w, vol_out = g.od * g.oh * g.ow, HW = g.h * g.w;
  index_t lo, hi;
  interior(g, lo, hi);
#pragma omp parallel for collapse(3) schedule(static) if (parallel_worth_it(g)) num_threads(max_threads())
  for (index_t p = 0; p < g.planes; ++p)
    for (index_t od = 0; od < g.od; ++od)
      for (index_t oh = 0; oh < g.oh; ++oh) {
        const float* vol = x + p * vol_in;
        float* yr = y + p * vol_out + (od * g.oh + oh) * g.ow;
        index_t d0, d1, h0, h1;
        taps(od, g.d, g.kd, g.sd, g.pd, 1, d0, d1);
        taps(oh, g.h, g.kh, g.sh, g.ph, 1, h0, h1);
        const index_t ds = od * g.sd - g.pd, hs = oh * g.sh - g.ph;
        auto window = [&](index_t j) {
          index_t w0, w1;
          taps(j, g.w, g.kw, g.sw, g.pw, 1, w0, w1);
          const index_t ws = j * g.sw - g.pw;
          float acc = 0.0f;
          for (index_t t = d0; t < d1; ++t)
            for (index_t r = h0; r < h1; ++r) {
              const float* row = vol + (ds + t) * HW + (hs + r) * g.w + ws;
              for (index_t c = w0; c < w1; ++c) acc += row[c];
            }
          return acc;
        };
        for (index_t j = 0; j < lo; ++j) yr[j] = window(j);
        for (index_t j = hi; j < g.ow; ++j) yr[j] = window(j);
        if (lo < hi) {
          const index_t n = hi - lo, c0 = lo * g.sw - g.pw, sw = g.sw;
          float* acc = yr + lo;
          std::fill(acc, acc + n, 0.0f);
          const auto step = by_stride(sw, &sum_step<1>, &sum_step<2>, &sum_step<0>);
          for (index_t t = d0; t < d1; ++t)
            for (index_t r = h0; r < h1; ++r) {
              const float* src = vol + (ds + t) * HW + (hs + r) * g.w + c0;
              for (index_t c = 0; c < g.kw; ++c) step(src + c, acc, n, sw);
            }
        }
        for (index_t j = 0; j < g.ow; ++j)
          yr[j] = static_cast<float>(yr[j] / avg_divisor(g, od, oh, j, count_include_pad, divisor_override));
      }
}

void avg_pool3d_backward(const float* grad_out, float* grad_in, const Pool3dGeometry& g, bool count_include_pad,
                         index_t divisor_override) {
  const index_t vol_in = g.d * g.h * g.w, vol_out = g.od * g.oh * g.ow, HW = g.h * g.w;
#pragma omp parallel for schedule(static) if (parallel_worth_it(g)) num_threads(max_threads())
  for (index_t p = 0; p < g.planes; ++p) {
    float* gi = grad_in + p * vol_in;
    std::fill(gi, gi + vol_in, 0.0f);
    for (index_t od = 0; od < g.od; ++od)
      for (index_t oh = 0; oh < g.oh; ++oh) {
        index_t d0, d1, h0, h1;
        taps(od, g.d, g.kd, g.sd, g.pd, 1, d0, d1);
        taps(oh, g.h, g.kh, g.sh, g.ph, 1, h0, h1);
        const index_t ds = od * g.sd - g.pd, hs = oh * g.sh - g.ph;
        const float* go = grad_out + p * vol_out + (od * g.oh + oh) * g.ow;
        for (index_t j = 0; j < g.ow; ++j) {
          index_t w0, w1;
          taps(j, g.w, g.kw, g.sw, g.pw, 1, w0, w1);
          const index_t ws = j * g.sw - g.pw;
          const float v = static_cast<float>(go[j] / avg_divisor(g, od, oh, j, count_include_pad, divisor_override));
          for (index_t t = d0; t < d1; ++t)
            for (index_t r = h0; r < h1; ++r) {
              float* row = gi + (ds + t) * HW + (hs + r) * g.w + ws;
              for (index_t c = w0; c < w1; ++c) row[c] += v;
            }
        }
      }
  }
}

}  // namespace fastlayers::cpu
