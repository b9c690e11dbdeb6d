#include "cpu/dropout.h"

#include "common/philox.h"
#include "cpu/parallel.h"

namespace fastlayers::cpu {

namespace {

// Calls out(i, factor) for every element, factor = keep(i) ? on : off. One Philox call covers
// four elements (a block); blocks are independent, so they split across threads.
template <typename Out>
void for_each_factor(index_t n, std::uint64_t seed, std::uint32_t threshold, float on, float off, Out out) {
  if (n <= 0) return;
  const index_t blocks = (n + 3) / 4;
#pragma omp parallel for schedule(static) if (n > kParallelGrain / 4)
  for (index_t b = 0; b < blocks; ++b) {
    std::uint32_t w[4];
    philox::dropout_block(seed, static_cast<std::uint64_t>(b), w);
    const index_t i0 = 4 * b;
    const int count = n - i0 < 4 ? static_cast<int>(n - i0) : 4;
    for (int k = 0; k < count; ++k) out(i0 + k, philox::keep(w[k], threshold) ? on : off);
  }
}

}  // namespace

void dropout_forward(const float* x, float* y, index_t n, std::uint64_t seed, std::uint32_t threshold,
                     float scale) {
  for_each_factor(n, seed, threshold, scale, 0.0f, [=](index_t i, float f) { y[i] = x[i] * f; });
}

void dropout_backward(const float* grad_out, float* grad_in, index_t n, std::uint64_t seed,
                      std::uint32_t threshold, float scale) {
  dropout_forward(grad_out, grad_in, n, seed, threshold, scale);
}

void dropout_mask(float* mask, index_t n, std::uint64_t seed, std::uint32_t threshold) {
  for_each_factor(n, seed, threshold, 1.0f, 0.0f, [=](index_t i, float f) { mask[i] = f; });
}

}  // namespace fastlayers::cpu
