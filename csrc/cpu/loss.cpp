// Elementwise losses on the CPU (cross-entropy and nll_loss are in loss_ce.cpp). The default calls
// (reduction sum/mean, no weights) keep their vectorised loops (vmath, float math, double sums); so
// do the binary cross-entropy / logistic options (per-ISA vmath loops); the other losses' options
// run the formulas of common/loss_terms.h in double (no transcendentals there).
#include <algorithm>
#include <cmath>

#include "common/loss_terms.h"
#include "cpu/loss.h"
#include "cpu/loss_reduce.h"
#include "cpu/parallel.h"
#include "cpu/vmath.h"

namespace fastlayers::cpu {
namespace {

using loss::kMean;
using loss::kNone;

// d loss / d term for a reduced loss: grad_out's one value (1 when absent), / n for "mean".
double reduced_upstream(const float* grad_out, index_t n, int reduction) {
  const double g = grad_out ? static_cast<double>(grad_out[0]) : 1.0;
  return reduction == kMean ? g * mean_scale(n) : g;
}

// Generic forward: per-element values for kNone, else their ordered double sum.
template <class Term>
void forward(Term term, const float* a, const float* b, float* out, index_t n, int reduction) {
  if (reduction == kNone) {
    parallel_ranges(n, kParallelGrain, [&](index_t lo, index_t hi) {
#pragma omp simd
      for (index_t i = lo; i < hi; ++i) out[i] = static_cast<float>(term.value(a[i], b[i]));
    });
    return;
  }
  const double s = ordered_sum(n, 1, [&](index_t i) { return term.value(a[i], b[i]); });
  out[0] = static_cast<float>(s * (reduction == kMean ? mean_scale(n) : 1.0));
}

template <class Term>
void backward(Term term, const float* a, const float* b, const float* grad_out, float* grad,
              index_t n, int reduction) {
  if (reduction == kNone) {
    parallel_ranges(n, kParallelGrain, [&](index_t lo, index_t hi) {
      if (grad_out) {
#pragma omp simd
        for (index_t i = lo; i < hi; ++i) grad[i] = static_cast<float>(grad_out[i] * term.grad(a[i], b[i]));
      } else {
#pragma omp simd
        for (index_t i = lo; i < hi; ++i) grad[i] = static_cast<float>(term.grad(a[i], b[i]));
      }
    });
    return;
  }
  const double k = reduced_upstream(grad_out, n, reduction);
  parallel_ranges(n, kParallelGrain, [&](index_t lo, index_t hi) {
#pragma omp simd
    for (index_t i = lo; i < hi; ++i) grad[i] = static_cast<float>(k * term.grad(a[i], b[i]));
  });
}

}  // namespace

// ---- mean squared error: the default path keeps its float loop ----
void mse_loss_forward(const float* pred, const float* target, float* out, index_t n, double,
                      int reduction, double*, std::int64_t*) {
  forward(loss::Mse{}, pred, target, out, n, reduction);
}

void mse_loss_backward(const float* pred, const float* target, const float* grad_out, float* grad,
                       index_t n, double, int reduction, std::int64_t*) {
  if (reduction == kNone) return backward(loss::Mse{}, pred, target, grad_out, grad, n, reduction);
  const float k = static_cast<float>(2.0 * reduced_upstream(grad_out, n, reduction));
#pragma omp parallel for simd schedule(static) if (n > kParallelGrain) num_threads(max_threads())
  for (index_t i = 0; i < n; ++i) grad[i] = k * (pred[i] - target[i]);
}

void l1_loss_forward(const float* a, const float* b, float* out, index_t n, double, int reduction,
                     double*, std::int64_t*) {
  forward(loss::L1{}, a, b, out, n, reduction);
}
void l1_loss_backward(const float* a, const float* b, const float* grad_out, float* grad, index_t n,
                      double, int reduction, std::int64_t*) {
  backward(loss::L1{}, a, b, grad_out, grad, n, reduction);
}

void smooth_l1_loss_forward(const float* a, const float* b, float* out, index_t n, double beta,
                            int reduction, double*, std::int64_t*) {
  forward(loss::SmoothL1{beta}, a, b, out, n, reduction);
}
void smooth_l1_loss_backward(const float* a, const float* b, const float* grad_out, float* grad,
                             index_t n, double beta, int reduction, std::int64_t*) {
  backward(loss::SmoothL1{beta}, a, b, grad_out, grad, n, reduction);
}

void huber_loss_forward(const float* a, const float* b, float* out, index_t n, double delta,
                        int reduction, double*, std::int64_t*) {
  forward(loss::Huber{delta}, a, b, out, n, reduction);
}
void huber_loss_backward(const float* a, const float* b, const float* grad_out, float* grad,
                         index_t n, double delta, int reduction, std::int64_t*) {
  backward(loss::Huber{delta}, a, b, grad_out, grad, n, reduction);
}

void hinge_embedding_loss_forward(const float* a, const float* b, float* out, index_t n,
                                  double margin, int reduction, double*, std::int64_t*) {
  forward(loss::HingeEmbedding{margin}, a, b, out, n, reduction);
}
void hinge_embedding_loss_backward(const float* a, const float* b, const float* grad_out,
                                   float* grad, index_t n, double margin, int reduction,
                                   std::int64_t*) {
  backward(loss::HingeEmbedding{margin}, a, b, grad_out, grad, n, reduction);
}

void hinge_loss_forward(const float* scores, const float* labels, float* out, index_t n,
                        double margin, int reduction, double*, std::int64_t*) {
  forward(loss::Hinge{margin}, scores, labels, out, n, reduction);
}
void hinge_loss_backward(const float* scores, const float* labels, const float* grad_out,
                         float* grad, index_t n, double margin, int reduction, std::int64_t*) {
  backward(loss::Hinge{margin}, scores, labels, grad_out, grad, n, reduction);
}

// ---- softplus-based losses: the reduced forward and the backward use the vmath loops ----
namespace {

void soft_margin_forward(const float* s, const float* y, float* out, index_t n, int reduction) {
  if (reduction == kNone) {
    const VmathKernels& k = vmath_kernels();
    parallel_ranges(n, kTranscendentalGrain, [&](index_t lo, index_t hi) {
      k.logistic_terms(s + lo, y + lo, out + lo, hi - lo);
    });
    return;
  }
  const VmathKernels& k = vmath_kernels();
  const double sum = ordered_chunk_sum(n, 1, kTranscendentalGrain, [&](index_t lo, index_t hi) {
    return k.logistic_sum(s + lo, y + lo, hi - lo);
  });
  out[0] = static_cast<float>(sum * (reduction == kMean ? mean_scale(n) : 1.0));
}

void soft_margin_backward(const float* s, const float* y, const float* grad_out, float* grad,
                          index_t n, int reduction) {
  if (reduction == kNone) {
    const VmathKernels& k = vmath_kernels();
    parallel_ranges(n, kTranscendentalGrain, [&](index_t lo, index_t hi) {
      if (grad_out) k.logistic_grad_g(s + lo, y + lo, grad_out + lo, grad + lo, hi - lo, 1.0f);
      else k.logistic_grad(s + lo, y + lo, grad + lo, hi - lo, 1.0f);
    });
    return;
  }
  const VmathKernels& k = vmath_kernels();
  const float a = static_cast<float>(reduced_upstream(grad_out, n, reduction));
  parallel_ranges(n, kTranscendentalGrain, [&](index_t lo, index_t hi) {
    k.logistic_grad(s + lo, y + lo, grad + lo, hi - lo, a);
  });
}

}  // namespace

void soft_margin_loss_forward(const float* s, const float* y, float* out, index_t n, double,
                              int reduction, double*, std::int64_t*) {
  soft_margin_forward(s, y, out, n, reduction);
}
void soft_margin_loss_backward(const float* s, const float* y, const float* grad_out, float* grad,
                               index_t n, double, int reduction, std::int64_t*) {
  soft_margin_backward(s, y, grad_out, grad, n, reduction);
}
void logistic_loss_forward(const float* s, const float* y, float* out, index_t n, double,
                           int reduction, double*, std::int64_t*) {
  soft_margin_forward(s, y, out, n, reduction);
}
void logistic_loss_backward(const float* s, const float* y, const float* grad_out, float* grad,
                            index_t n, double, int reduction, std::int64_t*) {
  soft_margin_backward(s, y, grad_out, grad, n, reduction);
}

void bce_with_logits_forward(const float* logits, const float* target, const float* weight,
                             const float* pos_weight, float* out, index_t n, int reduction,
                             double*) {
  if (!weight && !pos_weight && reduction != kNone) {  // the default: vmath's loop, as before
    const VmathKernels& k = vmath_kernels();
    const double s = ordered_chunk_sum(n, 1, kTranscendentalGrain, [&](index_t lo, index_t hi) {
      return k.bce_sum(logits + lo, target + lo, hi - lo);
    });
    out[0] = static_cast<float>(s * (reduction == kMean ? mean_scale(n) : 1.0));
    return;
  }
  const VmathKernels& k = vmath_kernels();
  if (reduction == kNone) {
    parallel_ranges(n, kTranscendentalGrain, [&](index_t lo, index_t hi) {
      k.bce_w_terms(logits + lo, target + lo, weight ? weight + lo : nullptr,
                    pos_weight ? pos_weight + lo : nullptr, out + lo, hi - lo);
    });
    return;
  }
  const double s = ordered_chunk_sum(n, 1, kTranscendentalGrain, [&](index_t lo, index_t hi) {
    return k.bce_w_sum(logits + lo, target + lo, weight ? weight + lo : nullptr,
                       pos_weight ? pos_weight + lo : nullptr, hi - lo);
  });
  out[0] = static_cast<float>(s * (reduction == kMean ? mean_scale(n) : 1.0));
}

void bce_with_logits_backward(const float* logits, const float* target, const float* weight,
                              const float* pos_weight, const float* grad_out, float* grad,
                              index_t n, int reduction) {
  if (!weight && !pos_weight && reduction != kNone) {
    const VmathKernels& k = vmath_kernels();
    const float a = static_cast<float>(reduced_upstream(grad_out, n, reduction));
    parallel_ranges(n, kTranscendentalGrain, [&](index_t lo, index_t hi) {
      k.bce_grad(logits + lo, target + lo, grad + lo, hi - lo, a);
    });
    return;
  }
  const VmathKernels& k = vmath_kernels();
  const float* per = reduction == kNone ? grad_out : nullptr;
  const float a = static_cast<float>(reduction == kNone ? 1.0 : reduced_upstream(grad_out, n, reduction));
  parallel_ranges(n, kTranscendentalGrain, [&](index_t lo, index_t hi) {
    k.bce_w_grad(logits + lo, target + lo, weight ? weight + lo : nullptr,
                 pos_weight ? pos_weight + lo : nullptr, per ? per + lo : nullptr, grad + lo, hi - lo, a);
  });
}

}  // namespace fastlayers::cpu
