// Fused in-place optimizer update kernels: one pass over param/grad(/state), grid-stride, the
// same per-element formulas as csrc/cpu/optim.cpp. In a header of their own (no launches) so
// csrc/cuda/host_emulation/ can check them against double-precision loops.
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


}  // namespace fastlayers::cuda::detail
