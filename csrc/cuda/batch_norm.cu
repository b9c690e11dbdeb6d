// Launchers for the batch-norm kernels (batch_norm_kernels.cuh). The reductions run as partial
// moments per (channel, split) block, a per-channel merge and an elementwise pass; their workspace
// (the partial moments and 4 coefficients per channel) is a stream-ordered allocation
// (cudaMallocAsync, freed with cudaFreeAsync on the same stream), as the loss reductions do.
#include <algorithm>

#include "cuda/batch_norm.h"
#include "cuda/batch_norm_kernels.cuh"
#include "cuda/check.h"
#include "cuda/launch.h"

namespace fastlayers::cuda {

namespace {

using namespace detail;

unsigned blocks_for(index_t units) { return static_cast<unsigned>(std::min<index_t>(units, 65535LL * 8)); }

// partial -> finalize -> apply on `stream`, with the workspace allocated around them.
void reduce_and_apply(const float* x, const float* dy, float* out, int mode, int apply, const float* weight,
                      const float* bias, float* running_mean, float* running_var, const float* mean_in,
                      const float* var_or_invstd, float* gw, float* gb, index_t N, index_t C, index_t S,
                      float momentum, float eps, cudaStream_t stream, const char* op) {
  const index_t splits = bn_splits(N, C, S);
  const size_t part_bytes = static_cast<size_t>(C * splits) * sizeof(BnMoments);
  void* work = nullptr;
  check(cudaMallocAsync(&work, part_bytes + static_cast<size_t>(4 * C) * sizeof(float), stream), op);
  auto* part = static_cast<BnMoments*>(work);
  auto* coef = reinterpret_cast<float*>(static_cast<char*>(work) + part_bytes);
  bn_partial_kernel<<<blocks_for(C * splits), kBnThreads, 0, stream>>>(x, dy, N, C, S, splits, part);
  cudaError_t status = cudaGetLastError();
  if (status == cudaSuccess) {
    bn_finalize_kernel<<<grid_for(C), kThreadsPerBlock, 0, stream>>>(part, splits, C, mode, weight, bias,
                                                                     running_mean, running_var, mean_in,
                                                                     var_or_invstd, gw, gb, momentum, eps, coef);
    status = cudaGetLastError();
  }
  if (status == cudaSuccess) {
    const index_t total = N * C * S;
    const unsigned grid = S >= kThreadsPerBlock ? blocks_for(N * C) : grid_for(total);
    bn_apply_kernel<<<grid, kThreadsPerBlock, 0, stream>>>(apply, x, dy, out, coef, N, C, S);
    status = cudaGetLastError();
  }
  const cudaError_t freed = cudaFreeAsync(work, stream);
  check(status, op);
  check(freed, op);
}

}  // namespace

void batch_norm_forward(const float* x, float* y, const float* weight, const float* bias,
                        float* running_mean, float* running_var, index_t N, index_t C, index_t S,
                        bool training, float momentum, float eps, cudaStream_t stream) {
  const index_t total = N * C * S;
  if (total <= 0) return;
  if (training) {
    reduce_and_apply(x, nullptr, y, kBnForward, 0, weight, bias, running_mean, running_var, nullptr, nullptr,
                     nullptr, nullptr, N, C, S, momentum, eps, stream, "batch_norm");
    return;
  }
  bn_forward_eval_kernel<<<grid_for(total), kThreadsPerBlock, 0, stream>>>(x, y, weight, bias, running_mean,
                                                                           running_var, N, C, S, eps);
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
  if (stats == kBnRunning && grad_weight == nullptr && grad_bias == nullptr) {
    bn_backward_scale_kernel<<<grid_for(total), kThreadsPerBlock, 0, stream>>>(
        grad_out, weight, var_or_invstd, grad_x, N, C, S, eps);
    check_launch("batch_norm_backward");
    return;
  }
  reduce_and_apply(x, grad_out, grad_x, stats, stats == kBnRunning ? 2 : 1, weight, nullptr, nullptr, nullptr,
                   mean, var_or_invstd, grad_weight, grad_bias, N, C, S, 0.0f, eps, stream,
                   "batch_norm_backward");
}

void fold_batch_norm(const float* w, const float* b, const float* running_mean,
                     const float* running_var, const float* weight, const float* bias, float* w_out,
                     float* b_out, index_t K, index_t per_k, float eps, cudaStream_t stream) {
  const index_t total = std::max(K * per_k, K);
  if (total <= 0) return;
  fold_batch_norm_kernel<<<grid_for(total), kThreadsPerBlock, 0, stream>>>(
      w, b, running_mean, running_var, weight, bias, w_out, b_out, K, per_k, eps);
  check_launch("fold_batch_norm");
}

}  // namespace fastlayers::cuda
