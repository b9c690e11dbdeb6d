#include "cpu/probe.h"

#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <new>
#include <vector>

#include "cpu/parallel.h"

namespace fastlayers::cpu {
namespace {

// Sinks the chains' results so the compiler cannot drop the work.
volatile float g_sink = 0.0f;

int lanes_of(Isa isa) {
  switch (isa) {
    case Isa::avx512: return 16;
    case Isa::avx2: return 8;
    default: return 4;  // generic: 4 scalar-vectorisable chains per "lane group" (see below)
  }
}

float run_chains(Isa isa, index_t iters) {
#if defined(__x86_64__) || defined(_M_X64)
  if (isa == Isa::avx512) return fma_chains_avx512(iters);
  if (isa == Isa::avx2) return fma_chains_avx2(iters);
#endif
  return fma_chains_generic(iters);
}

struct FreeDeleter {
  void operator()(float* p) const { std::free(p); }
};

}  // namespace

// Portable fallback: kFmaChains x 4 independent scalar chains (the compiler may use SSE; without
// -ffast-math it keeps the separate multiply and add, counted as 2 flops like an FMA).
float fma_chains_generic(index_t iters) {
  float acc[kFmaChains * 4];
  for (int k = 0; k < kFmaChains * 4; ++k) acc[k] = 1.0f + 0.001f * k;
  for (index_t i = 0; i < iters; ++i)
    for (int k = 0; k < kFmaChains * 4; ++k) acc[k] = acc[k] * 0.999999f + 1e-7f;
  float sum = 0.0f;
  for (float v : acc) sum += v;
  return sum;
}

double probe_peak_gflops(Isa isa, int threads, index_t iters, int reps) {
  if (in_forked_child()) threads = 1;  // parallel.h: no team after fork
  const double flops =
      static_cast<double>(threads) * static_cast<double>(iters) * kFmaChains * lanes_of(isa) * 2.0;
  double best = 0.0;
  for (int r = 0; r < reps; ++r) {
    double start = 0.0, stop = 0.0;
#pragma omp parallel num_threads(threads)
    {
      // Start together so the wall time covers the slowest thread's whole run.
#pragma omp barrier
#pragma omp master
      start = omp_get_wtime();
      const float v = run_chains(isa, iters);
#pragma omp atomic
      g_sink += v;
#pragma omp barrier
#pragma omp master
      stop = omp_get_wtime();
    }
    const double seconds = stop - start;
    if (seconds > 0.0) best = std::max(best, flops / seconds * 1e-9);
  }
  return best;
}

double probe_triad_gbps(index_t n, int threads, int passes) {
  if (in_forked_child()) threads = 1;
  const std::size_t bytes = ((static_cast<std::size_t>(n) * sizeof(float) + 63) / 64) * 64;
  std::unique_ptr<float, FreeDeleter> a(static_cast<float*>(std::aligned_alloc(64, bytes)));
  std::unique_ptr<float, FreeDeleter> b(static_cast<float*>(std::aligned_alloc(64, bytes)));
  std::unique_ptr<float, FreeDeleter> c(static_cast<float*>(std::aligned_alloc(64, bytes)));
  if (!a || !b || !c) throw std::bad_alloc();
  float* pa = a.get();
  float* pb = b.get();
  float* pc = c.get();
  // First touch with the timed loop's schedule: each thread's pages are faulted in by that thread.
#pragma omp parallel for schedule(static) num_threads(threads)
  for (index_t i = 0; i < n; ++i) {
    pa[i] = 0.0f;
    pb[i] = 1.0f;
    pc[i] = 2.0f;
  }
  const float s = 3.0f;
  double best = 0.0;
  for (int p = 0; p < passes; ++p) {
    const double start = omp_get_wtime();
#pragma omp parallel for simd schedule(static) num_threads(threads)
    for (index_t i = 0; i < n; ++i) pa[i] = pb[i] + s * pc[i];
    const double seconds = omp_get_wtime() - start;
    if (seconds > 0.0) best = std::max(best, 3.0 * sizeof(float) * static_cast<double>(n) / seconds * 1e-9);
  }
  g_sink = g_sink + pa[n / 2];
  return best;
}

}  // namespace fastlayers::cpu
