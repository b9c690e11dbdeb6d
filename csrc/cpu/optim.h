// Optimizer updates on the CPU, in place over n contiguous floats. Same names as a CUDA twin
// would use (plus a trailing cudaStream_t). The op layer has validated the hyperparameters.
#pragma once
#include "common/types.h"

namespace fastlayers::cpu {

// g = grad + weight_decay*param + l1*sign(param)   (each term only when its coefficient is != 0)
// momentum == 0: param -= lr*g                       (velocity unused, may be null)
// else:          v = momentum*v + g; param -= lr*(nesterov ? g + momentum*v : v)
void sgd_update(float* param, const float* grad, float* velocity, index_t n, float lr,
                float momentum, float weight_decay, float l1, bool nesterov);

// g = grad + weight_decay*param; m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;
// param -= lr/(1-b1^step) * m / (sqrt(v)/sqrt(1-b2^step) + eps)   (as torch.optim.Adam), step >= 1.
void adam_update(float* param, const float* grad, float* m, float* v, index_t n, float lr,
                 float beta1, float beta2, float eps, float weight_decay, index_t step);

}  // namespace fastlayers::cpu
