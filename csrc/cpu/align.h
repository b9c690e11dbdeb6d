// 64-byte alignment inside buffers that carry no such promise (workspaces handed in by callers,
// std::vector storage): a buffer sized with kAlignSlackFloats floats to spare holds its first
// aligned float within that slack. Kernels that load or store aligned vectors start there.
#pragma once
#include <cstdint>

#include "common/types.h"

namespace fastlayers::cpu {

constexpr index_t kAlignSlackFloats = 16;

// Internal linkage: the *_avx512.cpp files include this too, compiled with their own ISA flags.
namespace {
inline float* align64(float* p) {
  return reinterpret_cast<float*>((reinterpret_cast<std::uintptr_t>(p) + 63) & ~std::uintptr_t{63});
}
inline const float* align64(const float* p) { return align64(const_cast<float*>(p)); }
}  // namespace

// n floats rounded up to whole 64-byte lines: the size of a workspace part, so that the next part
// starts 64-byte aligned after an aligned one.
constexpr index_t round16(index_t n) { return (n + 15) / 16 * 16; }

}  // namespace fastlayers::cpu
