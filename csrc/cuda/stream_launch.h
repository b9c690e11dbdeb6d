// The launcher of the dispatch headers (launch_grid.h) for the GPU build: launches on a CUDA
// stream and checks every launch (check.h: a failure is std::runtime_error naming the op).
// Only included by .cu files.
#pragma once
#include <cuda_runtime_api.h>

#include "cuda/check.h"
#include "cuda/launch_grid.h"

namespace fastlayers::cuda {

struct StreamLaunch {
  cudaStream_t stream;
  template <class... P, class... A>
  void operator()(const char* op, Grid grid, int threads, void (*kernel)(P...), A... args) const {
    kernel<<<dim3(grid.x, grid.y, grid.z), static_cast<unsigned>(threads), 0, stream>>>(static_cast<P>(args)...);
    check_launch(op);
  }
};

}  // namespace fastlayers::cuda
