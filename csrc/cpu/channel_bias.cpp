#include "cpu/channel_bias.h"

#include "cpu/parallel.h"

namespace fastlayers::cpu {

void add_channel_bias(float* y, const float* b, index_t N, index_t C, index_t inner) {
#pragma omp parallel for collapse(2) schedule(static) if (N * C * inner > kParallelGrain) num_threads(max_threads())
  for (index_t n = 0; n < N; ++n)
    for (index_t c = 0; c < C; ++c) {
      float* row = y + (n * C + c) * inner;
      const float v = b[c];
#pragma omp simd
      for (index_t i = 0; i < inner; ++i) row[i] += v;
    }
}

void channel_bias_grad(const float* g, float* gb, index_t N, index_t C, index_t inner) {
  constexpr int L = 16;
#pragma omp parallel for schedule(static) if (N * C * inner > kParallelGrain) num_threads(max_threads())
  for (index_t c = 0; c < C; ++c) {
    double acc = 0.0;
    for (index_t n = 0; n < N; ++n) {
      const float* row = g + (n * C + c) * inner;
      float lanes[L] = {};
      index_t i = 0;
      for (; i + L <= inner; i += L)
        for (int l = 0; l < L; ++l) lanes[l] += row[i + l];
      for (; i < inner; ++i) lanes[i % L] += row[i];
      for (int l = 0; l < L; ++l) acc += lanes[l];
    }
    gb[c] = static_cast<float>(acc);
  }
}

}  // namespace fastlayers::cpu
