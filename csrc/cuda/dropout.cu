#include <cstdint>

#include "cuda/check.h"
#include "cuda/dropout.h"
#include "cuda/dropout_kernels.cuh"
#include "cuda/launch.h"

namespace fastlayers::cuda {
namespace {
void launch(const float* x, float* y, index_t n, std::uint64_t seed, std::uint32_t threshold,
            float on, cudaStream_t stream, const char* op) {
  if (n <= 0) return;
  const bool vec = reinterpret_cast<std::uintptr_t>(x) % 16 == 0 && reinterpret_cast<std::uintptr_t>(y) % 16 == 0;
  detail::dropout_kernel<<<grid_for((n + 3) / 4), kThreadsPerBlock, 0, stream>>>(x, y, n, seed, threshold, on, vec);
  check_launch(op);
}
}  // namespace

void dropout_forward(const float* x, float* y, index_t n, std::uint64_t seed, std::uint32_t threshold,
                     float scale, cudaStream_t stream) {
  launch(x, y, n, seed, threshold, scale, stream, "dropout");
}
void dropout_backward(const float* grad_out, float* grad_in, index_t n, std::uint64_t seed,
                      std::uint32_t threshold, float scale, cudaStream_t stream) {
  launch(grad_out, grad_in, n, seed, threshold, scale, stream, "dropout_backward");
}
void dropout_mask(float* mask, index_t n, std::uint64_t seed, std::uint32_t threshold,
                  cudaStream_t stream) {
  launch(nullptr, mask, n, seed, threshold, 1.0f, stream, "dropout_mask");
}

}  // namespace fastlayers::cuda
