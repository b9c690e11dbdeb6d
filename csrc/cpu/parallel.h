// OpenMP helpers shared by the CPU kernels.
#pragma once
#include "common/types.h"

namespace fastlayers::cpu {

// Below this many elements an elementwise loop runs on one thread: waking the team costs more
// than the work (a few microseconds).
constexpr index_t kParallelGrain = 1 << 15;

}  // namespace fastlayers::cpu
