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

// As torch.optim.RMSprop: g = grad + weight_decay*param; sa = alpha*sa + (1-alpha)*g^2;
// centered: ga = lerp(ga, g, 1-alpha), avg = sqrt(sa - ga^2) + eps, else avg = sqrt(sa) + eps;
// momentum > 0: buf = momentum*buf + g/avg, param -= lr*buf; else param -= lr*g/avg.
// momentum_buffer is used only when momentum > 0, grad_avg only when centered (else may be null).
void rmsprop_update(float* param, const float* grad, float* square_avg, float* momentum_buffer,
                    float* grad_avg, index_t n, float lr, float alpha, float eps, float weight_decay,
                    float momentum, bool centered);

// As torch.optim.Adagrad (dense): g = grad + weight_decay*param; state_sum += g^2;
// param -= clr * g / (sqrt(state_sum) + eps) with clr = lr / (1 + (step-1)*lr_decay), step >= 1.
void adagrad_update(float* param, const float* grad, float* state_sum, index_t n, float lr,
                    float lr_decay, float weight_decay, float eps, index_t step);

}  // namespace fastlayers::cpu
