// Softmax and log-softmax on the GPU along one axis of a contiguous array viewed as
// (outer, dim, inner). Same names and arguments as csrc/cpu/softmax.h plus the stream.
// Free of CUDA syntax (included by the bindings).
#pragma once
#include <cuda_runtime_api.h>

#include "common/types.h"

namespace fastlayers::cuda {

void softmax_forward(const float* x, float* y, index_t outer, index_t dim, index_t inner,
                     cudaStream_t stream);
void softmax_backward(const float* grad_out, const float* y, float* grad_in, index_t outer,
                      index_t dim, index_t inner, cudaStream_t stream);
void log_softmax_forward(const float* x, float* y, index_t outer, index_t dim, index_t inner,
                         cudaStream_t stream);
void log_softmax_backward(const float* grad_out, const float* y, float* grad_in, index_t outer,
                          index_t dim, index_t inner, cudaStream_t stream);

}  // namespace fastlayers::cuda
