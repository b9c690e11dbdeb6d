// Losses on the CPU (torch.nn.functional's definitions; formulas in common/loss_terms.h).
//
// Reductions (loss::Reduction): kNone writes the per-element (per-sample) loss into out[0..n);
// kSum / kMean write one float into out[0], the sum accumulated in double (kMean divides by n,
// or for class-index cross-entropy / nll_loss by the summed weight of the non-ignored targets;
// 0 / 0 gives NaN). Each backward writes d loss / d input, times grad_out: per element for kNone
// (grad_out shaped like the loss), its one value for kSum / kMean; grad_out == nullptr means 1.
//
// Buffers are contiguous; the op layer has checked shapes, broadcasting, label ranges and label
// values. `workspace` and `status` exist for the CUDA twins (csrc/cuda/loss.h: reduction
// partials and the device label-error word) and are unused here; a bad label that got here anyway
// never reads outside the logits: its loss and gradient row are NaN.
//
// The reductions are deterministic: the split into chunks depends only on the sizes, never on the
// thread count, and the chunk sums are added in order, so the result is bitwise the same for any
// OMP_NUM_THREADS.
#pragma once
#include <cstdint>

#include "common/types.h"

namespace fastlayers::cpu {

// ---- elementwise losses: a = input (n), b = target (n); param = beta / delta / margin or 0 ----
#define FL_ELEMENTWISE_LOSS(name)                                                                  \
  void name##_forward(const float* a, const float* b, float* out, index_t n, double param,        \
                      int reduction, double* workspace, std::int64_t* status);                     \
  void name##_backward(const float* a, const float* b, const float* grad_out, float* grad,        \
                       index_t n, double param, int reduction, std::int64_t* status);
FL_ELEMENTWISE_LOSS(mse_loss)              // (x - y)^2
FL_ELEMENTWISE_LOSS(l1_loss)               // |x - y|
FL_ELEMENTWISE_LOSS(smooth_l1_loss)        // param = beta > 0
FL_ELEMENTWISE_LOSS(huber_loss)            // param = delta > 0
FL_ELEMENTWISE_LOSS(soft_margin_loss)      // log(1 + exp(-y x))
FL_ELEMENTWISE_LOSS(hinge_embedding_loss)  // param = margin
FL_ELEMENTWISE_LOSS(logistic_loss)         // soft margin on +-1 labels
FL_ELEMENTWISE_LOSS(hinge_loss)            // max(0, margin - y s) on +-1 labels, param = margin
#undef FL_ELEMENTWISE_LOSS

// Binary cross-entropy on logits; weight and pos_weight (n each, already broadcast) may be null.
void bce_with_logits_forward(const float* logits, const float* target, const float* weight,
                             const float* pos_weight, float* out, index_t n, int reduction,
                             double* workspace);
void bce_with_logits_backward(const float* logits, const float* target, const float* weight,
                              const float* pos_weight, const float* grad_out, float* grad,
                              index_t n, int reduction);

// ---- cross-entropy over classes: logits (n, c, d) (d = d1*...*dK, 1 for (N, C)), row-major ----
// Class indices labels (n, d); weight (c) or null; a label equal to ignore_index contributes
// nothing (and its gradient row is 0). label_smoothing eps in [0, 1]: the target is
// (1 - eps) onehot + eps / c, with PyTorch's weighting. kNone output is (n, d).
void softmax_cross_entropy_forward(const float* logits, const std::int64_t* labels,
                                   const float* weight, float* out, index_t n, index_t c, index_t d,
                                   std::int64_t ignore_index, double label_smoothing, int reduction,
                                   double* workspace, std::int64_t* status);
void softmax_cross_entropy_backward(const float* logits, const std::int64_t* labels,
                                    const float* weight, const float* grad_out, float* grad,
                                    index_t n, index_t c, index_t d, std::int64_t ignore_index,
                                    double label_smoothing, int reduction, double* workspace,
                                    std::int64_t* status);
// Probability targets (n, c, d): per row sum_j w_j t'_j (logsumexp(z) - z_j), t' the smoothed
// target; "mean" divides by n * d. Gradient softmax(z) * sum_j w_j t'_j - w t'.
void softmax_cross_entropy_prob_forward(const float* logits, const float* target,
                                        const float* weight, float* out, index_t n, index_t c,
                                        index_t d, double label_smoothing, int reduction,
                                        double* workspace);
void softmax_cross_entropy_prob_backward(const float* logits, const float* target,
                                         const float* weight, const float* grad_out, float* grad,
                                         index_t n, index_t c, index_t d, double label_smoothing,
                                         int reduction);

// nll_loss on log-probabilities input (n, c, d): -weight[y] * input[y] per (n, d).
void nll_loss_forward(const float* input, const std::int64_t* labels, const float* weight,
                      float* out, index_t n, index_t c, index_t d, std::int64_t ignore_index,
                      int reduction, double* workspace, std::int64_t* status);
void nll_loss_backward(const std::int64_t* labels, const float* weight, const float* grad_out,
                       float* grad, index_t n, index_t c, index_t d, std::int64_t ignore_index,
                       int reduction, double* workspace, std::int64_t* status);

}  // namespace fastlayers::cpu
