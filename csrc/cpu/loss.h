// Losses on the CPU. Each forward reduces n per-element (or per-row) terms to one number,
// accumulated in double, and writes `scale * sum` as float into loss[0] (scale = 1/count for
// "mean", 1 for "sum"). Each backward writes d loss / d (first input), already multiplied by
// scale. Buffers are contiguous; the op layer has checked shapes, label ranges and label values.
// Same names as a CUDA twin would use (plus a trailing cudaStream_t).
//
// The reductions are deterministic: the split into chunks depends only on n, never on the thread
// count, and the chunk sums are added in order, so the result is bitwise the same for any
// OMP_NUM_THREADS.
#pragma once
#include <cstdint>

#include "common/types.h"

namespace fastlayers::cpu {

// sum (pred - target)^2
void mse_loss_forward(const float* pred, const float* target, float* loss, index_t n, double scale);
void mse_loss_backward(const float* pred, const float* target, float* grad, index_t n, double scale);

// sum max(z, 0) - z*t + log1p(exp(-|z|)); gradient sigmoid(z) - t
void bce_with_logits_forward(const float* logits, const float* target, float* loss, index_t n,
                             double scale);
void bce_with_logits_backward(const float* logits, const float* target, float* grad, index_t n,
                              double scale);

// sum softplus(-y*s), y in {-1, +1}; gradient -y * sigmoid(-y*s)
void logistic_loss_forward(const float* scores, const float* labels, float* loss, index_t n,
                           double scale);
void logistic_loss_backward(const float* scores, const float* labels, float* grad, index_t n,
                            double scale);

// sum max(0, margin - y*s); subgradient -y where margin - y*s > 0, else 0 (0 at the kink)
void hinge_loss_forward(const float* scores, const float* labels, float* loss, index_t n,
                        double margin, double scale);
void hinge_loss_backward(const float* scores, const float* labels, float* grad, index_t n,
                         double margin, double scale);

// logits (n, c) row-major. Per row: logsumexp(z) - z[label]. Gradient softmax(z) - onehot.
void softmax_cross_entropy_forward(const float* logits, const std::int64_t* labels, float* loss,
                                   index_t n, index_t c, double scale);
void softmax_cross_entropy_backward(const float* logits, const std::int64_t* labels, float* grad,
                                    index_t n, index_t c, double scale);
// Probability targets (n, c): per row sum_j t_j * (logsumexp(z) - z_j).
// Gradient softmax(z) * sum_j t_j - t (= softmax(z) - t when the row of t sums to 1).
void softmax_cross_entropy_prob_forward(const float* logits, const float* target, float* loss,
                                        index_t n, index_t c, double scale);
void softmax_cross_entropy_prob_backward(const float* logits, const float* target, float* grad,
                                         index_t n, index_t c, double scale);

}  // namespace fastlayers::cpu
