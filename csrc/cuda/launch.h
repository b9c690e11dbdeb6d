// Grid-size helpers shared by the CUDA launchers.
#pragma once
#include "common/types.h"

namespace fastlayers::cuda {

constexpr int kThreadsPerBlock = 256;

// Blocks for a grid-stride loop over n elements: enough to fill the GPU, capped so huge n
// does not overflow gridDim.x. The launcher must skip the launch when n == 0.
inline unsigned grid_for(index_t n, int threads = kThreadsPerBlock) {
  const index_t blocks = (n + threads - 1) / threads;
  const index_t cap = 65535LL * 8;
  return static_cast<unsigned>(blocks < cap ? blocks : cap);
}

}  // namespace fastlayers::cuda
