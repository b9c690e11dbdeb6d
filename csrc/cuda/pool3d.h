// 3-D pooling on the GPU over NCDHW float32 buffers, on the given stream: the twin of
// csrc/cpu/pool3d.h (same names, arguments and semantics, plus a trailing cudaStream_t).
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "common/pool3d_geometry.h"
#include "common/types.h"

namespace fastlayers::cuda {

using fastlayers::Pool3dGeometry;

void max_pool3d_forward(const float* x, float* y, std::int64_t* indices, const Pool3dGeometry& g,
                        cudaStream_t stream);
void max_pool3d_backward(const float* grad_out, const float* x, float* grad_in, const Pool3dGeometry& g,
                         cudaStream_t stream);
// grad_out routed by max_pool3d's indices (flat over D*H*W); an index outside [0, d*h*w) adds nothing.
void max_pool3d_backward_indices(const float* grad_out, const std::int64_t* indices, float* grad_in,
                                 const Pool3dGeometry& g, cudaStream_t stream);
void avg_pool3d_forward(const float* x, float* y, const Pool3dGeometry& g, bool count_include_pad,
                        index_t divisor_override, cudaStream_t stream);
void avg_pool3d_backward(const float* grad_out, float* grad_in, const Pool3dGeometry& g, bool count_include_pad,
                         index_t divisor_override, cudaStream_t stream);

}  // namespace fastlayers::cuda
