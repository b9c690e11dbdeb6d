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

namespace {

// torch.lerp's two-sided form (a + w*(b - a) for w < 0.5, else b - (b - a)*(1 - w)), so the
// centered average rounds as PyTorch's grad_avg.lerp_(grad, 1 - alpha) does.
inline float lerp(float a, float b, float w) {
  const float d = b - a;
  return w < 0.5f ? a + w * d : b - d * (1.0f - w);
}

}  // namespace

void rmsprop_update(float* param, const float* grad, float* square_avg, float* momentum_buffer,
                    float* grad_avg, index_t n, float lr, float alpha, float eps, float weight_decay,
                    float momentum, bool centered) {
  const float one_minus_alpha = 1.0f - alpha;
  const bool use_buf = momentum > 0.0f;
#pragma omp parallel for schedule(static) if (n > kParallelGrain) num_threads(max_threads())
  for (index_t i = 0; i < n; ++i) {
    const float g = regularised(grad[i], param[i], weight_decay, 0.0f);
    const float sa = alpha * square_avg[i] + one_minus_alpha * (g * g);
    square_avg[i] = sa;
    float avg;
    if (centered) {
      const float ga = lerp(grad_avg[i], g, one_minus_alpha);
      grad_avg[i] = ga;
      avg = std::sqrt(sa - ga * ga) + eps;
    } else {
      avg = std::sqrt(sa) + eps;
    }
    if (use_buf) {
      const float b = momentum * momentum_buffer[i] + g / avg;
      momentum_buffer[i] = b;
      param[i] -= lr * b;
    } else {
      param[i] -= lr * (g / avg);
    }
  }
}

void adagrad_update(float* param, const float* grad, float* state_sum, index_t n, float lr,
                    float lr_decay, float weight_decay, float eps, index_t step) {
  // The decayed rate once per call, in double, as PyTorch computes it in Python floats.
  const float clr = static_cast<float>(static_cast<double>(lr) /
                                       (1.0 + static_cast<double>(step - 1) * static_cast<double>(lr_decay)));
#pragma omp parallel for schedule(static) if (n > kParallelGrain) num_threads(max_threads())
  for (index_t i = 0; i < n; ++i) {
    const float g = regularised(grad[i], param[i], weight_decay, 0.0f);
    const float s = state_sum[i] + g * g;
    state_sum[i] = s;
    param[i] -= clr * (g / (std::sqrt(s) + eps));
  }
}

}  // namespace fastlayers::cpu
