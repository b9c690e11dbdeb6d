// 3-D pooling on the CPU over NCDHW float32 buffers (csrc/common/pool3d_geometry.h). Same names as
// the CUDA twin (csrc/cuda/pool3d.h, plus a trailing cudaStream_t); semantics are
// python/fastlayers/reference/pool3d.py's, which are torch.nn.functional's.
#pragma once
#include <cstdint>

#include "common/pool3d_geometry.h"
#include "common/types.h"

namespace fastlayers::cpu {

using fastlayers::Pool3dGeometry;

// Max over each window's real cells, scanned (t, r, s) row-major; a NaN displaces the running
// maximum (NaN out, index of the last NaN); an all-padding window (only with dilation) gives -inf
// and index -1. indices (may be null): the flat index into each d*h*w volume, as int64.
void max_pool3d_forward(const float* x, float* y, std::int64_t* indices, const Pool3dGeometry& g);
// grad_in gets each window's gradient at its winner (recomputed from x); windows accumulate in order.
void max_pool3d_backward(const float* grad_out, const float* x, float* grad_in, const Pool3dGeometry& g);

// Sum of the real cells over divisor_override when non-zero, else over the window's size clipped to the
// padded input (count_include_pad) or the number of real cells.
void avg_pool3d_forward(const float* x, float* y, const Pool3dGeometry& g, bool count_include_pad,
                        index_t divisor_override);
void avg_pool3d_backward(const float* grad_out, float* grad_in, const Pool3dGeometry& g, bool count_include_pad,
                         index_t divisor_override);

}  // namespace fastlayers::cpu
