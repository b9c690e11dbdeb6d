// 2-D pooling on the CPU over NCHW float32 buffers. Same names as the CUDA twins (csrc/cuda/pool.h,
// which add a trailing cudaStream_t). Semantics are those of python/fastlayers/reference/pool.py.
//
// Every kernel works on `planes` = N*C independent h x w planes. Geometry and what the caller has
// checked: csrc/common/pool_geometry.h. Indices are int64, flat over one plane (r*w + c), as
// PyTorch's return_indices; -1 marks a window with no input cell (dilation stepping over the input).
#pragma once
#include <cstdint>

#include "common/pool_geometry.h"
#include "common/types.h"

namespace fastlayers::cpu {

using fastlayers::AdaptivePool2dGeometry;  // csrc/common/pool_geometry.h
using fastlayers::Pool2dGeometry;

// y: planes x oh x ow; indices (may be null): the winner of each window. A window holding a NaN
// outputs NaN; padded cells never win; ties go to the first maximum (row-major), NaNs to the last NaN.
void max_pool2d_forward(const float* x, float* y, std::int64_t* indices, const Pool2dGeometry& g);
// grad_in (planes x h x w) gets each window's gradient at its winner, recomputed from x; overlapping
// windows accumulate in row-major window order; cells in no window get 0.
void max_pool2d_backward(const float* grad_out, const float* x, float* grad_in, const Pool2dGeometry& g);
// The same from saved indices (a scatter-add, in output order; no x needed). Index -1 adds nothing;
// returns how many indices lay outside [-1, h*w) (those add nothing either).
index_t max_pool2d_backward_indices(const float* grad_out, const std::int64_t* indices, float* grad_in,
                                    index_t planes, index_t hw, index_t ohw);

// Sum of the window's input cells / divisor: divisor_override when != 0, else PyTorch's rule
// (count_include_pad: the window clipped to the padded input; else the number of input cells).
void avg_pool2d_forward(const float* x, float* y, const Pool2dGeometry& g, bool count_include_pad,
                        double divisor_override);
void avg_pool2d_backward(const float* grad_out, float* grad_in, const Pool2dGeometry& g,
                         bool count_include_pad, double divisor_override);

// y = (F * sum |x|^p)^(1/p), accumulated in double; F = kh*kw / (the window clipped to the padded
// input), 1 except for ceil_mode windows past it (PyTorch's avg_pool2d-based definition). Backward:
// g * F * sign(x) * (|x|/y)^(p-1), 0 where x == 0 or y == 0.
void lp_pool2d_forward(const float* x, float* y, const Pool2dGeometry& g, double p);
void lp_pool2d_backward(const float* grad_out, const float* x, float* grad_in, const Pool2dGeometry& g,
                        double p);

// Adaptive pooling (windows: csrc/common/pool_geometry.h). Average: sum / cell count. Max: as
// max_pool2d, indices may be null; the backward from x or from saved indices (returns the number of
// indices outside [-1, h*w)).
void adaptive_avg_pool2d_forward(const float* x, float* y, const AdaptivePool2dGeometry& g);
void adaptive_avg_pool2d_backward(const float* grad_out, float* grad_in, const AdaptivePool2dGeometry& g);
void adaptive_max_pool2d_forward(const float* x, float* y, std::int64_t* indices, const AdaptivePool2dGeometry& g);
void adaptive_max_pool2d_backward(const float* grad_out, const float* x, float* grad_in,
                                  const AdaptivePool2dGeometry& g);

// Unpooling: y (planes x out_hw) = 0, then y[indices[k]] = x[k] in order (the last of duplicates
// wins). Backward: grad_x[k] = grad_out[indices[k]]. Indices outside [0, out_hw) are skipped (grad 0)
// and counted: the return value.
index_t max_unpool2d_forward(const float* x, const std::int64_t* indices, float* y, index_t planes,
                             index_t in_hw, index_t out_hw);
index_t max_unpool2d_backward(const float* grad_out, const std::int64_t* indices, float* grad_x,
                              index_t planes, index_t in_hw, index_t out_hw);

// Mean over each plane of hw floats: y has `planes` entries.
void global_avg_pool2d_forward(const float* x, float* y, index_t planes, index_t hw);
void global_avg_pool2d_backward(const float* grad_out, float* grad_in, index_t planes, index_t hw);

}  // namespace fastlayers::cpu
