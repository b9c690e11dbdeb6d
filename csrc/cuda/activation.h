// Activations on the GPU: elementwise over n contiguous floats, on the given stream.
// Same names as csrc/cpu/activation.h. Kept free of CUDA syntax so the bindings (host compiler,
// pybind11) can include it.
#pragma once
#include <cuda_runtime_api.h>

#include "common/types.h"

namespace fastlayers::cuda {

void relu_forward(const float* x, float* y, index_t n, cudaStream_t stream);
void relu_backward(const float* grad_out, const float* x, float* grad_in, index_t n,
                   cudaStream_t stream);

}  // namespace fastlayers::cuda
