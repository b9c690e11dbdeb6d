#include "cpu/activation.h"

#include "cpu/parallel.h"

namespace fastlayers::cpu {

// The loops are written so that GCC vectorises them at -O3 with the baseline ISA; they are
// memory-bound, so wider SIMD buys little here.

void relu_forward(const float* x, float* y, index_t n) {
#pragma omp parallel for simd schedule(static) if (n > kParallelGrain)
  for (index_t i = 0; i < n; ++i) y[i] = x[i] > 0.0f ? x[i] : (x[i] != x[i] ? x[i] : 0.0f);  // NaN stays NaN
}

void relu_backward(const float* grad_out, const float* x, float* grad_in, index_t n) {
#pragma omp parallel for simd schedule(static) if (n > kParallelGrain)
  for (index_t i = 0; i < n; ++i) grad_in[i] = x[i] > 0.0f ? grad_out[i] : 0.0f;
}

}  // namespace fastlayers::cpu
