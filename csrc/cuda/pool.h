// 2-D pooling on the GPU over NCHW float32 buffers, on the given stream. Same names and semantics as
// csrc/cpu/pool.h (see python/fastlayers/reference/pool.py). Kept free of CUDA syntax so the bindings
// (host compiler, pybind11) can include it. Geometry and what the caller has checked:
// csrc/common/pool_geometry.h.
//
// The backward passes gather: each input cell loops over the windows that contain it, in row-major
// window order, so each cell is written once and sums run in the CPU's scatter order: deterministic,
// no atomics, no zero-fill pass. Only max_unpool2d_forward scatters (into a zeroed output).
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "common/pool_geometry.h"
#include "common/types.h"

namespace fastlayers::cuda {

using fastlayers::AdaptivePool2dGeometry;  // csrc/common/pool_geometry.h
using fastlayers::Pool2dGeometry;

// Max over each window (indices may be null); a NaN in a window gives NaN; padded cells never win.
void max_pool2d_forward(const float* x, float* y, std::int64_t* indices, const Pool2dGeometry& g,
                        cudaStream_t stream);
// From x: windows that tile the input take one pass (a thread per window writes its rectangle);
// otherwise the winners go to `workspace` (int64, planes*oh*ow, caller-owned) and the indices
// gather runs. Never recomputes an argmax per input cell.
void max_pool2d_backward(const float* grad_out, const float* x, float* grad_in, std::int64_t* workspace,
                         const Pool2dGeometry& g, cudaStream_t stream);
// From saved indices: the gather alone (indices that are not a cell of their window add nothing).
void max_pool2d_backward_indices(const float* grad_out, const std::int64_t* indices, float* grad_in,
                                 const Pool2dGeometry& g, cudaStream_t stream);

// divisor_override: 0 for PyTorch's rule (count_include_pad or the number of input cells).
void avg_pool2d_forward(const float* x, float* y, const Pool2dGeometry& g, bool count_include_pad,
                        double divisor_override, cudaStream_t stream);
void avg_pool2d_backward(const float* grad_out, float* grad_in, const Pool2dGeometry& g,
                         bool count_include_pad, double divisor_override, cudaStream_t stream);

// y = (F * sum |x|^p)^(1/p), accumulated in double (F: csrc/cpu/pool.h). Backward: g * F * sign(x) *
// (|x|/y)^(p-1), 0 where x == 0 or y == 0 (the window norm is recomputed from x: the binding gets no y).
void lp_pool2d_forward(const float* x, float* y, const Pool2dGeometry& g, double p, cudaStream_t stream);
void lp_pool2d_backward(const float* grad_out, const float* x, float* grad_in, const Pool2dGeometry& g,
                        double p, cudaStream_t stream);

void adaptive_avg_pool2d_forward(const float* x, float* y, const AdaptivePool2dGeometry& g, cudaStream_t stream);
void adaptive_avg_pool2d_backward(const float* grad_out, float* grad_in, const AdaptivePool2dGeometry& g,
                                  cudaStream_t stream);
void adaptive_max_pool2d_forward(const float* x, float* y, std::int64_t* indices, const AdaptivePool2dGeometry& g,
                                 cudaStream_t stream);
// From x: winners into `workspace` (int64, planes*oh*ow), then the indices gather.
void adaptive_max_pool2d_backward(const float* grad_out, const float* x, float* grad_in, std::int64_t* workspace,
                                  const AdaptivePool2dGeometry& g, cudaStream_t stream);
void adaptive_max_pool2d_backward_indices(const float* grad_out, const std::int64_t* indices, float* grad_in,
                                          const AdaptivePool2dGeometry& g, cudaStream_t stream);

// y (planes x out_hw) = 0, then y[indices[k]] = x[k]; indices outside [0, out_hw) are skipped (no
// host check: that would synchronise). With duplicate indices one of the values lands (unordered).
// Backward: grad_x[k] = grad_out[indices[k]], 0 for an index out of range.
void max_unpool2d_forward(const float* x, const std::int64_t* indices, float* y, index_t planes, index_t in_hw,
                          index_t out_hw, cudaStream_t stream);
void max_unpool2d_backward(const float* grad_out, const std::int64_t* indices, float* grad_x, index_t planes,
                           index_t in_hw, index_t out_hw, cudaStream_t stream);

// Mean over each plane of hw floats (double accumulation): y has `planes` entries.
void global_avg_pool2d_forward(const float* x, float* y, index_t planes, index_t hw, cudaStream_t stream);
void global_avg_pool2d_backward(const float* grad_out, float* grad_in, index_t planes, index_t hw,
                                cudaStream_t stream);

}  // namespace fastlayers::cuda
