#include "cpu/activation.h"

#include <cmath>

#include "cpu/parallel.h"
#include "cpu/vmath.h"

namespace fastlayers::cpu {

// The loops are written so that GCC vectorises them at -O3 with the baseline ISA; they are
// memory-bound, so wider SIMD buys little here. sigmoid/tanh forward use the vector math of
// vmath.h through the per-ISA loops (a few ulp; see the accuracy notes there).

void relu_forward(const float* x, float* y, index_t n) {
#pragma omp parallel for simd schedule(static) if (n > kParallelGrain) num_threads(max_threads())
  for (index_t i = 0; i < n; ++i) y[i] = x[i] > 0.0f ? x[i] : (x[i] != x[i] ? x[i] : 0.0f);  // NaN stays NaN
}

void relu_backward(const float* grad_out, const float* x, float* grad_in, index_t n) {
#pragma omp parallel for simd schedule(static) if (n > kParallelGrain) num_threads(max_threads())
  for (index_t i = 0; i < n; ++i) {
    const float g = grad_out[i];  // loaded unconditionally so the select vectorises
    // PyTorch's mask (threshold_backward): x <= 0 -> 0, so a NaN input passes the gradient on.
    grad_in[i] = x[i] <= 0.0f ? 0.0f : g;
  }
}

void leaky_relu_forward(const float* x, float* y, index_t n, float negative_slope) {
  // x * slope keeps NaN as NaN on its own (NaN > 0 is false).
#pragma omp parallel for simd schedule(static) if (n > kParallelGrain) num_threads(max_threads())
  for (index_t i = 0; i < n; ++i) y[i] = x[i] > 0.0f ? x[i] : x[i] * negative_slope;
}

void leaky_relu_backward(const float* grad_out, const float* x, float* grad_in, index_t n,
                         float negative_slope) {
  // At x == 0 the slope side is taken, as PyTorch does.
#pragma omp parallel for simd schedule(static) if (n > kParallelGrain) num_threads(max_threads())
  for (index_t i = 0; i < n; ++i) grad_in[i] = x[i] > 0.0f ? grad_out[i] : grad_out[i] * negative_slope;
}

void sigmoid_forward(const float* x, float* y, index_t n) {
  const auto& k = vmath_kernels();
  parallel_ranges(n, kTranscendentalGrain, [&](index_t lo, index_t hi) { k.sigmoid(x + lo, y + lo, hi - lo); });
}

void sigmoid_backward(const float* grad_out, const float* y, float* grad_in, index_t n) {
#pragma omp parallel for simd schedule(static) if (n > kParallelGrain) num_threads(max_threads())
  for (index_t i = 0; i < n; ++i) grad_in[i] = grad_out[i] * (y[i] * (1.0f - y[i]));
}

void tanh_forward(const float* x, float* y, index_t n) {
  const auto& k = vmath_kernels();
  parallel_ranges(n, kTranscendentalGrain, [&](index_t lo, index_t hi) { k.tanh(x + lo, y + lo, hi - lo); });
}

void tanh_backward(const float* grad_out, const float* y, float* grad_in, index_t n) {
#pragma omp parallel for simd schedule(static) if (n > kParallelGrain) num_threads(max_threads())
  for (index_t i = 0; i < n; ++i) grad_in[i] = grad_out[i] * (1.0f - y[i] * y[i]);
}

void sign_forward(const float* x, float* y, index_t n) {
#pragma omp parallel for simd schedule(static) if (n > kParallelGrain) num_threads(max_threads())
  for (index_t i = 0; i < n; ++i)
    y[i] = x[i] > 0.0f ? 1.0f : (x[i] < 0.0f ? -1.0f : (x[i] == 0.0f ? 0.0f : x[i]));
}

void heaviside_forward(const float* x, float* y, index_t n, float value_at_zero) {
  // firstprivate: a per-thread copy, so the stores to y cannot alias it (else no vectorisation)
#pragma omp parallel for simd schedule(static) if (n > kParallelGrain) firstprivate(value_at_zero) num_threads(max_threads())
  for (index_t i = 0; i < n; ++i)
    y[i] = x[i] > 0.0f ? 1.0f : (x[i] < 0.0f ? 0.0f : (x[i] == 0.0f ? value_at_zero : x[i]));
}

}  // namespace fastlayers::cpu
