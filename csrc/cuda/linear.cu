// Dense-layer bias launchers: the dispatch of linear_launch.h on the caller's stream.
#include "cuda/linear.h"
#include "cuda/linear_launch.h"
#include "cuda/stream_launch.h"

namespace fastlayers::cuda {

void bias_add_rows(float* y, const float* b, index_t rows, index_t cols, cudaStream_t stream) {
  StreamLaunch launch{stream};
  linear_dispatch::bias_add(launch, y, b, rows, cols);
}

index_t bias_grad_rows_workspace_floats(index_t rows, index_t cols) {
  return linear_dispatch::bias_workspace_floats(rows, cols);
}

void bias_grad_rows(const float* g, float* grad_b, index_t rows, index_t cols, float* workspace,
                    index_t workspace_floats, cudaStream_t stream) {
  StreamLaunch launch{stream};
  linear_dispatch::bias_grad(launch, g, grad_b, rows, cols, workspace, workspace_floats);
}

}  // namespace fastlayers::cuda
