// Machine-limit probes for the benchmarks (roofline): peak FMA throughput and STREAM-triad memory
// bandwidth. Not kernels of any op; they measure what the kernels can at best reach.
#pragma once
#include "common/types.h"
#include "cpu/cpu_features.h"

namespace fastlayers::cpu {

// Peak single-precision FMA rate, in GFLOP/s, over `threads` OpenMP threads each running `iters`
// rounds of independent FMA chains with the given ISA (the caller passes active_isa() or lower).
// Best of `reps` timed runs, so a busy neighbour lowers the result less.
double probe_peak_gflops(Isa isa, int threads, index_t iters, int reps);

// STREAM triad a[i] = b[i] + s*c[i] over arrays of n floats, on `threads` threads, counting
// 3 x 4 bytes per element (no write-allocate traffic, as STREAM counts). Allocates and first-touches
// the arrays with the same static schedule as the timed loop. Best of `passes`, in GB/s (1e9 B/s).
double probe_triad_gbps(index_t n, int threads, int passes);

// The FMA chains, one per ISA; each returns a value derived from every chain so nothing is
// optimised away. flops per call: iters * kFmaChains * lanes * 2.
constexpr int kFmaChains = 12;
float fma_chains_generic(index_t iters);
float fma_chains_avx2(index_t iters);    // lanes = 8  (probe_avx2.cpp)
float fma_chains_avx512(index_t iters);  // lanes = 16 (probe_avx512.cpp)

}  // namespace fastlayers::cpu
