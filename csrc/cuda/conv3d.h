// 3-D convolution on the GPU (NCDHW, weights (K, C/groups, T, R, S)), forward and backward, on the
// given stream. Same names and arguments as csrc/cpu/conv3d.h plus a trailing cudaStream_t. All three
// passes are conv2d's implicit-GEMM kernel (conv_kernels.cuh) with 3-D operand ops
// (conv3d_kernels.cuh): no im2col buffer; backward-weight splits its reduction over blocks into
// per-split partial sums added in split order (deterministic, no atomics) in the workspace.
#pragma once
#include <cuda_runtime_api.h>

#include "common/conv3d_shape.h"
#include "common/conv_shape.h"
#include "common/types.h"

namespace fastlayers::cuda {

using fastlayers::Conv3dShape;
using fastlayers::ConvPass;

// Floats of workspace `pass` needs (`threads` is ignored: it mirrors the CPU signature).
index_t conv3d_workspace_floats(const Conv3dShape& s, ConvPass pass, int threads);

bool conv3d_forward(const Conv3dShape& s, const float* x, const float* w, const float* b, float* y,
                    float* workspace, index_t workspace_floats, cudaStream_t stream);
bool conv3d_backward_data(const Conv3dShape& s, const float* grad_out, const float* w, float* grad_x,
                          float* workspace, index_t workspace_floats, cudaStream_t stream);
// With less workspace than asked for, the reduction is split fewer ways (down to one): returns true.
bool conv3d_backward_weight(const Conv3dShape& s, const float* grad_out, const float* x, float* grad_w,
                            float* grad_b, float* workspace, index_t workspace_floats, cudaStream_t stream);

}  // namespace fastlayers::cuda
