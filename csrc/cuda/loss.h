// Losses on the GPU: the same names, arguments and semantics as csrc/cpu/loss.h, plus the stream.
// All pointers are device pointers; nothing here synchronises with the host.
//
// `workspace`: loss::kWorkspaceDoubles doubles owned by the caller (ops/loss.py takes them from
// CuPy's pool per call), for the partial sums of the deterministic two-pass reductions and the
// backward's 1 / weight; no allocation happens here. Calls on different streams need different
// workspaces (CuPy's pool hands out stream-ordered blocks).
// `status`: loss::kStatusWords int64 in device memory (ops/loss.py keeps one per device): a bad
// label (a class index outside [0, c) that is not ignore_index, a logistic/hinge label that is not
// +-1) makes that sample's loss and gradient NaN and, if the word is still 0, records
// [code, value, c] (the float's bits for a +-1 label). The host reads it when it chooses to
// (fastlayers.cuda.check_errors(), once per epoch in fit), never per call. May be null.
// Free of CUDA syntax (included by the bindings).
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "common/types.h"

namespace fastlayers::cuda {

// ---- elementwise losses: a = input (n), b = target (n); param = beta / delta / margin or 0 ----
#define FL_ELEMENTWISE_LOSS(name)                                                                 \
  void name##_forward(const float* a, const float* b, float* out, index_t n, double param,       \
                      int reduction, double* workspace, std::int64_t* status, cudaStream_t stream); \
  void name##_backward(const float* a, const float* b, const float* grad_out, float* grad,       \
                       index_t n, double param, int reduction, std::int64_t* status,             \
                       cudaStream_t stream);
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
                             double* workspace, cudaStream_t stream);
void bce_with_logits_backward(const float* logits, const float* target, const float* weight,
                              const float* pos_weight, const float* grad_out, float* grad,
                              index_t n, int reduction, cudaStream_t stream);

// ---- cross-entropy over classes: logits (n, c, d) (d = d1*...*dK, 1 for (N, C)), row-major ----
// Class indices labels (n, d); weight (c) or null; a label equal to ignore_index contributes
// nothing (and its gradient row is 0). label_smoothing eps in [0, 1]: the target is
// (1 - eps) onehot + eps / c, with PyTorch's weighting. kNone output is (n, d).
void softmax_cross_entropy_forward(const float* logits, const std::int64_t* labels,
                                   const float* weight, float* out, index_t n, index_t c, index_t d,
                                   std::int64_t ignore_index, double label_smoothing, int reduction,
                                   double* workspace, std::int64_t* status, cudaStream_t stream);
void softmax_cross_entropy_backward(const float* logits, const std::int64_t* labels,
                                    const float* weight, const float* grad_out, float* grad,
                                    index_t n, index_t c, index_t d, std::int64_t ignore_index,
                                    double label_smoothing, int reduction, double* workspace,
                                    std::int64_t* status, cudaStream_t stream);
// Probability targets (n, c, d): per row sum_j w_j t'_j (logsumexp(z) - z_j), t' the smoothed
// target; "mean" divides by n * d. Gradient softmax(z) * sum_j w_j t'_j - w t'.
void softmax_cross_entropy_prob_forward(const float* logits, const float* target,
                                        const float* weight, float* out, index_t n, index_t c,
                                        index_t d, double label_smoothing, int reduction,
                                        double* workspace, cudaStream_t stream);
void softmax_cross_entropy_prob_backward(const float* logits, const float* target,
                                         const float* weight, const float* grad_out, float* grad,
                                         index_t n, index_t c, index_t d, double label_smoothing,
                                         int reduction, cudaStream_t stream);

// nll_loss on log-probabilities input (n, c, d): -weight[y] * input[y] per (n, d).
void nll_loss_forward(const float* input, const std::int64_t* labels, const float* weight,
                      float* out, index_t n, index_t c, index_t d, std::int64_t ignore_index,
                      int reduction, double* workspace, std::int64_t* status, cudaStream_t stream);
void nll_loss_backward(const std::int64_t* labels, const float* weight, const float* grad_out,
                       float* grad, index_t n, index_t c, index_t d, std::int64_t ignore_index,
                       int reduction, double* workspace, std::int64_t* status, cudaStream_t stream);

}  // namespace fastlayers::cuda
