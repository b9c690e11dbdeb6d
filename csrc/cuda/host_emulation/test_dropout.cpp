// Host emulation of the dropout kernel: the mask must equal the host Philox mapping
// (common/philox.h) element for element, for every n % 4, grids smaller than the work, and both
// the float4 path (aligned buffers) and the scalar one.
#include <cstdio>
#include <vector>

#include "cuda_shim.h"
#include "cuda/dropout_kernels.cuh"

using fastlayers::index_t;
namespace philox = fastlayers::philox;

int main() {
  int failures = 0;
  for (index_t n : {0, 1, 3, 4, 5, 9, 1001})
    for (unsigned grid : {1u, 2u})
    for (int vec = 0; vec < 2; ++vec) {
      const std::uint64_t seed = 0x123456789abcdefULL + n;
      const std::uint32_t threshold = 1u << 23;  // p = 0.5
      std::vector<float> x(n + 4), y(n + 4, -5.0f), mask(n + 4, -5.0f);
      for (index_t i = 0; i < n; ++i) x[i] = 1.0f + i;
      emulate_launch(grid, 32, [&] { fastlayers::cuda::detail::dropout_kernel(x.data(), y.data(), n, seed, threshold, 2.0f, vec != 0); });
      emulate_launch(grid, 32, [&] { fastlayers::cuda::detail::dropout_kernel(nullptr, mask.data(), n, seed, threshold, 1.0f, vec != 0); });
      bool ok = y[n] == -5.0f && mask[n] == -5.0f;
      for (index_t i = 0; i < n; ++i) {
        std::uint32_t w[4];
        philox::dropout_block(seed, static_cast<std::uint64_t>(i / 4), w);
        const bool keep = philox::keep(w[i % 4], threshold);
        ok = ok && mask[i] == (keep ? 1.0f : 0.0f) && y[i] == (keep ? x[i] * 2.0f : 0.0f);
      }
      if (!ok) { ++failures; std::printf("FAIL dropout n %ld grid %u vec %d\n", (long)n, grid, vec); }
    }
  std::printf("%d failures\n", failures);
  return failures != 0;
}
