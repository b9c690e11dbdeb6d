// Launchers for the batch-norm kernels (batch_norm_kernels.cuh). The reducing kernels take one
// block per channel; with few channels that leaves most of a large GPU idle (a split-channel
// variant with a second merge pass is the next step once it can be measured on a GPU).
#include <algorithm>

#include "cuda/batch_norm.h"
#include "cuda/batch_norm_kernels.cuh"
#include "cuda/check.h"
#include "cuda/launch.h"

namespace fastlayers::cuda {

namespace {
unsigned channel_grid(index_t C) { return static_cast<unsigned>(std::min<index_t>(C, 65535)); }
}  // namespace

void batch_norm_forward(const float* x, float* y, const float* weight, const float* bias,
                        float* running_mean, float* running_var, index_t N, index_t C, index_t S,
                        bool training, float momentum, float eps, cudaStream_t stream) {
  const index_t total = N * C * S;
  if (total <= 0) return;
  if (training) {
    detail::bn_forward_train_kernel<<<channel_grid(C), detail::kBnThreads, 0, stream>>>(
        x, y, weight, bias, running_mean, running_var, N, C, S, momentum, eps);
  } else {
    detail::bn_forward_eval_kernel<<<grid_for(total), kThreadsPerBlock, 0, stream>>>(
        x, y, weight, bias, running_mean, running_var, N, C, S, eps);
  }
  check_launch("batch_norm");
}

void batch_norm_backward(const float* grad_out, const float* x, const float* weight,
                         const float* mean, const float* var_or_invstd, int stats,
                         float* grad_x, float* grad_weight, float* grad_bias, index_t N, index_t C,
                         index_t S, float eps, cudaStream_t stream) {
  const index_t total = N * C * S;
  if (total <= 0) {  // empty batch: the affine gradients are zeros
    if (grad_weight) check(cudaMemsetAsync(grad_weight, 0, C * sizeof(float), stream), "batch_norm_backward");
    if (grad_bias) check(cudaMemsetAsync(grad_bias, 0, C * sizeof(float), stream), "batch_norm_backward");
    return;
  }
  if (stats == 2 && grad_weight == nullptr && grad_bias == nullptr) {
    detail::bn_backward_scale_kernel<<<grid_for(total), kThreadsPerBlock, 0, stream>>>(
        grad_out, weight, var_or_invstd, grad_x, N, C, S, eps);
  } else {
    detail::bn_backward_kernel<<<channel_grid(C), detail::kBnThreads, 0, stream>>>(
        grad_out, x, weight, mean, var_or_invstd, stats, grad_x, grad_weight, grad_bias, N, C, S, eps);
  }
  check_launch("batch_norm_backward");
}

void fold_batch_norm(const float* w, const float* b, const float* running_mean,
                     const float* running_var, const float* weight, const float* bias, float* w_out,
                     float* b_out, index_t K, index_t per_k, float eps, cudaStream_t stream) {
  const index_t total = std::max(K * per_k, K);
  if (total <= 0) return;
  detail::fold_batch_norm_kernel<<<grid_for(total), kThreadsPerBlock, 0, stream>>>(
      w, b, running_mean, running_var, weight, bias, w_out, b_out, K, per_k, eps);
  check_launch("fold_batch_norm");
}

}  // namespace fastlayers::cuda
