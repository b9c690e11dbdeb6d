#include "cpu/softmax.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "cpu/parallel.h"
#include "cpu/vmath.h"

namespace fastlayers::cpu {

namespace {

// NaN needs no special care below: a NaN anywhere in a row makes the sum of exponentials NaN,
// and with it the whole row, as in the NumPy reference.

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// ---- contiguous rows (the softmax axis is the last one: inner == 1) ----

template <bool kLog>
void forward_row(const VmathKernels& k, const float* x, float* y, index_t dim) {
  const float mx = k.max(x, dim);
  if constexpr (kLog) {
    const float log_s = std::log(k.exp_shift_sum(x, dim, mx));
#pragma omp simd
    for (index_t d = 0; d < dim; ++d) y[d] = (x[d] - mx) - log_s;
  } else {
    // one reciprocal, then multiplies: a divide per element would cost more than the exp
    k.scale(y, dim, 1.0f / k.exp_shift_store_sum(x, y, dim, mx));
  }
}

template <bool kLog>
void backward_row(const VmathKernels& k, const float* g, const float* y, float* gx, index_t dim) {
  float s = 0.0f;
  if constexpr (kLog) {  // d/dx of log_softmax: g - softmax * sum(g), softmax = exp(y)
#pragma omp simd reduction(+ : s)
    for (index_t d = 0; d < dim; ++d) s += g[d];
    k.sub_exp_mul(g, y, gx, dim, s);
  } else {  // d/dx of softmax: y * (g - <g, y>)
#pragma omp simd reduction(+ : s)
    for (index_t d = 0; d < dim; ++d) s += g[d] * y[d];
#pragma omp simd
    for (index_t d = 0; d < dim; ++d) gx[d] = y[d] * (g[d] - s);
  }
}

// ---- strided rows (inner > 1) ----
// A task takes up to kLanes neighbouring inner positions of one outer slice and walks the axis
// for all of them at once, so every memory access is a contiguous run of w floats and the
// per-row state (max, sum) lives on the stack.

constexpr index_t kLanes = 64;

template <bool kLog>
void forward_lanes(const float* x, float* y, index_t dim, index_t inner, index_t w) {
  float mx[kLanes], s[kLanes];
  for (index_t i = 0; i < w; ++i) {
    mx[i] = kNegInf;
    s[i] = 0.0f;
  }
  for (index_t d = 0; d < dim; ++d) {
    const float* r = x + d * inner;
#pragma omp simd
    for (index_t i = 0; i < w; ++i) mx[i] = std::max(mx[i], r[i]);
  }
  for (index_t d = 0; d < dim; ++d) {
    const float* r = x + d * inner;
    float* o = y + d * inner;
#pragma omp simd
    for (index_t i = 0; i < w; ++i) {
      const float e = vmath::fast_exp(r[i] - mx[i]);
      if constexpr (!kLog) o[i] = e;
      s[i] += e;
    }
  }
  if constexpr (kLog) {
    for (index_t i = 0; i < w; ++i) s[i] = std::log(s[i]);
    for (index_t d = 0; d < dim; ++d) {
      const float* r = x + d * inner;
      float* o = y + d * inner;
#pragma omp simd
      for (index_t i = 0; i < w; ++i) o[i] = (r[i] - mx[i]) - s[i];
    }
  } else {
    for (index_t d = 0; d < dim; ++d) {
      float* o = y + d * inner;
#pragma omp simd
      for (index_t i = 0; i < w; ++i) o[i] /= s[i];
    }
  }
}

template <bool kLog>
void backward_lanes(const float* g, const float* y, float* gx, index_t dim, index_t inner, index_t w) {
  float s[kLanes];
  for (index_t i = 0; i < w; ++i) s[i] = 0.0f;
  for (index_t d = 0; d < dim; ++d) {
    const float* gr = g + d * inner;
    const float* yr = y + d * inner;
#pragma omp simd
    for (index_t i = 0; i < w; ++i) s[i] += kLog ? gr[i] : gr[i] * yr[i];
  }
  for (index_t d = 0; d < dim; ++d) {
    const float* gr = g + d * inner;
    const float* yr = y + d * inner;
    float* o = gx + d * inner;
#pragma omp simd
    for (index_t i = 0; i < w; ++i) o[i] = kLog ? gr[i] - vmath::fast_exp(yr[i]) * s[i] : yr[i] * (gr[i] - s[i]);
  }
}

// Runs a row kernel over every (outer, inner) row; rows are independent, so they go in parallel.
template <typename RowFn, typename LanesFn>
void for_each_row(index_t outer, index_t dim, index_t inner, RowFn row, LanesFn lanes) {
  if (outer <= 0 || dim <= 0 || inner <= 0) return;
  const bool parallel = outer * dim * inner > kTranscendentalGrain;  // an exp per element
  if (inner == 1) {
#pragma omp parallel for schedule(static) if (parallel) num_threads(max_threads())
    for (index_t o = 0; o < outer; ++o) row(o * dim);
  } else {
    const index_t blocks = (inner + kLanes - 1) / kLanes;
#pragma omp parallel for schedule(static) if (parallel) num_threads(max_threads())
    for (index_t t = 0; t < outer * blocks; ++t) {
      const index_t o = t / blocks, i0 = (t % blocks) * kLanes;
      lanes(o * dim * inner + i0, std::min(kLanes, inner - i0));
    }
  }
}

template <bool kLog>
void forward(const float* x, float* y, index_t outer, index_t dim, index_t inner) {
  const VmathKernels& k = vmath_kernels();
  for_each_row(
      outer, dim, inner, [=, &k](index_t off) { forward_row<kLog>(k, x + off, y + off, dim); },
      [=](index_t off, index_t w) { forward_lanes<kLog>(x + off, y + off, dim, inner, w); });
}

template <bool kLog>
void backward(const float* g, const float* y, float* gx, index_t outer, index_t dim, index_t inner) {
  const VmathKernels& k = vmath_kernels();
  for_each_row(
      outer, dim, inner, [=, &k](index_t off) { backward_row<kLog>(k, g + off, y + off, gx + off, dim); },
      [=](index_t off, index_t w) { backward_lanes<kLog>(g + off, y + off, gx + off, dim, inner, w); });
}

}  // namespace

void softmax_forward(const float* x, float* y, index_t outer, index_t dim, index_t inner) {
  forward<false>(x, y, outer, dim, inner);
}

void softmax_backward(const float* grad_out, const float* y, float* grad_in, index_t outer,
                      index_t dim, index_t inner) {
  backward<false>(grad_out, y, grad_in, outer, dim, inner);
}

void log_softmax_forward(const float* x, float* y, index_t outer, index_t dim, index_t inner) {
  forward<true>(x, y, outer, dim, inner);
}

void log_softmax_backward(const float* grad_out, const float* y, float* grad_in, index_t outer,
                          index_t dim, index_t inner) {
  backward<true>(grad_out, y, grad_in, outer, dim, inner);
}

}  // namespace fastlayers::cpu
