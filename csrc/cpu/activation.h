// Activations on the CPU: elementwise over n contiguous floats. Same names as csrc/cuda/activation.h.
#pragma once
#include "common/types.h"

namespace fastlayers::cpu {

void relu_forward(const float* x, float* y, index_t n);
void relu_backward(const float* grad_out, const float* x, float* grad_in, index_t n);

}  // namespace fastlayers::cpu
