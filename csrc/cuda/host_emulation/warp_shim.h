// Host emulation of the warp-level CUDA the loss kernels use (on top of cuda_shim.h): warp
// shuffles (__shfl_xor_sync) and atomicCAS. Launch such kernels with emulate_launch_warps, which
// adds a barrier per warp of 32 threads; the block size must be a multiple of 32, and every lane
// of a warp must reach each shuffle (as on the GPU with a full mask: a kernel that lets lanes of a
// warp diverge around a shuffle hangs here instead of giving undefined results).
#pragma once
#include <atomic>
#include <barrier>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "cuda_shim.h"

struct EmulatedWarp {
  std::unique_ptr<std::barrier<>> bar;
  unsigned long long slot[32];
};
inline thread_local EmulatedWarp* t_emulated_warp = nullptr;

template <class T>
T __shfl_xor_sync(unsigned /*mask*/, T v, int lane_mask, int width = 32) {
  static_assert(sizeof(T) <= sizeof(unsigned long long), "shuffle of a value wider than 8 bytes");
  EmulatedWarp& w = *t_emulated_warp;
  const unsigned lane = threadIdx.x % 32;
  unsigned long long bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  w.slot[lane] = bits;
  w.bar->arrive_and_wait();
  const unsigned src = (lane & ~static_cast<unsigned>(width - 1)) |
                       ((lane ^ static_cast<unsigned>(lane_mask)) & static_cast<unsigned>(width - 1));
  const unsigned long long got = w.slot[src];
  w.bar->arrive_and_wait();  // nobody overwrites a slot before every lane has read
  T r;
  std::memcpy(&r, &got, sizeof(T));
  return r;
}

inline unsigned long long atomicCAS(unsigned long long* p, unsigned long long compare,
                                    unsigned long long value) {
  std::atomic_ref<unsigned long long> a(*p);
  a.compare_exchange_strong(compare, value);  // on failure compare receives the current value
  return compare;                             // the old value either way
}

// emulate_launch with warps: grid x block threads, one block at a time, block % 32 == 0.
template <class F>
void emulate_launch_warps(unsigned grid, unsigned block, F fn) {
  gridDim.x = grid;
  blockDim.x = block;
  for (unsigned b = 0; b < grid; ++b) {
    std::barrier<> bar(block);
    g_block_barrier = &bar;
    std::vector<EmulatedWarp> warps(block / 32);
    for (auto& w : warps) w.bar = std::make_unique<std::barrier<>>(32);
    std::vector<std::thread> threads;
    threads.reserve(block);
    for (unsigned t = 0; t < block; ++t)
      threads.emplace_back([&, b, t] {
        blockIdx.x = b;
        threadIdx.x = t;
        t_emulated_warp = &warps[t / 32];
        fn();
      });
    for (auto& th : threads) th.join();
  }
}
