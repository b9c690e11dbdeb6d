// Host emulation of the little CUDA the kernels use, so g++ can compile the kernel headers
// (csrc/cuda/*_kernels.cuh) and run them: each CUDA thread of a block is a fiber (ucontext) on
// the calling OS thread, and __syncthreads / __syncwarp / warp shuffles switch fibers. Slow and
// only for small problems: it checks index arithmetic, bounds guards, barrier placement and
// warp-shuffle reductions on a machine without a GPU. It proves nothing about timing or the
// memory model.
//
// Scheduling: every ready thread runs until it reaches a barrier or returns; then the barrier
// releases. The order alternates (thread 0 first, then the last thread first) from one phase to
// the next, so a read that is missing a barrier before it meets the writer both before and after
// its write. A barrier that not every thread of the block (or, for warp operations, of the warp)
// reaches is reported as a divergent barrier and aborts the program: on a GPU it would hang or be
// undefined. Warps are threads [32w, 32w + 32) of a block; shuffles need every lane of the warp.
#pragma once
#include <ucontext.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
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
struct alignas(8) float2 {
  float x, y;
};
inline float2 make_float2(float x, float y) { return float2{x, y}; }

struct Dim3 {
  unsigned x = 1, y = 1, z = 1;
};
// One OS thread runs every fiber, so these are plain globals, set before a fiber resumes.
inline Dim3 threadIdx, blockIdx, blockDim, gridDim;

template <class T>
inline T __ldg(const T* p) {
  return *p;
}

namespace fl_emulation {

enum class Wait { ready, block, warp, done };

struct Fiber {
  ucontext_t ctx{};
  std::unique_ptr<char[]> stack;
  Wait wait = Wait::ready;
};

constexpr std::size_t kStack = 256 * 1024;

struct Scheduler {
  ucontext_t main{};
  std::vector<Fiber> fibers;
  unsigned current = 0;
  std::function<void()> body;
  std::uint64_t slot[1024] = {};  // shuffle exchange, one slot per thread of the block

  void yield(Wait w) {
    fibers[current].wait = w;
    swapcontext(&fibers[current].ctx, &main);
  }

  static void trampoline();

  // Runs one block of n threads to completion.
  void run_block(unsigned n) {
    if (n == 0 || n > 1024) {
      std::fprintf(stderr, "emulation: block of %u threads\n", n);
      std::abort();
    }
    if (fibers.size() < n) fibers.resize(n);
    for (unsigned t = 0; t < n; ++t) {
      Fiber& f = fibers[t];
      if (!f.stack) f.stack.reset(new char[kStack]);
      getcontext(&f.ctx);
      f.ctx.uc_stack.ss_sp = f.stack.get();
      f.ctx.uc_stack.ss_size = kStack;
      f.ctx.uc_link = &main;
      makecontext(&f.ctx, &Scheduler::trampoline, 0);
      f.wait = Wait::ready;
    }
    for (unsigned phase = 0;; ++phase) {
      for (unsigned k = 0; k < n; ++k) {
        const unsigned t = phase % 2 ? n - 1 - k : k;
        if (fibers[t].wait != Wait::ready) continue;
        current = t;
        threadIdx.x = t, threadIdx.y = 0, threadIdx.z = 0;
        swapcontext(&main, &fibers[t].ctx);
      }
      // Everyone is done or waiting. Release warps whose every lane waits at a warp barrier,
      // else the block barrier when every thread waits at it.
      unsigned done = 0, at_block = 0;
      bool released = false;
      for (unsigned t = 0; t < n; ++t) done += fibers[t].wait == Wait::done, at_block += fibers[t].wait == Wait::block;
      if (done == n) return;
      for (unsigned w0 = 0; w0 < n; w0 += 32) {
        const unsigned w1 = w0 + 32 < n ? w0 + 32 : n;
        unsigned at_warp = 0;
        for (unsigned t = w0; t < w1; ++t) at_warp += fibers[t].wait == Wait::warp;
        if (at_warp == 0) continue;
        if (at_warp != w1 - w0) fail("a warp operation that not every lane of warp " + std::to_string(w0 / 32) + " reaches");
        for (unsigned t = w0; t < w1; ++t) fibers[t].wait = Wait::ready;
        released = true;
      }
      if (released) continue;
      if (at_block != n) fail("a __syncthreads that " + std::to_string(n - at_block) + " of " + std::to_string(n) +
                              " threads never reach (divergent barrier)");
      for (unsigned t = 0; t < n; ++t) fibers[t].wait = Wait::ready;
    }
  }

