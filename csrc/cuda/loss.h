// Losses on the GPU. Same names and arguments as csrc/cpu/loss.h plus the stream: each forward
// writes float(scale * sum of terms) into loss[0] (a device pointer; no host sync), each
// backward d loss / d (first input) already multiplied by scale. Sums in double with a
// deterministic two-pass reduction (see loss_kernels.cuh). Free of CUDA syntax.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "common/types.h"

namespace fastlayers::cuda {

void mse_loss_forward(const float* pred, const float* target, float* loss, index_t n, double scale,
                      cudaStream_t stream);
void mse_loss_backward(const float* pred, const float* target, float* grad, index_t n, double scale,
                       cudaStream_t stream);

void bce_with_logits_forward(const float* logits, const float* target, float* loss, index_t n,
                             double scale, cudaStream_t stream);
void bce_with_logits_backward(const float* logits, const float* target, float* grad, index_t n,
                              double scale, cudaStream_t stream);

void logistic_loss_forward(const float* scores, const float* labels, float* loss, index_t n,
                           double scale, cudaStream_t stream);
void logistic_loss_backward(const float* scores, const float* labels, float* grad, index_t n,
                            double scale, cudaStream_t stream);

void hinge_loss_forward(const float* scores, const float* labels, float* loss, index_t n,
                        double margin, double scale, cudaStream_t stream);
void hinge_loss_backward(const float* scores, const float* labels, float* grad, index_t n,
                         double margin, double scale, cudaStream_t stream);

void softmax_cross_entropy_forward(const float* logits, const std::int64_t* labels, float* loss,
                                   index_t n, index_t c, double scale, cudaStream_t stream);
void softmax_cross_entropy_backward(const float* logits, const std::int64_t* labels, float* grad,
                                    index_t n, index_t c, double scale, cudaStream_t stream);
void softmax_cross_entropy_prob_forward(const float* logits, const float* target, float* loss,
                                        index_t n, index_t c, double scale, cudaStream_t stream);
void softmax_cross_entropy_prob_backward(const float* logits, const float* target, float* grad,
                                         index_t n, index_t c, double scale, cudaStream_t stream);

}  // namespace fastlayers::cuda
