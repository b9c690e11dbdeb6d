// interpolate (torch.nn.functional.interpolate, "nearest" and "bilinear"/"linear") on the CPU over
// NCHW float32 planes. Same names as the CUDA twin (csrc/cuda/interpolate.h). Index maps:
// csrc/common/interp_geometry.h; semantics: python/fastlayers/reference/interpolate.py.
#pragma once
#include "common/interp_geometry.h"
#include "common/types.h"

namespace fastlayers::cpu {

// y (planes x out_h x out_w) from x (planes x in_h x in_w). Per-axis tap tables are built once per
// call; nearest copies a row that repeats the previous output row's source with one memcpy.
void interpolate_forward(const float* x, float* y, const InterpGeometry& g);

// grad_in (planes x in_h x in_w): each input cell gathers the weighted gradients of the outputs that
// read it (per-axis tables of (output, weight) per input index), so every input row is written by one
// thread: no atomics, no zero pass over grad_in, deterministic.
void interpolate_backward(const float* grad_out, float* grad_in, const InterpGeometry& g);

}  // namespace fastlayers::cpu
