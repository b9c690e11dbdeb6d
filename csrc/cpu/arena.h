// A cache of large memory blocks for the arrays a training step allocates (activations, gradients),
// in the spirit of ONNX Runtime's CPU arena and PyTorch's CUDA caching allocator. A training step
// frees and re-allocates the same few hundred MB every step; from the C library that memory often
// comes back as fresh pages (glibc maps blocks above its mmap threshold anew each time, and trims
// the heap), so every step pays page faults and zeroing, and how much depends on what else the
// process did (ResNet-18 at batch 16, 2 threads: one step 0.93-0.95 s alone, 1.05-1.27 s when
// PyTorch's step ran in between). Blocks from here are kept when freed and handed out again.
//
// - Only blocks of at least kMinBytes; smaller requests go to malloc (the caller's job: see
//   csrc/bindings/cpu_arena.cpp). Sizes are rounded up (64 KiB; 2 MiB from 8 MiB up) and a free block is reused for a
//   request of its size or up to 1/8 smaller.
// - New blocks are mmap'd, 2 MiB aligned from 8 MiB up, with madvise(MADV_HUGEPAGE) (fewer TLB
//   misses on the long streams of the layer kernels).
// - At most limit() bytes stay cached while free (default 1 GiB, FASTLAYERS_ARENA_LIMIT_MB);
//   past that the largest free blocks are unmapped. release_free() unmaps every free block.
// Thread-safe (one mutex: allocations are few and large).
#pragma once
#include <cstddef>
#include <cstdint>

namespace fastlayers::cpu::arena {

constexpr std::size_t kMinBytes = std::size_t{1} << 20;

// A block of at least `bytes` (>= kMinBytes), 64-byte aligned; nullptr if the system has no memory.
// zeroed: its contents are all zero (a reused block is cleared, a new mapping already is).
void* acquire(std::size_t bytes, bool zeroed);

// The size of p's block if p is a block from acquire() in use (at least what was asked), else 0.
std::size_t block_size(const void* p);

// Gives a block from acquire() back to the cache; false (and nothing done) if p is not one.
bool release(void* p);

// Unmaps every cached free block; returns the bytes given back to the system.
std::size_t release_free();

struct Stats {
  std::size_t in_use_bytes, cached_bytes, peak_bytes;  // blocks in use, free blocks kept, peak of both
  std::uint64_t hits, misses;                          // acquire() served from the cache / by a new mapping
};
Stats stats();

std::size_t limit();
void set_limit(std::size_t bytes);

}  // namespace fastlayers::cpu::arena
