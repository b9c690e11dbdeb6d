// Fused in-place optimizer update kernels (SGD, Adam, RMSprop, Adagrad): one pass over
// param/grad(/state), grid-stride, the same per-element formulas as csrc/cpu/optim.cpp (torch.optim's).
// In a header of their own (no launches) so csrc/cuda/host_emulation/ can check them against
// double-precision loops.
#pragma once
#include <cmath>

#include "common/types.h"

namespace fastlayers::cuda::detail {


__device__ __forceinline__ float sign_of(float x) { return static_cast<float>((x > 0.0f) - (x < 0.0f)); }

// Zero coefficients add nothing (not 0 * param, which would turn an inf parameter into NaN).
__device__ __forceinline__ float regularised(float g, float p, float weight_decay, float l1) {
  if (weight_decay != 0.0f) g += weight_decay * p;
  if (l1 != 0.0f) g += l1 * sign_of(p);
  return g;
}

__global__ void sgd_plain_kernel(float* param, const float* grad, index_t n, float lr,
                                 float weight_decay, float l1) {
  for (index_t i = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<index_t>(gridDim.x) * blockDim.x) {
    const float g = regularised(grad[i], param[i], weight_decay, l1);
    param[i] -= lr * g;
  }
}

__global__ void sgd_momentum_kernel(float* param, const float* grad, float* velocity, index_t n,
                                    float lr, float momentum, float weight_decay, float l1,
                                    bool nesterov) {
  for (index_t i = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<index_t>(gridDim.x) * blockDim.x) {
    const float g = regularised(grad[i], param[i], weight_decay, l1);
    const float v = momentum * velocity[i] + g;
    velocity[i] = v;
    param[i] -= lr * (nesterov ? g + momentum * v : v);
  }
}

__global__ void adam_kernel(float* param, const float* grad, float* m, float* v, index_t n,
                            float step_size, float inv_sqrt_bc2, float beta1, float beta2,
                            float one_minus_b1, float one_minus_b2, float eps, float weight_decay) {
  for (index_t i = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<index_t>(gridDim.x) * blockDim.x) {
    const float g = regularised(grad[i], param[i], weight_decay, 0.0f);
    const float mi = beta1 * m[i] + one_minus_b1 * g;
    const float vi = beta2 * v[i] + one_minus_b2 * g * g;
    m[i] = mi;
    v[i] = vi;
    param[i] -= step_size * mi / (sqrtf(vi) * inv_sqrt_bc2 + eps);
  }
}


// torch.lerp's two-sided form, so the centered average rounds as PyTorch's does.
__device__ inline float optim_lerp(float a, float b, float w) {
  const float d = b - a;
  return w < 0.5f ? a + w * d : b - d * (1.0f - w);
}

__global__ void rmsprop_kernel(float* param, const float* grad, float* square_avg, float* momentum_buffer,
                               float* grad_avg, index_t n, float lr, float alpha, float eps,
                               float weight_decay, float momentum, bool centered) {
  const float one_minus_alpha = 1.0f - alpha;
  for (index_t i = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<index_t>(gridDim.x) * blockDim.x) {
    float g = grad[i];
    if (weight_decay != 0.0f) g += weight_decay * param[i];  // 0 adds nothing (0 * inf would be NaN)
    const float sa = alpha * square_avg[i] + one_minus_alpha * (g * g);
    square_avg[i] = sa;
    float avg;
    if (centered) {
      const float ga = optim_lerp(grad_avg[i], g, one_minus_alpha);
      grad_avg[i] = ga;
      avg = sqrtf(sa - ga * ga) + eps;
    } else {
      avg = sqrtf(sa) + eps;
    }
    if (momentum > 0.0f) {
      const float b = momentum * momentum_buffer[i] + g / avg;
      momentum_buffer[i] = b;
      param[i] -= lr * b;
    } else {
      param[i] -= lr * (g / avg);
    }
  }
}

// clr = lr / (1 + (step - 1) * lr_decay), computed by the launcher in double.
__global__ void adagrad_kernel(float* param, const float* grad, float* state_sum, index_t n, float clr,
                               float weight_decay, float eps) {
  for (index_t i = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<index_t>(gridDim.x) * blockDim.x) {
    float g = grad[i];
    if (weight_decay != 0.0f) g += weight_decay * param[i];
    const float s = state_sum[i] + g * g;
    state_sum[i] = s;
    param[i] -= clr * (g / (sqrtf(s) + eps));
  }
}

}  // namespace fastlayers::cuda::detail
