#include "cuda/check.h"
#include "cuda/launch.h"
#include "cuda/linear.h"
#include "cuda/linear_kernels.cuh"

namespace fastlayers::cuda {

void bias_add_rows(float* y, const float* b, index_t rows, index_t cols, cudaStream_t stream) {
  if (rows <= 0 || cols <= 0) return;
  detail::bias_add_rows_kernel<<<grid_for(rows * cols), kThreadsPerBlock, 0, stream>>>(y, b, rows, cols);
  check_launch("linear (bias)");
}

void bias_grad_rows(const float* g, float* grad_b, index_t rows, index_t cols, cudaStream_t stream) {
  if (cols <= 0) return;
  // rows == 0 still launches: the gradient of an empty batch is zero.
  detail::bias_grad_rows_kernel<<<grid_for(cols), kThreadsPerBlock, 0, stream>>>(g, grad_b, rows, cols);
  check_launch("linear_backward (bias)");
}

}  // namespace fastlayers::cuda
