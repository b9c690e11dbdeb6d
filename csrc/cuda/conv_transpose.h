// 2-D transposed convolution on the GPU, on the CUDA conv2d kernels: the twin of
// csrc/cpu/conv_transpose.h (same Conv2dShape convention, same names, plus a trailing cudaStream_t).
#pragma once
#include <cuda_runtime_api.h>

#include "common/conv_shape.h"
#include "common/types.h"

namespace fastlayers::cuda {

using fastlayers::Conv2dShape;
using fastlayers::ConvPass;

index_t conv_transpose2d_workspace_floats(const Conv2dShape& s, ConvPass pass, int threads);
bool conv_transpose2d_forward(const Conv2dShape& s, const float* x, const float* w, const float* b, float* y,
                              float* workspace, index_t workspace_floats, cudaStream_t stream);
bool conv_transpose2d_backward_data(const Conv2dShape& s, const float* grad_out, const float* w, float* grad_x,
                                    float* workspace, index_t workspace_floats, cudaStream_t stream);
bool conv_transpose2d_backward_weight(const Conv2dShape& s, const float* grad_out, const float* x, float* grad_w,
                                      float* grad_b, float* workspace, index_t workspace_floats, cudaStream_t stream);

}  // namespace fastlayers::cuda
