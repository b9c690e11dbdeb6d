// pad on the GPU. Same names and semantics as csrc/cpu/pad.h, plus the stream. Free of CUDA syntax
// (included by the bindings).
#pragma once
#include <cuda_runtime_api.h>

#include "common/pad_geometry.h"
#include "common/types.h"

namespace fastlayers::cuda {

// A thread per output element (grid-stride): its source element through the per-dimension map.
void pad_forward(const float* x, float* y, const PadGeometry& g, float value, cudaStream_t stream);

// Constant mode: pad_forward with the pads negated. Other modes: a thread per input element gathers
// every output element that reads it (no atomics; deterministic). Needs rank <= 4 for those modes
// (the op merges to (planes, D, H, W) at most).
void pad_backward(const float* grad_out, float* grad_in, const PadGeometry& g, cudaStream_t stream);

}  // namespace fastlayers::cuda
