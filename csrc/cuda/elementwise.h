// Elementwise binary ops on the GPU over n contiguous floats. Same names as csrc/cpu/elementwise.h
// plus the stream. Free of CUDA syntax (included by the bindings).
#pragma once
#include <cuda_runtime_api.h>

#include "common/types.h"

namespace fastlayers::cuda {

// y = a + b (residual connections); y may alias a or b.
void add_forward(const float* a, const float* b, float* y, index_t n, cudaStream_t stream);

}  // namespace fastlayers::cuda