  [[noreturn]] void fail(const std::string& what) const {
    std::fprintf(stderr, "emulation: %s, in block (%u, %u, %u)\n", what.c_str(), blockIdx.x, blockIdx.y, blockIdx.z);
    std::abort();
  }
};

inline Scheduler g_sched;

inline void Scheduler::trampoline() {
  g_sched.body();
  g_sched.fibers[g_sched.current].wait = Wait::done;
  // returning resumes uc_link (main)
}

}  // namespace fl_emulation

inline void __syncthreads() { fl_emulation::g_sched.yield(fl_emulation::Wait::block); }
inline void __syncwarp(unsigned = 0xffffffffu) { fl_emulation::g_sched.yield(fl_emulation::Wait::warp); }

// Every lane publishes v, then reads lane `src`'s value (its own when src is outside the warp).
template <class T>
inline T warp_exchange(T v, int src) {
  static_assert(sizeof(T) <= 8, "shuffles move at most 8 bytes");
  auto& s = fl_emulation::g_sched;
  const unsigned t = threadIdx.x, w0 = t / 32 * 32;
  const unsigned width = blockDim.x - w0 < 32 ? blockDim.x - w0 : 32;
  std::uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  s.slot[t] = bits;
  __syncwarp();
  const std::uint64_t got = s.slot[(src >= 0 && src < static_cast<int>(width)) ? w0 + src : t];
  __syncwarp();  // nobody overwrites a slot before every lane has read
  T r;
  std::memcpy(&r, &got, sizeof(T));
  return r;
}
template <class T>
inline T __shfl_xor_sync(unsigned, T v, int mask, int = 32) {
  return warp_exchange(v, static_cast<int>(threadIdx.x % 32) ^ mask);
}
template <class T>
inline T __shfl_down_sync(unsigned, T v, unsigned delta, int = 32) {
  return warp_exchange(v, static_cast<int>(threadIdx.x % 32 + delta));
}
template <class T>
inline T __shfl_sync(unsigned, T v, int src, int = 32) {
  return warp_exchange(v, src);
}

// Atomics: every fiber runs on one OS thread and switches only at barriers, so a plain
// read-modify-write is atomic here.
inline unsigned long long atomicCAS(unsigned long long* p, unsigned long long compare, unsigned long long value) {
  const unsigned long long old = *p;
  if (old == compare) *p = value;
  return old;
}

// ----------------------------------------------------------------------------------- launches
// Runs fn() as a (gx, gy, gz) grid of 1-D blocks of `block` threads, one block at a time (so
// `static` shared arrays are per block).
template <class F>
void emulate_launch3(unsigned gx, unsigned gy, unsigned gz, unsigned block, F fn) {
  gridDim.x = gx, gridDim.y = gy, gridDim.z = gz;
  blockDim.x = block, blockDim.y = blockDim.z = 1;
  auto& s = fl_emulation::g_sched;
  s.body = [&fn] { fn(); };
  for (unsigned z = 0; z < gz; ++z)
    for (unsigned y = 0; y < gy; ++y)
      for (unsigned x = 0; x < gx; ++x) {
        blockIdx.x = x, blockIdx.y = y, blockIdx.z = z;
        s.run_block(block);
      }
  s.body = nullptr;
  gridDim.y = gridDim.z = 1;
}

// A 1-D grid of 1-D blocks.
template <class F>
void emulate_launch(unsigned grid, unsigned block, F fn) {
  emulate_launch3(grid, 1, 1, block, fn);
}

// The host launcher for the dispatch headers (csrc/cuda/launch_grid.h): runs each launch's blocks
// as above; z_cap (when nonzero) caps gridDim.z, as a GPU's 65535 limit would, so kernels' loops
// over z are exercised on small problems. Counts launches per op name.
struct EmulatedLaunch {
  unsigned z_cap = 0;
  std::map<std::string, int> launches;
  template <class G, class... P, class... A>
  void operator()(const char* op, G grid, int threads, void (*kernel)(P...), A... args) {
    ++launches[op];
    const unsigned gz = z_cap && grid.z > z_cap ? z_cap : grid.z;
    emulate_launch3(grid.x, grid.y, gz, static_cast<unsigned>(threads), [&] { kernel(static_cast<P>(args)...); });
  }
};
