// Which SGEMM kernel runs, with which tile and how many K splits (host code only, no CUDA syntax:
// gemm.cu, the bindings' sgemm_plan (benchmarks/cuda_plan.py) and the host emulation share it).
//
// Kernels (gemm_kernels.cuh):
//   warp-tiled  BM x BN tiles, BK = 16 deep, each warp a WM x WN sub-tile, each thread TM x TN
//               outputs; five tiles from 128 x 128 (large problems) down to 16 x 8 (batch-100 dense
//               layers, whose 100 rows waste 22% of any 32-row tile);
//   narrow      N <= 32 (a classifier's 10 outputs): TPR threads per row, each a runtime share of
//               the N columns; a warp whose rows are all past M skips its FMAs, so rows are issued
//               in steps of 32 / TPR. M <= 32 runs as the transposed problem C^T = op(B)^T op(A)^T.
//   reference   one thread per output (cross-checks only).
// Split-K: grid y splits the reduction; each split writes its partial tile to a caller-owned
// workspace and a second kernel adds the splits in order and applies alpha and beta. The plan is
// wave-aware: it takes, among the (kernel, splits) whose issued-to-useful FLOP ratio is >= 0.85
// (all of them when none is), the lowest modelled time: ceil(blocks / SMs) blocks per SM at a
// rate that grows with resident threads and the per-thread tile's FMAs per shared-memory load,
// plus the split reduction's launch and traffic. The split count changes the summation order, so
// it is a function of the shape and the device's SM count only.
#pragma once
#include <algorithm>
#include <string>

#include "common/types.h"
#include "cuda/device_profile.h"

