// Deterministic double sums for the CPU losses (loss.cpp, loss_ce.cpp). The chunking is a
// function of the sizes alone and the chunk sums are added in order, so a loss does not depend on
// the number of threads, bit for bit.
#pragma once
#include <algorithm>
#include <limits>

#include "common/types.h"
#include "cpu/parallel.h"

namespace fastlayers::cpu {

constexpr index_t kMaxChunks = 256;      // partial sums live on the stack: no allocation
constexpr index_t kMinChunkWork = 4096;  // elements per chunk at least (amortises the chunk loop)

// 1 / n for "mean"; 1 / 0 = inf, so an empty mean (0 * inf) is NaN, as NumPy and PyTorch.
inline double mean_scale(double n) { return n != 0.0 ? 1.0 / n : std::numeric_limits<double>::infinity(); }

// Two sums at once (cross-entropy: the loss and the weight of the non-ignored targets).
struct Sum2 {
  double a = 0.0, b = 0.0;
  Sum2& operator+=(const Sum2& o) {
    a += o.a;
    b += o.b;
    return *this;
  }
};

// sum over [0, n) of chunk(lo, hi) (a double or a Sum2: the sum of the terms lo..hi-1). `work` is
// the cost of one term in elements (c for a softmax row), used only to size chunks and decide
// whether to wake the thread team.
template <class T = double, class Chunk>
T ordered_chunk_sum(index_t n, index_t work, index_t grain, Chunk chunk_sum) {
  T total{};
  if (n <= 0) return total;
  work = std::max<index_t>(work, 1);
  const index_t min_chunk = std::max<index_t>(1, kMinChunkWork / work);
  const index_t chunk = std::max(min_chunk, (n + kMaxChunks - 1) / kMaxChunks);
  const index_t chunks = (n + chunk - 1) / chunk;
  if (n * work <= grain) {  // one thread: no OpenMP region at all (entering one costs ~0.5 us)
    for (index_t k = 0; k < chunks; ++k) {
      const index_t lo = k * chunk, hi = std::min(n, lo + chunk);
      total += chunk_sum(lo, hi);  // the same chunks, added in the same order
    }
    return total;
  }
  T partial[kMaxChunks];
#pragma omp parallel for schedule(static) num_threads(max_threads())
  for (index_t k = 0; k < chunks; ++k) {
    const index_t lo = k * chunk, hi = std::min(n, lo + chunk);
    partial[k] = chunk_sum(lo, hi);
  }
  for (index_t k = 0; k < chunks; ++k) total += partial[k];
  return total;
}

// sum_{i < n} term(i) in double, chunked as above.
template <class Term>
double ordered_sum(index_t n, index_t work, Term term) {
  return ordered_chunk_sum(n, work, kParallelGrain, [&](index_t lo, index_t hi) {
    double s = 0.0;
    // simd reduction: several partial accumulators, combined in an order fixed at compile time,
    // so still deterministic; it breaks the add latency chain (and vectorises simple terms).
#pragma omp simd reduction(+ : s)
    for (index_t i = lo; i < hi; ++i) s += term(i);
    return s;
  });
}

}  // namespace fastlayers::cpu
