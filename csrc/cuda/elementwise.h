// Elementwise binary ops on the GPU. Same names and arguments as csrc/cpu/elementwise.h plus the
// stream (the broadcast geometry arrives as host arrays of sizes and strides). Free of CUDA syntax
// (included by the bindings).
#pragma once
#include <cuda_runtime_api.h>

#include "common/types.h"

namespace fastlayers::cuda {

constexpr int kMaxBroadcastDims = 8;

// y = a + b (residual connections); y may alias a or b.
void add_forward(const float* a, const float* b, float* y, index_t n, cudaStream_t stream);

// y = a + alpha * b (op 0) or a * b (op 1) over the collapsed broadcast geometry.
void binary_broadcast_forward(int op, const float* a, const float* b, float* y, int ndim,
                              const index_t* shape, const index_t* a_strides,
                              const index_t* b_strides, float alpha, cudaStream_t stream);

// out = alpha * (g summed over the dimensions where out_strides is 0); g not empty.
void sum_broadcast(const float* g, float* out, int ndim, const index_t* shape,
                   const index_t* out_strides, float alpha, cudaStream_t stream);

}  // namespace fastlayers::cuda