namespace fastlayers::cuda::gemm_plan {

struct WarpTile {
  const char* name;
  int bm, bn, bk, wm, wn, tm, tn, min_blocks;
  constexpr int threads() const { return (bm / wm) * (bn / wn) * 32; }
  constexpr int smem_bytes() const { return 2 * bk * (bm + 4 + bn + 4) * 4; }
};

constexpr WarpTile kWarpTiles[] = {
    {"tile128", 128, 128, 8, 64, 32, 8, 8, 2},   // 256 threads: 8 warps of 64 x 32 (k 8: 16 would spill)
    {"tile64", 64, 64, 16, 32, 32, 8, 4, 4},     // 128 threads: 4 warps of 32 x 32
    {"tile32", 32, 32, 16, 32, 16, 4, 4, 8},     // 64 threads: 2 warps of 32 x 16
    {"tile16x64", 16, 64, 16, 16, 32, 4, 4, 8},  // 64 threads: 2 warps of 16 x 32
    {"tile16x8", 16, 8, 16, 16, 8, 2, 2, 8},     // 32 threads: 1 warp of 16 x 8
};
constexpr int kWarpTileCount = sizeof(kWarpTiles) / sizeof(kWarpTiles[0]);

// Narrow kernel: 128 threads, BK 32, up to 32 columns.
constexpr int kNarrowThreads = 128, kNarrowBK = 32, kNarrowMaxN = 32, kNarrowMinBlocks = 4;

// Path ids, as _cuda.sgemm_path takes them (the Python names are in benchmarks/cuda_bench.py).
enum Path : int {
  kAuto = 0,
  kTile128 = 1,
  kTile64 = 2,
  kTile32 = 3,
  kReference = 4,
  kTile16x64 = 5,
  kTile16x8 = 6,
  kNarrow = 7,
  kPathCount = 8,
};
inline int warp_tile_of(int path) {
  switch (path) {
    case kTile128: return 0;
    case kTile64: return 1;
    case kTile32: return 2;
    case kTile16x64: return 3;
    case kTile16x8: return 4;
    default: return -1;
  }
}
inline const char* path_name(int path) {
  switch (path) {
    case kAuto: return "auto";
    case kTile128: return "tile128";
    case kTile64: return "tile64";
    case kTile32: return "tile32";
    case kReference: return "reference";
    case kTile16x64: return "tile16x64";
    case kTile16x8: return "tile16x8";
    case kNarrow: return "narrow";
    default: return "?";
  }
}

constexpr double kMinTileEfficiency = 0.85;
constexpr int kMaxSplits = 32;

inline index_t ceil_div(index_t a, index_t b) { return (a + b - 1) / b; }

struct Plan {
  int path = kTile64;
  bool transposed = false;  // narrow on C^T (M <= 32 < N)
  int tpr = 1;              // narrow: threads per row
  index_t M = 0, N = 0, K = 0;  // the problem the kernel sees (swapped when transposed)
  index_t splits = 1, k_chunk = 0;
  index_t tiles = 0, blocks = 0;
  int threads = 0, blocks_per_sm = 0;
  double useful_flops = 0, issued_flops = 0, waves = 0, model_seconds = 0;
  double efficiency() const { return issued_flops > 0 ? useful_flops / issued_flops : 1.0; }
  index_t workspace_floats() const { return splits > 1 ? splits * M * N : 0; }
};

inline int blocks_per_sm(int threads, int smem, int min_blocks, const DeviceProfile& dev) {
  const int by_threads = dev.max_threads_per_sm / threads;
  const int by_smem = dev.smem_per_sm / (smem + 1024);
  return std::max(1, std::min({by_threads, by_smem, dev.max_blocks_per_sm, std::max(min_blocks, 1)}));
}

// The per-thread tile's FMAs per shared-memory load that still raise the rate. tile128's 8 x 8
// (intensity 1.0) ran at the rate of tile64's 8 x 4 (0.67) on an H200, not 1.5x it: 4096^3 3.79 ms
// against 4.05, and at 1024^3 and the batch-1024 dense shapes, where the model took tile128 for
// that credit, tile64 or tile32 were 1.15-1.4x faster (benchmarks/results/gpu-h200-session32).
constexpr double kMaxIntensity = 0.7;

// Same model as conv_plan::model_seconds, plus the split reduction (a launch and its traffic), with
// the intensity credit capped at kMaxIntensity.
inline double model_seconds(int threads, int bps, double intensity, index_t blocks, double work, index_t splits,
                            index_t M, index_t N, const DeviceProfile& dev) {
  if (blocks <= 0) return 0;
  const double per_sm = static_cast<double>(ceil_div(blocks, dev.sms));
  const double resident = std::min<double>(per_sm, bps) * threads;
  const double rate = 128 * 1.7e9 * std::min(1.0, resident / 512.0) * std::clamp(intensity, 0.125, kMaxIntensity);
  double t = per_sm * work / rate + 0.5e-6 * per_sm / bps;
  if (splits > 1) t += 2e-6 + double(splits + 2) * M * N * 4 / 3.0e12;
  return t;
}

inline Plan evaluate_warp(int tile, index_t M, index_t N, index_t K, index_t splits, const DeviceProfile& dev) {
  const WarpTile& w = kWarpTiles[tile];
  Plan p;
  p.path = tile == 0 ? kTile128 : tile == 1 ? kTile64 : tile == 2 ? kTile32 : tile == 3 ? kTile16x64 : kTile16x8;
  p.M = M, p.N = N, p.K = K;
  p.k_chunk = K > 0 ? ceil_div(ceil_div(K, splits), w.bk) * w.bk : w.bk;
  p.splits = K > 0 ? ceil_div(K, p.k_chunk) : 1;
  p.tiles = ceil_div(M, w.bm) * ceil_div(N, w.bn);
  p.blocks = p.tiles * p.splits;
  p.threads = w.threads();
  p.blocks_per_sm = blocks_per_sm(p.threads, w.smem_bytes(), w.min_blocks, dev);
  p.useful_flops = 2.0 * M * N * K;
  p.issued_flops = 2.0 * double(p.tiles) * w.bm * w.bn * K;
  p.waves = double(p.blocks) / (double(dev.sms) * p.blocks_per_sm);
  const double intensity = (w.tm * w.tn) / double(w.tm + w.tn) / 4.0;
  p.model_seconds = model_seconds(p.threads, p.blocks_per_sm, intensity, p.blocks,
                                  double(w.bm) * w.bn * p.k_chunk, p.splits, M, N, dev);
  return p;
}

// M, N as the narrow kernel sees them (N <= kNarrowMaxN).
inline Plan evaluate_narrow(index_t M, index_t N, index_t K, int tpr, bool transposed, index_t splits,
                            const DeviceProfile& dev) {
  Plan p;
  p.path = kNarrow;
  p.transposed = transposed;
  p.tpr = tpr;
  p.M = M, p.N = N, p.K = K;
  p.k_chunk = K > 0 ? ceil_div(ceil_div(K, splits), kNarrowBK) * kNarrowBK : kNarrowBK;
  p.splits = K > 0 ? ceil_div(K, p.k_chunk) : 1;
  const index_t rows_per_block = kNarrowThreads / tpr, rows_per_warp = 32 / tpr;
  p.tiles = ceil_div(M, rows_per_block);
  p.blocks = p.tiles * p.splits;
  p.threads = kNarrowThreads;
  const int smem = 2 * kNarrowBK * (int(rows_per_block) + 1 + kNarrowMaxN) * 4;
  p.blocks_per_sm = blocks_per_sm(p.threads, smem, kNarrowMinBlocks, dev);
  p.useful_flops = 2.0 * M * N * K;
  // Warps past M skip their FMAs; each thread covers ceil(N / tpr) columns.
  p.issued_flops = 2.0 * double(ceil_div(M, rows_per_warp) * rows_per_warp) * double(ceil_div(N, tpr) * tpr) * K;
  p.waves = double(p.blocks) / (double(dev.sms) * p.blocks_per_sm);
  const double cols = double(ceil_div(N, tpr));
  const double intensity = cols / (1.0 + cols / 4.0) / 4.0;  // one A read and cols/4 float4 B reads per cols FMAs
  p.model_seconds = model_seconds(p.threads, p.blocks_per_sm, intensity, p.blocks,
                                  double(rows_per_block) * cols * tpr * p.k_chunk, p.splits, M, N, dev);
  return p;
}

inline bool better(const Plan& a, const Plan& b) {  // a strictly better than b
  const bool ea = a.efficiency() >= kMinTileEfficiency, eb = b.efficiency() >= kMinTileEfficiency;
  if (ea != eb) return ea;
  return a.model_seconds < b.model_seconds;
}

// The plan for `path` (kAuto: every kernel) with `splits` (0: the best count).
inline Plan choose(int path, index_t M, index_t N, index_t K, index_t splits, const DeviceProfile& dev) {
  Plan best;
  bool have = false;
  auto consider = [&](const Plan& p) {
    if (!have || better(p, best)) best = p, have = true;
  };
  const index_t max_splits = std::min<index_t>(kMaxSplits, std::max<index_t>(1, K / 64));
  auto each_split = [&](auto&& fn) {
    if (splits > 0) {
      fn(splits);
      return;
    }
    for (index_t s = 1; s <= max_splits; s = s < 4 ? s + 1 : s * 2) fn(s);
  };
  for (int tile = 0; tile < kWarpTileCount; ++tile) {
    const int tile_path = tile == 0 ? kTile128 : tile == 1 ? kTile64 : tile == 2 ? kTile32 : tile == 3 ? kTile16x64 : kTile16x8;
    if (path != kAuto && path != tile_path) continue;
    each_split([&](index_t s) { consider(evaluate_warp(tile, M, N, K, s, dev)); });
  }
  if (path == kAuto || path == kNarrow) {
    const bool fits = N <= kNarrowMaxN, fits_t = M <= kNarrowMaxN;
    if (fits || fits_t || path == kNarrow) {
      // Forced narrow on a wide problem: the side that fits, else the narrower one in column blocks
      // (the launcher splits N into kNarrowMaxN-wide launches).
      const bool transposed = !fits && (fits_t || M < N);
      const index_t m = transposed ? N : M, n = transposed ? M : N;
      for (int tpr : {1, 2})
        each_split([&](index_t s) { consider(evaluate_narrow(m, std::min<index_t>(n, kNarrowMaxN), K, tpr, transposed, s, dev)); });
    }
  }
  if (path == kReference) {
    best = Plan{};
    best.path = kReference;
    best.M = M, best.N = N, best.K = K, best.k_chunk = K, best.splits = 1;
    best.useful_flops = best.issued_flops = 2.0 * M * N * K;
  }
  return best;
}

inline std::string describe(const Plan& p) {
  if (p.path == kNarrow)
    return std::string("narrow (") + std::to_string(p.tpr) + " thread" + (p.tpr > 1 ? "s" : "") + " per row" +
           (p.transposed ? ", on C^T" : "") + ")";
  const int tile = warp_tile_of(p.path);
  if (tile < 0) return path_name(p.path);
  const WarpTile& w = kWarpTiles[tile];
  return std::string(w.name) + " (" + std::to_string(w.bm) + "x" + std::to_string(w.bn) + ", warp " +
         std::to_string(w.wm) + "x" + std::to_string(w.wn) + ", thread " + std::to_string(w.tm) + "x" +
         std::to_string(w.tn) + ", k" + std::to_string(w.bk) + ", " + std::to_string(w.threads()) + " threads)";
}

}  // namespace fastlayers::cuda::gemm_plan
