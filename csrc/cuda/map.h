// Launch helpers for the elementwise map kernels (map_kernels.cuh). Only included by .cu files.
#pragma once
#include <cstdint>

#include "cuda/check.h"
#include "cuda/launch.h"
#include "cuda/map_kernels.cuh"

namespace fastlayers::cuda {

inline bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

// y = f(a) elementwise; n == 0 launches nothing. `op` names the op in a CUDA error.
template <class F>
void map1(const float* a, float* y, index_t n, F f, cudaStream_t stream, const char* op) {
  if (n <= 0) return;
  const bool vec = aligned16(a) && aligned16(y);
  detail::map1_kernel<<<grid_for(vec ? (n + 3) / 4 : n), kThreadsPerBlock, 0, stream>>>(n, a, y, f, vec);
  check_launch(op);
}

template <class F>
void map2(const float* a, const float* b, float* y, index_t n, F f, cudaStream_t stream,
          const char* op) {
  if (n <= 0) return;
  const bool vec = aligned16(a) && aligned16(b) && aligned16(y);
  detail::map2_kernel<<<grid_for(vec ? (n + 3) / 4 : n), kThreadsPerBlock, 0, stream>>>(n, a, b, y, f,
                                                                                       vec);
  check_launch(op);
}

}  // namespace fastlayers::cuda
