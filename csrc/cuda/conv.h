// 2-D convolution on the GPU (NCHW, weights (K, C/groups, R, S)), forward and backward, on the given
// stream. Same names and arguments as csrc/cpu/conv.h plus a trailing cudaStream_t. Kept free of CUDA
// syntax so the bindings (host compiler, pybind11) can include it.
//
// All three passes are implicit GEMMs (csrc/cuda/conv.cu): the input patch / the gradient gather is
// formed on the fly in shared memory, no im2col buffer. The workspace is used only by the backward
// weight pass, which splits its long reduction (over N*P*Q) across blocks into per-split partial
// sums and adds them in split order in a second kernel: deterministic, no atomics.
#pragma once
#include <cuda_runtime_api.h>

#include "common/conv_shape.h"
#include "common/types.h"

namespace fastlayers::cuda {

using fastlayers::Conv2dShape;  // csrc/common/conv_shape.h
using fastlayers::ConvPass;

// Floats of workspace `pass` needs (`threads` is ignored: it exists to mirror the CPU signature).
// Depends on the shape only, so a given shape always reduces in the same order.
index_t conv2d_workspace_floats(const Conv2dShape& s, ConvPass pass, int threads);

// y (N, K, P, Q) = conv(x, w) + b; b may be null. Returns true (no workspace needed).
bool conv2d_forward(const Conv2dShape& s, const float* x, const float* w, const float* b, float* y,
                    float* workspace, index_t workspace_floats, cudaStream_t stream);

// grad_x (N, C, H, W) from grad_out (N, K, P, Q) and w. Returns true (no workspace needed).
bool conv2d_backward_data(const Conv2dShape& s, const float* grad_out, const float* w, float* grad_x,
                          float* workspace, index_t workspace_floats, cudaStream_t stream);

// grad_w (K, C/groups, R, S) and grad_b (K,) (skipped when null). With less workspace than asked
// for, the reduction is split fewer ways (down to one, which needs none): always returns true.
bool conv2d_backward_weight(const Conv2dShape& s, const float* grad_out, const float* x, float* grad_w,
                            float* grad_b, float* workspace, index_t workspace_floats, cudaStream_t stream);

}  // namespace fastlayers::cuda
