// 2-D convolution on the CPU (NCHW, weights (K, C/groups, R, S)), forward and backward. Each call
// picks Winograd (conv_winograd.h), a direct AVX-512 kernel (conv_smallc.h) or im2col / implicit
// GEMM on our sgemm by shape (conv.cpp's header says which wins where). Same names as the CUDA
// twin (csrc/cuda/conv.h, plus a trailing cudaStream_t).
//
// Every function takes the geometry in a Conv2dShape (already checked by the caller: sizes > 0,
// P/Q >= 1, C and K divisible by groups) and a caller-owned workspace of `workspace_floats`
// floats; the kernels never allocate. conv2d_workspace_floats() says how much a pass needs for a
// thread count; with less, a kernel runs with fewer threads (down to one), and with less than the
// one-thread size it does nothing and returns false.
#pragma once
#include "common/conv_shape.h"
#include "common/types.h"

namespace fastlayers::cpu {

using fastlayers::Conv2dShape;  // csrc/common/conv_shape.h
using fastlayers::ConvPass;

// Floats of workspace that `pass` needs with `threads` OpenMP threads.
index_t conv2d_workspace_floats(const Conv2dShape& s, ConvPass pass, int threads);

// y (N, K, P, Q) = conv(x, w) + b; b may be null.
bool conv2d_forward(const Conv2dShape& s, const float* x, const float* w, const float* b, float* y,
                    float* workspace, index_t workspace_floats);

// grad_x (N, C, H, W) from grad_out (N, K, P, Q) and w.
bool conv2d_backward_data(const Conv2dShape& s, const float* grad_out, const float* w, float* grad_x,
                          float* workspace, index_t workspace_floats);

// grad_w (K, C/groups, R, S) from grad_out and x; grad_b (K,) = grad_out summed over N, P, Q
// (skipped when null). Deterministic for a given thread count: per-thread partial sums are added
// in thread order.
bool conv2d_backward_weight(const Conv2dShape& s, const float* grad_out, const float* x, float* grad_w,
                            float* grad_b, float* workspace, index_t workspace_floats);

}  // namespace fastlayers::cpu
