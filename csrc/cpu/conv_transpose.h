// 2-D transposed convolution on the CPU, built on the conv2d kernels (conv.h): its forward is
// conv2d's backward-data, its backward-data is conv2d's forward and its weight gradient is conv2d's
// backward-weight with x and grad_out swapped, so it runs on the same Winograd / direct / GEMM
// paths at the same speed. Same names as the CUDA twin (csrc/cuda/conv_transpose.h).
//
// Every function takes the Conv2dShape of that conv2d: N; C = the transposed convolution's output
// channels, H x W its output size; K = its input channels, P x Q its input size; R, S, stride,
// padding, dilation, groups as given. w is (K, C/groups, R, S) = (C_in, C_out/groups, R, S), exactly
// PyTorch's conv_transpose2d weight. The caller (python/fastlayers/ops/conv_transpose.py) has made P
// and Q the sizes conv2d would give for H x W (zero rows appended to the input when
// output_padding >= stride).
#pragma once
#include "common/conv_shape.h"
#include "common/types.h"

namespace fastlayers::cpu {

// Floats of workspace for the transposed convolution's `pass` (forward: conv2d backward-data's,
// backward_data: conv2d forward's, backward_weight: conv2d backward-weight's).
index_t conv_transpose2d_workspace_floats(const Conv2dShape& s, ConvPass pass, int threads);

// y (N, C, H, W) from x (N, K, P, Q), plus b (C,) when not null.
bool conv_transpose2d_forward(const Conv2dShape& s, const float* x, const float* w, const float* b, float* y,
                              float* workspace, index_t workspace_floats);

// grad_x (N, K, P, Q) from grad_out (N, C, H, W).
bool conv_transpose2d_backward_data(const Conv2dShape& s, const float* grad_out, const float* w, float* grad_x,
                                    float* workspace, index_t workspace_floats);

// grad_w (K, C/groups, R, S) and grad_b (C,) = grad_out summed over N, H, W (skipped when null).
bool conv_transpose2d_backward_weight(const Conv2dShape& s, const float* grad_out, const float* x, float* grad_w,
                                      float* grad_b, float* workspace, index_t workspace_floats);

}  // namespace fastlayers::cpu
