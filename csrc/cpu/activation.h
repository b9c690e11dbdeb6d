// Activations on the CPU: elementwise over n contiguous floats. Same names as csrc/cuda/activation.h.
// Softmax / log_softmax live in cpu/softmax.h.
#pragma once
#include "common/types.h"

namespace fastlayers::cpu {

void relu_forward(const float* x, float* y, index_t n);
void relu_backward(const float* grad_out, const float* x, float* grad_in, index_t n);

void leaky_relu_forward(const float* x, float* y, index_t n, float negative_slope);
void leaky_relu_backward(const float* grad_out, const float* x, float* grad_in, index_t n,
                         float negative_slope);

// The backward passes of sigmoid and tanh take the forward output y, not x.
void sigmoid_forward(const float* x, float* y, index_t n);
void sigmoid_backward(const float* grad_out, const float* y, float* grad_in, index_t n);
void tanh_forward(const float* x, float* y, index_t n);
void tanh_backward(const float* grad_out, const float* y, float* grad_in, index_t n);

// Forward only (the perceptron's threshold): sign gives -1/0/+1, heaviside 0/1 with
// value_at_zero at 0. NaN stays NaN in both.
void sign_forward(const float* x, float* y, index_t n);
void heaviside_forward(const float* x, float* y, index_t n, float value_at_zero);

}  // namespace fastlayers::cpu
