// 3-D convolution on the CPU (NCDHW, weights (K, C/groups, T, R, S)), forward and backward. Each
// call picks Winograd over height and width (conv3d_winograd.h: 3x3 in-plane, unit strides) or
// im2col / implicit GEMM on our sgemm (conv3d.cpp), like conv2d (conv.h). Same names as the CUDA
// twin (csrc/cuda/conv3d.h, plus a trailing cudaStream_t).
//
// Every function takes the geometry in a Conv3dShape (checked by the caller, see
// csrc/common/conv3d_shape.h) and a caller-owned workspace of `workspace_floats` floats; the
// kernels never allocate (sgemm keeps its own thread-local packing buffers). conv3d_workspace_floats()
// says how much a pass needs for a thread count; with less, a pass runs with fewer threads (down to
// one), and with less than the one-thread size it does nothing and returns false.
#pragma once
#include "common/conv3d_shape.h"
#include "common/conv_shape.h"
#include "common/types.h"

namespace fastlayers::cpu {

using fastlayers::Conv3dShape;  // csrc/common/conv3d_shape.h
using fastlayers::ConvPass;

index_t conv3d_workspace_floats(const Conv3dShape& s, ConvPass pass, int threads);

// y (N, K, OD, P, Q) = conv(x, w) + b; b may be null.
bool conv3d_forward(const Conv3dShape& s, const float* x, const float* w, const float* b, float* y,
                    float* workspace, index_t workspace_floats);

// grad_x (N, C, D, H, W) from grad_out (N, K, OD, P, Q) and w.
bool conv3d_backward_data(const Conv3dShape& s, const float* grad_out, const float* w, float* grad_x,
                          float* workspace, index_t workspace_floats);

// grad_w (K, C/groups, T, R, S) from grad_out and x; grad_b (K,) = grad_out summed over N, OD, P, Q
// (skipped when null). Deterministic for a given thread count (partial sums added in thread order).
bool conv3d_backward_weight(const Conv3dShape& s, const float* grad_out, const float* x, float* grad_w,
                            float* grad_b, float* workspace, index_t workspace_floats);

}  // namespace fastlayers::cpu
