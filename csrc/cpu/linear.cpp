#include "cpu/linear.h"

#include "cpu/parallel.h"

namespace fastlayers::cpu {

void bias_add_rows(float* y, const float* b, index_t rows, index_t cols) {
#pragma omp parallel for schedule(static) if (rows * cols > kParallelGrain) num_threads(max_threads())
  for (index_t r = 0; r < rows; ++r) {
    float* yr = y + r * cols;
#pragma omp simd
    for (index_t c = 0; c < cols; ++c) yr[c] += b[c];
  }
}

// Columns are split across threads in chunks of 256 (1 KiB of sums each), and every thread walks
// all rows of its chunk, so the row reads stay unit-stride and no cross-thread reduction is needed.
void bias_grad_rows(const float* g, float* grad_b, index_t rows, index_t cols) {
  constexpr index_t kChunk = 256;
  const index_t chunks = (cols + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (rows * cols > kParallelGrain && chunks > 1) num_threads(max_threads())
  for (index_t ch = 0; ch < chunks; ++ch) {
    const index_t c0 = ch * kChunk;
    const index_t n = cols - c0 < kChunk ? cols - c0 : kChunk;
    float* out = grad_b + c0;
    for (index_t c = 0; c < n; ++c) out[c] = 0.0f;
    for (index_t r = 0; r < rows; ++r) {
      const float* gr = g + r * cols + c0;
#pragma omp simd
      for (index_t c = 0; c < n; ++c) out[c] += gr[c];
    }
  }
}

}  // namespace fastlayers::cpu
