#include "cpu/elementwise.h"

#include "cpu/parallel.h"

namespace fastlayers::cpu {

void add_forward(const float* a, const float* b, float* y, index_t n) {
#pragma omp parallel for simd schedule(static) if (n > kParallelGrain) num_threads(max_threads())
  for (index_t i = 0; i < n; ++i) y[i] = a[i] + b[i];
}

}  // namespace fastlayers::cpu
