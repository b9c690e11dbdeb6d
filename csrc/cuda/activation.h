// Activations on the GPU: elementwise over n contiguous floats, on the given stream.
// Same names and arguments as csrc/cpu/activation.h plus the stream; softmax is in softmax.h.
// Kept free of CUDA syntax so the bindings (host compiler, pybind11) can include it.
#pragma once
#include <cuda_runtime_api.h>

#include "common/types.h"

namespace fastlayers::cuda {

void relu_forward(const float* x, float* y, index_t n, cudaStream_t stream);
void relu_backward(const float* grad_out, const float* x, float* grad_in, index_t n,
                   cudaStream_t stream);

void leaky_relu_forward(const float* x, float* y, index_t n, float negative_slope,
                        cudaStream_t stream);
void leaky_relu_backward(const float* grad_out, const float* x, float* grad_in, index_t n,
                         float negative_slope, cudaStream_t stream);

// The backward passes of sigmoid and tanh take the forward output y, not x.
void sigmoid_forward(const float* x, float* y, index_t n, cudaStream_t stream);
void sigmoid_backward(const float* grad_out, const float* y, float* grad_in, index_t n,
                      cudaStream_t stream);
void tanh_forward(const float* x, float* y, index_t n, cudaStream_t stream);
void tanh_backward(const float* grad_out, const float* y, float* grad_in, index_t n,
                   cudaStream_t stream);

// Forward only: sign gives -1/0/+1, heaviside 0/1 with value_at_zero at 0; NaN stays NaN.
void sign_forward(const float* x, float* y, index_t n, cudaStream_t stream);
void heaviside_forward(const float* x, float* y, index_t n, float value_at_zero,
                       cudaStream_t stream);

}  // namespace fastlayers::cuda
