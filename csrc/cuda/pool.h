// 2-D pooling on the GPU over NCHW float32 buffers, on the given stream. Same names and semantics as
// csrc/cpu/pool.h (see python/fastlayers/reference/pool.py). Kept free of CUDA syntax so the bindings
// (host compiler, pybind11) can include it.
//
// Geometry as on the CPU: `planes` = N*C independent h x w planes, kernel kh x kw, stride sh x sw,
// padding ph x pw, floor-mode output. The Python op has checked: all sizes > 0, ph <= kh/2,
// pw <= kw/2, oh >= 1, ow >= 1.
//
// Every kernel writes each output cell exactly once (the backward passes gather: each input cell
// loops over the windows that contain it, in row-major window order), so results are deterministic
// and accumulate in the same order as the CPU's scatter: no atomics, no zero-fill pass.
#pragma once
#include <cuda_runtime_api.h>

#include "common/pool_geometry.h"
#include "common/types.h"

namespace fastlayers::cuda {

using fastlayers::Pool2dGeometry;  // csrc/common/pool_geometry.h

// Max over each window; a NaN in a window gives NaN; padded cells never win. Backward: each
// window's gradient goes to its first maximum (row-major scan; with NaNs, the last NaN).
void max_pool2d_forward(const float* x, float* y, const Pool2dGeometry& g, cudaStream_t stream);
void max_pool2d_backward(const float* grad_out, const float* x, float* grad_in, const Pool2dGeometry& g,
                         cudaStream_t stream);

// Divisor kh*kw (count_include_pad) or the number of real cells in the window.
void avg_pool2d_forward(const float* x, float* y, const Pool2dGeometry& g, bool count_include_pad,
                        cudaStream_t stream);
void avg_pool2d_backward(const float* grad_out, float* grad_in, const Pool2dGeometry& g,
                         bool count_include_pad, cudaStream_t stream);

// y = (sum |x|^p)^(1/p), accumulated in double. Backward: g * sign(x) * (|x|/y)^(p-1), 0 where x == 0
// or y == 0 (the window norm is recomputed from x: the binding gets no y).
void lp_pool2d_forward(const float* x, float* y, const Pool2dGeometry& g, double p, cudaStream_t stream);
void lp_pool2d_backward(const float* grad_out, const float* x, float* grad_in, const Pool2dGeometry& g,
                        double p, cudaStream_t stream);

// Mean over each plane of hw floats (double accumulation): y has `planes` entries.
void global_avg_pool2d_forward(const float* x, float* y, index_t planes, index_t hw, cudaStream_t stream);
void global_avg_pool2d_backward(const float* grad_out, float* grad_in, index_t planes, index_t hw,
                                cudaStream_t stream);

}  // namespace fastlayers::cuda
