// Softmax and log-softmax on the CPU along one axis of a contiguous array, viewed as
// (outer, dim, inner): the axis has length dim and stride inner, so any axis works without a
// transpose copy. Same names as the CUDA twin (which adds a trailing cudaStream_t).
// Both are stable: the row maximum is subtracted before exp. The backward passes take the
// forward output y.
#pragma once
#include "common/types.h"

namespace fastlayers::cpu {

void softmax_forward(const float* x, float* y, index_t outer, index_t dim, index_t inner);
void softmax_backward(const float* grad_out, const float* y, float* grad_in, index_t outer,
                      index_t dim, index_t inner);
void log_softmax_forward(const float* x, float* y, index_t outer, index_t dim, index_t inner);
void log_softmax_backward(const float* grad_out, const float* y, float* grad_in, index_t outer,
                          index_t dim, index_t inner);

}  // namespace fastlayers::cpu
