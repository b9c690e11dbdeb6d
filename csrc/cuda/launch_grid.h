// A launch as the dispatch headers (gemm_launch.h, conv_launch.h) describe it: grid, block size,
// kernel and arguments, handed to a launcher `L` that either launches on a CUDA stream (the .cu
// files) or runs the blocks as host threads (csrc/cuda/host_emulation). So the emulation runs
// the same dispatch code as the GPU build: plan, grid, workspace offsets, split reductions.
#pragma once
#include "common/types.h"

namespace fastlayers::cuda {

struct Grid {
  unsigned x = 1, y = 1, z = 1;
};

}  // namespace fastlayers::cuda
