#include "cuda/activation.h"
#include "cuda/check.h"
#include "cuda/launch.h"

namespace fastlayers::cuda {
namespace {

__global__ void relu_forward_kernel(const float* __restrict__ x, float* __restrict__ y, index_t n) {
  for (index_t i = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<index_t>(gridDim.x) * blockDim.x) {
    const float v = x[i];
    y[i] = v > 0.0f ? v : (v != v ? v : 0.0f);  // NaN stays NaN
  }
}

__global__ void relu_backward_kernel(const float* __restrict__ g, const float* __restrict__ x,
                                     float* __restrict__ gi, index_t n) {
  for (index_t i = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<index_t>(gridDim.x) * blockDim.x)
    gi[i] = x[i] > 0.0f ? g[i] : 0.0f;
}

}  // namespace

void relu_forward(const float* x, float* y, index_t n, cudaStream_t stream) {
  if (n == 0) return;
  relu_forward_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(x, y, n);
  check_launch("relu");
}

void relu_backward(const float* grad_out, const float* x, float* grad_in, index_t n,
                   cudaStream_t stream) {
  if (n == 0) return;
  relu_backward_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(grad_out, x, grad_in, n);
  check_launch("relu_backward");
}

}  // namespace fastlayers::cuda
