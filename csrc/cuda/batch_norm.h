// Batch normalisation on the GPU. Same names and arguments as csrc/cpu/batch_norm.h plus the
// stream (same formulas; see there and batch_norm_kernels.cuh). Free of CUDA syntax.
#pragma once
#include <cuda_runtime_api.h>

#include "common/types.h"

namespace fastlayers::cuda {

void batch_norm_forward(const float* x, float* y, const float* weight, const float* bias,
                        float* running_mean, float* running_var, index_t N, index_t C, index_t S,
                        bool training, float momentum, float eps, cudaStream_t stream);

// stats: 0 batch (recomputed from x), 1 saved (mean, invstd), 2 running (mean, var).
void batch_norm_backward(const float* grad_out, const float* x, const float* weight,
                         const float* mean, const float* var_or_invstd, int stats,
                         float* grad_x, float* grad_weight, float* grad_bias, index_t N, index_t C,
                         index_t S, float eps, cudaStream_t stream);

void fold_batch_norm(const float* w, const float* b, const float* running_mean,
                     const float* running_var, const float* weight, const float* bias, float* w_out,
                     float* b_out, index_t K, index_t per_k, float eps, cudaStream_t stream);

}  // namespace fastlayers::cuda
