// 3-D convolution as 2-D convolutions of output slices, on the conv2d kernels (conv.h). Output slice
// od of image n is the 2-D convolution of an "unfolded" image whose C*T channels are the input
// slices od*sd - pd + t*dd of every channel (zero planes in the depth padding), with w read as
// (K, C/groups * T, R, S) - its own memory layout - so every conv2d path (the direct AVX-512 kernels
// for few channels in particular, conv_smallc.h) serves 3-D layers. Per chunk of slices the unfold
// copies C*T planes in and the result K planes out: about 1/(K*R*S) and 1/(C*T*R*S) of the
// convolution's multiply-adds, a few percent. conv3d.cpp picks it where it measured faster than its
// implicit GEMM (slices_applies).
//
// Threads: (image, chunk of slices) items split statically over the team, conv2d single-threaded
// inside (forward, backward-weight with per-thread partial sums added in thread order); backward-data
// adds each chunk's result into overlapping input slices, so it splits whole images over the team,
// or with fewer images than threads lets conv2d run parallel inside.
#pragma once
#include "common/conv3d_shape.h"
#include "common/conv_shape.h"
#include "common/types.h"

namespace fastlayers::cpu {

// Where conv2d's direct kernels run the unfolded slices (and FASTLAYERS_CONV3D_SLICES: "0" never,
// "1" always, unset: by shape).
bool slices_applies(const Conv3dShape& s, ConvPass pass);

index_t slices_workspace_floats(const Conv3dShape& s, ConvPass pass, int threads);

bool slices_forward(const Conv3dShape& s, const float* x, const float* w, const float* b, float* y, float* workspace,
                    index_t workspace_floats);
bool slices_backward_data(const Conv3dShape& s, const float* grad_out, const float* w, float* grad_x,
                          float* workspace, index_t workspace_floats);
// grad_w only (the caller computes grad_b).
bool slices_backward_weight(const Conv3dShape& s, const float* grad_out, const float* x, float* grad_w,
                            float* workspace, index_t workspace_floats);

}  // namespace fastlayers::cpu
