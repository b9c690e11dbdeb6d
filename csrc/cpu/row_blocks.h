// Parallel loops over rows for the bandwidth-bound copy kernels (pad, interpolate, cat).
#pragma once
#include <omp.h>

#include <algorithm>

#include "cpu/parallel.h"

namespace fastlayers::cpu {

// Calls f(r0, r1) on consecutive row blocks of about kBlockFloats floats (row_len floats per row),
// handed out dynamically: on a shared machine a descheduled thread then delays the call by one
// block, not by its whole static share. Small problems (<= kParallelGrain floats) run inline on the
// calling thread without waking the team.
template <class F>
void for_row_blocks(index_t rows, index_t row_len, F f) {
  constexpr index_t kBlockFloats = index_t(1) << 16;  // 256 KiB of output per block
  if (rows <= 0) return;
  const index_t len = std::max<index_t>(row_len, 1);
  if (rows * len <= kParallelGrain || rows == 1 || max_threads() == 1) {
    f(index_t{0}, rows);
    return;
  }
  const index_t per = std::max<index_t>(1, kBlockFloats / len);
  const index_t blocks = (rows + per - 1) / per;
#pragma omp parallel for schedule(dynamic, 1) num_threads(max_threads())
  for (index_t b = 0; b < blocks; ++b) f(b * per, std::min(rows, (b + 1) * per));
}

}  // namespace fastlayers::cpu
