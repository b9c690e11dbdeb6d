#include "cpu/optim.h"

#include <cmath>

#include "cpu/parallel.h"

namespace fastlayers::cpu {
namespace {

inline float sign_of(float x) { return static_cast<float>((x > 0.0f) - (x < 0.0f)); }

// Coefficients equal to 0 add nothing (not 0*param, which would turn an inf parameter into NaN),
// matching torch.optim, which skips weight decay when it is 0.
inline float regularised(float g, float p, float weight_decay, float l1) {
  if (weight_decay != 0.0f) g += weight_decay * p;
  if (l1 != 0.0f) g += l1 * sign_of(p);
  return g;
}

}  // namespace

void sgd_update(float* param, const float* grad, float* velocity, index_t n, float lr,
                float momentum, float weight_decay, float l1, bool nesterov) {
  if (momentum == 0.0f) {
#pragma omp parallel for schedule(static) if (n > kParallelGrain) num_threads(max_threads())
    for (index_t i = 0; i < n; ++i) {
      const float g = regularised(grad[i], param[i], weight_decay, l1);
      param[i] -= lr * g;
    }
    return;
  }
#pragma omp parallel for schedule(static) if (n > kParallelGrain) num_threads(max_threads())
  for (index_t i = 0; i < n; ++i) {
    const float g = regularised(grad[i], param[i], weight_decay, l1);
    const float v = momentum * velocity[i] + g;
    velocity[i] = v;
    param[i] -= lr * (nesterov ? g + momentum * v : v);
  }
}

void adam_update(float* param, const float* grad, float* m, float* v, index_t n, float lr,
                 float beta1, float beta2, float eps, float weight_decay, index_t step) {
  // Bias corrections once per call, in double (beta^step for large step underflows gracefully to 0).
  const double bc1 = 1.0 - std::pow(static_cast<double>(beta1), static_cast<double>(step));
  const double bc2 = 1.0 - std::pow(static_cast<double>(beta2), static_cast<double>(step));
  const float step_size = static_cast<float>(lr / bc1);
  const float inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(bc2));
  const float one_minus_b1 = 1.0f - beta1, one_minus_b2 = 1.0f - beta2;
#pragma omp parallel for schedule(static) if (n > kParallelGrain) num_threads(max_threads())
  for (index_t i = 0; i < n; ++i) {
    const float g = regularised(grad[i], param[i], weight_decay, 0.0f);
    const float mi = beta1 * m[i] + one_minus_b1 * g;
    const float vi = beta2 * v[i] + one_minus_b2 * g * g;
    m[i] = mi;
    v[i] = vi;
    param[i] -= step_size * mi / (std::sqrt(vi) * inv_sqrt_bc2 + eps);
  }
}

}  // namespace fastlayers::cpu
