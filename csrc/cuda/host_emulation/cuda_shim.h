// Host emulation of the little CUDA the kernels use, so g++ can compile the kernel headers
// (csrc/cuda/*_kernels.cuh) and run each block's threads as real std::threads meeting at a
// std::barrier for __syncthreads. Slow and only for small problems: it checks index arithmetic,
// bounds guards and barrier placement on a machine without a GPU. It proves nothing about
// timing, memory-model subtleties or warp-level behaviour.
#pragma once
#include <barrier>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))

struct alignas(16) float4 {
  float x, y, z, w;
};
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }

struct Dim3 {
  unsigned x = 1, y = 1, z = 1;
};
inline thread_local Dim3 threadIdx, blockIdx;
inline Dim3 blockDim, gridDim;
inline std::barrier<>* g_block_barrier = nullptr;

inline void __syncthreads() { g_block_barrier->arrive_and_wait(); }

// Runs fn(args...) as grid x block threads, one block at a time (so `static` shared arrays are
// per block). 1-D grids and blocks only, as the kernels use.
template <class F>
void emulate_launch(unsigned grid, unsigned block, F fn) {
  gridDim.x = grid;
  blockDim.x = block;
  for (unsigned b = 0; b < grid; ++b) {
    std::barrier<> bar(block);
    g_block_barrier = &bar;
    std::vector<std::thread> threads;
    threads.reserve(block);
    for (unsigned t = 0; t < block; ++t)
      threads.emplace_back([&, b, t] {
        blockIdx.x = b;
        threadIdx.x = t;
        fn();
      });
    for (auto& th : threads) th.join();
  }
}
