// OpenMP helpers shared by the CPU kernels.
#pragma once
#include <omp.h>

#include "common/types.h"

namespace fastlayers::cpu {

// Below this many elements an elementwise loop runs on one thread: waking the team costs more
// than the work (a few microseconds).
constexpr index_t kParallelGrain = 1 << 15;

// The same for loops that evaluate an exp / tanh per element (a few times the cost of a copy).
constexpr index_t kTranscendentalGrain = 1 << 13;

// Calls f(lo, hi) on one contiguous range per thread (boundaries multiples of 16 floats, one
// cache line), or once on [0, n) when n <= grain, without waking the team.
template <class F>
void parallel_ranges(index_t n, index_t grain, F f) {
  if (n <= 0) return;
  if (n <= grain || omp_get_max_threads() == 1) {
    f(index_t{0}, n);
    return;
  }
#pragma omp parallel
  {
    const index_t nt = omp_get_num_threads(), t = omp_get_thread_num();
    const index_t per = ((n + nt - 1) / nt + 15) / 16 * 16;
    const index_t lo = t * per < n ? t * per : n, hi = lo + per < n ? lo + per : n;
    if (lo < hi) f(lo, hi);
  }
}

}  // namespace fastlayers::cpu
