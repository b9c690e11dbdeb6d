// Fused in-place optimizer updates: one pass over param/grad(/state), grid-stride, the same
// per-element formulas as csrc/cpu/optim.cpp. Adam's bias corrections are computed once on the
// host in double, exactly as the CPU does.
#include <cmath>
#include <stdexcept>

#include "cuda/check.h"
#include "cuda/launch.h"
#include "cuda/optim.h"
#include "cuda/optim_kernels.cuh"

namespace fastlayers::cuda {
using namespace detail;

void sgd_update(float* param, const float* grad, float* velocity, index_t n, float lr,
                float momentum, float weight_decay, float l1, bool nesterov, cudaStream_t stream) {
  if (n <= 0) return;
  if (momentum == 0.0f) {
    sgd_plain_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(param, grad, n, lr, weight_decay, l1);
  } else {
    if (velocity == nullptr)
      throw std::invalid_argument("fastlayers.sgd_update: velocity is required when momentum != 0");
    sgd_momentum_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(param, grad, velocity, n, lr,
                                                                      momentum, weight_decay, l1,
                                                                      nesterov);
  }
  check_launch("sgd_update");
}

void adam_update(float* param, const float* grad, float* m, float* v, index_t n, float lr,
                 float beta1, float beta2, float eps, float weight_decay, index_t step,
                 cudaStream_t stream) {
  if (n <= 0) return;
  const double bc1 = 1.0 - std::pow(static_cast<double>(beta1), static_cast<double>(step));
  const double bc2 = 1.0 - std::pow(static_cast<double>(beta2), static_cast<double>(step));
  const float step_size = static_cast<float>(lr / bc1);
  const float inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(bc2));
  adam_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(param, grad, m, v, n, step_size,
                                                            inv_sqrt_bc2, beta1, beta2, 1.0f - beta1,
                                                            1.0f - beta2, eps, weight_decay);
  check_launch("adam_update");
}

void rmsprop_update(float* param, const float* grad, float* square_avg, float* momentum_buffer,
                    float* grad_avg, index_t n, float lr, float alpha, float eps, float weight_decay,
                    float momentum, bool centered, cudaStream_t stream) {
  if (n <= 0) return;
  if ((momentum > 0.0f && momentum_buffer == nullptr) || (centered && grad_avg == nullptr))
    throw std::invalid_argument("fastlayers.rmsprop_update: momentum_buffer / grad_avg missing");
  detail::rmsprop_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(
      param, grad, square_avg, momentum_buffer, grad_avg, n, lr, alpha, eps, weight_decay, momentum, centered);
  check_launch("rmsprop_update");
}

void adagrad_update(float* param, const float* grad, float* state_sum, index_t n, float lr,
                    float lr_decay, float weight_decay, float eps, index_t step, cudaStream_t stream) {
  if (n <= 0) return;
  const float clr = static_cast<float>(static_cast<double>(lr) /
                                       (1.0 + static_cast<double>(step - 1) * static_cast<double>(lr_decay)));
  detail::adagrad_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(param, grad, state_sum, n, clr,
                                                                        weight_decay, eps);
  check_launch("adagrad_update");
}

}  // namespace fastlayers::cuda
