// Optimizer updates on the GPU, in place over n contiguous floats. Same names and arguments as
// csrc/cpu/optim.h plus the stream (same formulas; see there). Free of CUDA syntax.
#pragma once
#include <cuda_runtime_api.h>

#include "common/types.h"

namespace fastlayers::cuda {

// velocity may be null when momentum == 0.
void sgd_update(float* param, const float* grad, float* velocity, index_t n, float lr,
                float momentum, float weight_decay, float l1, bool nesterov, cudaStream_t stream);

void adam_update(float* param, const float* grad, float* m, float* v, index_t n, float lr,
                 float beta1, float beta2, float eps, float weight_decay, index_t step,
                 cudaStream_t stream);

// momentum_buffer may be null when momentum == 0, grad_avg when centered is false.
void rmsprop_update(float* param, const float* grad, float* square_avg, float* momentum_buffer,
                    float* grad_avg, index_t n, float lr, float alpha, float eps, float weight_decay,
                    float momentum, bool centered, cudaStream_t stream);

void adagrad_update(float* param, const float* grad, float* state_sum, index_t n, float lr,
                    float lr_decay, float weight_decay, float eps, index_t step, cudaStream_t stream);

}  // namespace fastlayers::cuda
