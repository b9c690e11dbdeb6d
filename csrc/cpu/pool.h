// 2-D pooling on the CPU over NCHW float32 buffers. Same names as a CUDA twin would use (plus a
// trailing cudaStream_t). Semantics are those of python/fastlayers/reference/pool.py.
//
// Every kernel works on `planes` = N*C independent h x w planes. Geometry: kernel kh x kw, stride
// sh x sw, padding ph x pw; output oh = (h + 2*ph - kh) / sh + 1, ow likewise (floor mode). The
// caller has checked: all sizes > 0, 0 <= ph <= kh/2, 0 <= pw <= kw/2, oh >= 1, ow >= 1.
#pragma once
#include "common/pool_geometry.h"
#include "common/types.h"

namespace fastlayers::cpu {

using fastlayers::Pool2dGeometry;  // csrc/common/pool_geometry.h

// y: planes x oh x ow. A window holding a NaN outputs NaN; padded cells never win.
void max_pool2d_forward(const float* x, float* y, const Pool2dGeometry& g);
// grad_in (planes x h x w) gets each window's gradient at its first maximum (row-major scan; with
// NaNs, the last NaN, as PyTorch); overlapping windows accumulate; cells in no window get 0.
void max_pool2d_backward(const float* grad_out, const float* x, float* grad_in, const Pool2dGeometry& g);

// Divisor kh*kw (count_include_pad) or the number of real cells in the window.
void avg_pool2d_forward(const float* x, float* y, const Pool2dGeometry& g, bool count_include_pad);
void avg_pool2d_backward(const float* grad_out, float* grad_in, const Pool2dGeometry& g,
                         bool count_include_pad);

// y = (sum |x|^p)^(1/p), accumulated in double. Backward: g * sign(x) * (|x|/y)^(p-1), 0 where x == 0
// or y == 0.
void lp_pool2d_forward(const float* x, float* y, const Pool2dGeometry& g, double p);
void lp_pool2d_backward(const float* grad_out, const float* x, float* grad_in, const Pool2dGeometry& g,
                        double p);

// Mean over each plane of hw floats: y has `planes` entries.
void global_avg_pool2d_forward(const float* x, float* y, index_t planes, index_t hw);
void global_avg_pool2d_backward(const float* grad_out, float* grad_in, index_t planes, index_t hw);

}  // namespace fastlayers::cpu
