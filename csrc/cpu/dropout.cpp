#include "cpu/dropout.h"

#include "common/philox.h"
#include "cpu/parallel.h"
#include "cpu/vmath.h"

namespace fastlayers::cpu {

namespace {

// y[i] = x[i] * (keep(i) ? on : 0), or the mask itself when x is null. One Philox call covers
// four elements (a block); whole blocks go to the per-ISA loop (vectorised across blocks, split
// across threads), the last partial block is done here. The mask depends only on (seed, i).
void apply(const float* x, float* y, index_t n, std::uint64_t seed, std::uint32_t threshold, float on) {
  if (n <= 0) return;
  const VmathKernels& k = vmath_kernels();
  const index_t full = n / 4;
  // Philox costs about as much as an exp per element: the same grain.
  parallel_ranges(full, kTranscendentalGrain / 4, [&](index_t lo, index_t hi) {
    k.dropout_blocks(x, y, lo, hi - lo, seed, threshold, on);
  });
  if (n % 4 != 0) {
    std::uint32_t w[4];
    philox::dropout_block(seed, static_cast<std::uint64_t>(full), w);
    for (index_t i = 4 * full; i < n; ++i) {
      const float f = philox::keep(w[i - 4 * full], threshold) ? on : 0.0f;
      y[i] = x != nullptr ? x[i] * f : f;
    }
  }
}

}  // namespace

void dropout_forward(const float* x, float* y, index_t n, std::uint64_t seed, std::uint32_t threshold,
                     float scale) {
  apply(x, y, n, seed, threshold, scale);
}

void dropout_backward(const float* grad_out, float* grad_in, index_t n, std::uint64_t seed,
                      std::uint32_t threshold, float scale) {
  apply(grad_out, grad_in, n, seed, threshold, scale);
}

void dropout_mask(float* mask, index_t n, std::uint64_t seed, std::uint32_t threshold) {
  apply(nullptr, mask, n, seed, threshold, 1.0f);
}

}  // namespace fastlayers::cpu
