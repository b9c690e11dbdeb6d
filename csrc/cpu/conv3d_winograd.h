// Winograd F(m x m, 3x3) over height and width, a direct sum over depth taps, for 3-D convolutions
// with 3x3 in-plane kernels, unit strides and unit in-plane dilation (the 3x3x3 layers of C3D,
// 3-D U-Nets, VoxNet; any depth kernel T and depth dilation). Per input depth slice the 2-D
// transforms are taken once (V = B^T d B), and each output slice sums T of them against the
// depth taps' transformed filters (U = G g G^T): for every Winograd position xi one GEMM of
// reduction T x C/groups, run as T products with the filters packed once per call
// (sgemm_pack_a / sgemm_prepacked_a) and B read in place from the transformed slices, shifted by
// one slice per tap. Backward-data is the forward of grad_out with the filters flipped in all
// three dimensions and transposed (K <-> C), backward-weight the forward's adjoint in U
// (conv_winograd.h has the 2-D derivation). conv3d.cpp calls it where winograd3d_applies() says.
//
// Same contract as conv3d.h: caller-owned workspace of winograd3d_workspace_floats() floats; with
// less than one thread needs, the functions do nothing and return false. Same numerics caveat as
// conv_winograd.h: a NaN or inf spreads over the whole tile, so conv3d.cpp sends non-finite inputs
// to the GEMM path.
#pragma once
#include "common/conv3d_shape.h"
#include "common/conv_shape.h"
#include "common/types.h"

namespace fastlayers::cpu {

// R = S = 3, all strides 1, unit height/width dilation (backward-data: padding <= 2 in-plane and
// <= dil_d * (T-1) in depth), and - unless FASTLAYERS_CONV_WINOGRAD says otherwise ("0" never, "1"
// wherever the geometry allows, as for conv2d) - shapes where it measured faster than the GEMM path.
bool winograd3d_applies(const Conv3dShape& s, ConvPass pass);

index_t winograd3d_workspace_floats(const Conv3dShape& s, ConvPass pass, int threads);

bool winograd3d_forward(const Conv3dShape& s, const float* x, const float* w, const float* b, float* y,
                        float* workspace, index_t workspace_floats);

bool winograd3d_backward_data(const Conv3dShape& s, const float* grad_out, const float* w, float* grad_x,
                              float* workspace, index_t workspace_floats);

// grad_w only (the caller computes grad_b). Per-thread partial sums added in thread order:
// deterministic for a given thread count.
bool winograd3d_backward_weight(const Conv3dShape& s, const float* grad_out, const float* x, float* grad_w,
                                float* workspace, index_t workspace_floats);

}  // namespace fastlayers::cpu
