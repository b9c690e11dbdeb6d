// Winograd convolution F(4x4, 3x3) for 3x3, stride-1, dilation-1 layers on the CPU: forward,
// backward-data as the forward convolution of grad_out with the weights flipped 180 degrees and
// transposed (K <-> C), padding 2 - p, and backward-weight as the forward's adjoint with respect to
// the weights (grad_w = G^T [sum over tiles (B^T d B) .* (A dy A^T)] G). 36 GEMMs replace the 9-tap
// direct GEMM: 4x fewer multiplications. conv.cpp calls it first where winograd_applies() says so.
// 1 thread, PyTorch time / ours, interleaved (benchmarks/conv_tune.py --layers cd --threads 1):
// layer c (32x64->64 56x56) fwd ~2.2, bwd-data ~2.3, bwd-weight 1.31-1.84 (GEMM path 1.20-1.23);
// layer d (16x128->128 28x28) fwd 1.53-1.84, bwd-data 1.54-1.85, bwd-weight 1.46-1.57 (GEMM 0.85).
// Backward-weight's time on d: about half in the input and grad_out transforms (scalar gathers
// into 16-lane arrays, baseline-ISA code), half in the GEMMs (~90 GF/s): the transforms are the
// next thing to speed up.
//
// Same contract as conv.h: a caller-owned workspace of winograd_workspace_floats() floats, no
// allocation; with less workspace than one thread needs the functions do nothing and return false
// (conv.cpp then takes its GEMM path).
//
// Numerics: every output of a 4x4 tile is a combination of the whole 6x6 input patch, so a NaN or
// inf in the input would make the whole output tile(s) whose patch contains it NaN (a superset of
// the outputs that depend on it, as in oneDNN's Winograd); conv.cpp therefore sends inputs or
// weights (backward-weight: x or grad_out) holding a non-finite value to its GEMM path instead
// (winograd_safe). Rounding error is a few times that of the
// direct sum (the transforms add terms up to 8x the output size); the tests hold it to the same
// tolerances as the GEMM path.
#pragma once
#include "common/conv_shape.h"
#include "common/types.h"

namespace fastlayers::cpu {

// 3x3, stride 1, dilation 1 (backward-data also needs padding <= 2), and - unless
// FASTLAYERS_CONV_WINOGRAD says otherwise - sizes where it measured faster than the GEMM path.
// FASTLAYERS_CONV_WINOGRAD (environment, read on every call): "0" never, "1" wherever the geometry
// allows (the tests use this to reach it with small shapes), unset or anything else: by size.
// Backward-weight: by default where C/groups and K/groups >= 48 and there are >= 128 4x4 tiles.
bool winograd_applies(const Conv2dShape& s, ConvPass pass);

// Floats of workspace for `pass` with `threads` threads (backward-weight: the same for any count).
index_t winograd_workspace_floats(const Conv2dShape& s, ConvPass pass, int threads);

bool winograd_forward(const Conv2dShape& s, const float* x, const float* w, const float* b, float* y,
                      float* workspace, index_t workspace_floats);

bool winograd_backward_data(const Conv2dShape& s, const float* grad_out, const float* w, float* grad_x,
                            float* workspace, index_t workspace_floats);

// grad_w (K, C/groups, 3, 3) only; the caller computes grad_b. The threads share one accumulator
// (each Winograd position's GEMM is one fixed call on one thread), so grad_w has the same bits for
// any thread count.
bool winograd_backward_weight(const Conv2dShape& s, const float* grad_out, const float* x, float* grad_w,
                              float* workspace, index_t workspace_floats);

}  // namespace fastlayers::cpu
