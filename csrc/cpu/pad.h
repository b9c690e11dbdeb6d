// pad (torch.nn.functional.pad) on the CPU over contiguous float32 buffers. Same names as the CUDA
// twin (csrc/cuda/pad.h). Geometry and index maps: csrc/common/pad_geometry.h; semantics:
// python/fastlayers/reference/pad.py. The Python op has checked every size and pad.
#pragma once
#include "common/pad_geometry.h"
#include "common/types.h"

namespace fastlayers::cpu {

// y (the g.out shape) from x (the g.in shape): each output row (last dimension) is one memcpy of its
// in-range part plus its edge cells (value, or the mode's mirrored / clamped / wrapped cells).
void pad_forward(const float* x, float* y, const PadGeometry& g, float value);

// grad_in (the g.in shape) from grad_out (the g.out shape): the adjoint of pad_forward. Constant mode
// is pad_forward with the pads negated (a crop, zeros where the forward cropped); the other modes
// gather, per input row, every output row that reads it (no atomics, no zero pass over grad_in).
void pad_backward(const float* grad_out, float* grad_in, const PadGeometry& g);

}  // namespace fastlayers::cpu
