// interpolate on the GPU. Same names and semantics as csrc/cpu/interpolate.h, plus the stream. Free
// of CUDA syntax (included by the bindings).
#pragma once
#include <cuda_runtime_api.h>

#include "common/interp_geometry.h"
#include "common/types.h"

namespace fastlayers::cuda {

// A thread per output element: its source cells through the per-axis maps (no tables).
void interpolate_forward(const float* x, float* y, const InterpGeometry& g, cudaStream_t stream);

// A thread per input element gathers the outputs that read it (their ranges found on the device by
// inverting the monotone per-axis maps): no atomics, deterministic.
void interpolate_backward(const float* grad_out, float* grad_in, const InterpGeometry& g, cudaStream_t stream);

}  // namespace fastlayers::cuda
