// Which tile the CUDA convolution runs, per shape and pass (host code only, no CUDA syntax: the
// launchers in conv.cu, the bindings' conv2d_plan (benchmarks/cuda_plan.py) and the host emulation
// all read the same table and the same choice).
//
// Every pass is a "gather GEMM" C[m][n] = sum over kk of A(m, kk) * B(n, kk) (conv_kernels.cuh):
//
//   pass             rows m (long side)        columns n     reduction kk            grid z
//   forward          N*P*Q output pixels       K/groups      C/groups*R*S            groups
//   backward_data    N*Hs*Ws input pixels of   C/groups      K/groups * the taps of  groups x sh*sw
//                    one stride phase                        that phase              phases
//   backward_weight  C/groups*R*S              K/groups      N*P*Q (split)           groups x splits
//
// A strided backward-data pass is split into sh*sw stride-1 sub-problems, one per phase
// (h mod sh, w mod sw) of the input pixel: within a phase only every (sh/gcd(sh, dh))-th filter row
// reaches an output row, so the zero taps of the old formulation are never issued.
//
// Tiles: BM x BN outputs per block, TM x TN per thread, BK-deep reduction slices. The chooser
// takes, among the tiles whose issued-to-useful ratio is >= kMinTileEfficiency (all of them when
// none is), the one with the lowest modelled time: waves over the device's SMs of work at a rate
// that grows with resident threads and with the per-thread tile's FMAs per shared-memory load.
// Which tile runs never changes a result: every output sums its reduction in the same order.
#pragma once
#include <algorithm>
#include <cstdint>
#include <numeric>
#include <string>

#include "common/conv_shape.h"
#include "common/types.h"
#include "cuda/device_profile.h"

namespace fastlayers::cuda::conv_plan {

struct Tile {
  int bm, bn, tm, tn, bk, min_blocks;
  constexpr int threads() const { return (bm / tm) * (bn / tn); }
  // Shared memory of one block: double-buffered A and B slices (rows padded by 4 floats), the
  // per-row table and the double-buffered reduction table (4 index words each, int64 worst case;
  // conv_kernels.cuh: G = min(8, threads / bk) slices per table group).
  constexpr int smem_bytes() const { return 2 * bk * (bm + 4 + bn + 4) * 4 + bm * 32 + 2 * reduction_table() * 32; }
  constexpr int reduction_table() const { return (threads() / bk < 8 ? threads() / bk : 8) * bk; }
};

// Rows are output/input pixels (forward, backward_data).
constexpr Tile kPixelTiles[] = {
    {128, 128, 8, 8, 4, 2},  // 0: 256 threads
    {128, 64, 8, 8, 4, 4},   // 1: 128 threads
    {128, 32, 8, 4, 8, 4},  // 2: 128 threads
    {128, 16, 4, 4, 16, 4},  // 3: 128 threads
    {128, 8, 2, 4, 8, 4},    // 4: 128 threads
    {128, 4, 1, 4, 8, 4},    // 5: 128 threads (tiny channel counts: gather-bound)
    {128, 2, 1, 2, 8, 4},    // 6
    {128, 1, 1, 1, 8, 4},    // 7: C/groups = 1 (layer a backward-data), depthwise forward
};
// Rows are filter taps (c, r, s), columns output channels (backward_weight).
constexpr Tile kWeightTiles[] = {
    {64, 64, 8, 4, 16, 4},   // 0: 128 threads
    {64, 128, 8, 8, 8, 4},   // 1: 128 threads
    {64, 32, 8, 4, 16, 4},   // 2: 64 threads
    {32, 32, 4, 4, 16, 4},   // 3: 64 threads
    {4, 32, 1, 4, 16, 4},    // 4: 32 threads (C*R*S = 25 and the like)
    {32, 1, 1, 1, 16, 4},    // 5: 32 threads (depthwise: one output channel per group)
};
constexpr int kPixelTileCount = sizeof(kPixelTiles) / sizeof(kPixelTiles[0]);
constexpr int kWeightTileCount = sizeof(kWeightTiles) / sizeof(kWeightTiles[0]);
// The int64 index path (tensors of 2^30 elements or more) instantiates one tile per pass.
constexpr int kPixelTileInt64 = 2, kWeightTileInt64 = 0;

constexpr double kMinTileEfficiency = 0.85;
constexpr index_t kMaxGridZ = 65535, kMaxGridY = 65535;

inline index_t ceil_div(index_t a, index_t b) { return (a + b - 1) / b; }

inline const Tile& tile_of(ConvPass pass, int id) {
  return pass == ConvPass::backward_weight ? kWeightTiles[id] : kPixelTiles[id];
}

// ------------------------------------------------------------------------- stride phases
// Backward-data phase (ρh, ρw): input rows h = ρh + i*sh. Filter rows r reach an output row when
// r*dh == h + ph (mod sh): r = r0 + j*rstep, j < nr; the output row is p = i + pbase - j*pstep.
struct PhaseAxis {
  index_t count;       // Hs: input rows of this phase
  index_t r0, rstep;   // first tap, tap step
  index_t nr;          // taps of this phase (0: every gradient of the phase is zero)
  index_t pbase, pstep;
};

inline PhaseAxis phase_axis(index_t rho, index_t size, index_t stride, index_t pad, index_t dil, index_t taps) {
  PhaseAxis a{};
  a.count = rho < size ? (size - rho + stride - 1) / stride : 0;
  const index_t want = (rho + pad) % stride;
  a.rstep = stride / std::gcd(stride, dil);
  a.r0 = taps;  // none yet
  for (index_t r = 0; r < taps && r < a.rstep; ++r)
    if ((r * dil) % stride == want) {
      a.r0 = r;
      break;
    }
  a.nr = a.r0 < taps ? (taps - 1 - a.r0) / a.rstep + 1 : 0;
  a.pbase = a.nr ? (rho + pad - a.r0 * dil) / stride : 0;  // exact: the numerator is a multiple of stride
  a.pstep = a.rstep * dil / stride;
  return a;
}

// ------------------------------------------------------------------ backward-weight splits
// How many ways backward_weight splits its reduction over N*P*Q: enough blocks to fill a large GPU
// (~1024 of a reference 64 x 64 tile), each split at least 512 terms long, at most 256 splits. A
// function of the shape only, so the summation order is the same on every device and tile.
inline index_t weight_splits(const Conv2dShape& s) {
  const index_t kred = s.N * s.P * s.Q;
  if (kred <= 0) return 1;
  const index_t Kg = s.K / s.groups, crs = (s.C / s.groups) * s.R * s.S;
  const index_t tiles = ceil_div(Kg, 64) * ceil_div(crs, 64) * s.groups;
  index_t splits = ceil_div(1024, tiles);
  const index_t by_length = kred / 512 > 1 ? kred / 512 : 1;
  splits = std::min({splits, by_length, index_t(256)});
  return splits > 1 ? splits : 1;
}

// Bias gradient: partial sums over chunks of about 8192 of the N*P*Q terms of a channel, at most
// 64 chunks, then a second pass adds them in chunk order. A function of the shape only.
inline index_t bias_splits(const Conv2dShape& s) {
  const index_t per_channel = s.N * s.P * s.Q;
  return std::clamp<index_t>(ceil_div(per_channel, 8192), 1, 64);
}

// Workspace floats of backward_weight: split partial sums of grad_w, then (8-byte aligned) the
// bias partials as doubles.
inline index_t weight_workspace_floats(const Conv2dShape& s, index_t splits, index_t bsplits) {
  const index_t w_count = s.K * (s.C / s.groups) * s.R * s.S;
  const index_t wpart = splits > 1 ? splits * w_count : 0;
  const index_t bpart = bsplits > 1 ? 2 * bsplits * s.K : 0;
  return (wpart + 1) / 2 * 2 + bpart;
}

// ------------------------------------------------------------------------- the choice
using Device = DeviceProfile;

struct Plan {
  ConvPass pass = ConvPass::forward;
  int tile = 0;                   // index into kPixelTiles / kWeightTiles
  index_t M = 0, N = 0;           // GEMM rows and columns (rows: the largest phase for backward_data)
  index_t grid_x = 0, grid_y = 0, grid_z = 0;  // launched grid (z as launched, capped at kMaxGridZ)
  index_t z_count = 0;            // sub-problems (groups x phases / groups x splits)
  index_t blocks = 0;             // blocks that do work (all sub-problems)
  index_t splits = 1, bias_splits = 1;
  double useful_flops = 0, issued_flops = 0;
  double efficiency() const { return issued_flops > 0 ? useful_flops / issued_flops : 1.0; }
  int blocks_per_sm = 0;          // modelled (launch bounds, threads, shared memory)
  double waves = 0;               // blocks / (sms * blocks_per_sm)
  double model_seconds = 0;
};

// Blocks per SM guaranteed by the tile's launch bounds (the register cap they impose), threads and
// shared memory. ptxas may use fewer registers, so a GPU can fit more; benchmarks/cuda_plan.py
// prints both.
inline int blocks_per_sm(const Tile& t, const Device& dev) {
  const int by_threads = dev.max_threads_per_sm / t.threads();
  const int by_smem = dev.smem_per_sm / (t.smem_bytes() + 1024);  // 1 KiB reserved per block
  return std::max(1, std::min({by_threads, by_smem, dev.max_blocks_per_sm, std::max(t.min_blocks, 1)}));
}

// Modelled seconds for `blocks` blocks of the tile, each `work` FMAs (issued, padding included):
// the busiest SM runs ceil(blocks / sms) of them at a rate that grows with resident threads (up
// to 512) and with the thread tile's FMAs per shared load, tm*tn / (tm + tn) (4 for 8 x 8).
inline double model_seconds(const Tile& t, const Device& dev, index_t blocks, double work) {
  if (blocks <= 0) return 0;
  const double per_sm = static_cast<double>(ceil_div(blocks, dev.sms));
  const double resident = std::min<double>(per_sm, blocks_per_sm(t, dev)) * t.threads();
  const double intensity = std::min(1.0, (t.tm * t.tn) / double(t.tm + t.tn) / 4.0);
  const double rate = 128 * 1.7e9 * std::min(1.0, resident / 512.0) * std::max(intensity, 0.125);
  return per_sm * work / rate + 1e-6 * per_sm / blocks_per_sm(t, dev) * 0.5;  // + a block-start cost per wave
}

// Fills the counts of one (pass, tile) plan. Useful FLOPs: the implicit GEMM's own multiply-adds
// (for backward_data the taps of every phase, so the zero taps of a strided pass do not count as
// useful); issued: what the launched tiles compute, padding included.
inline Plan evaluate(const Conv2dShape& s, ConvPass pass, int tile_id, const Device& dev) {
  const Tile& t = tile_of(pass, tile_id);
  Plan p;
  p.pass = pass;
  p.tile = tile_id;
  const index_t G = s.groups, Kg = s.K / G, Cg = s.C / G;
  double useful = 0, issued = 0, block_work = 0;
  index_t blocks = 0, max_rows = 0;
  if (pass == ConvPass::forward) {
    const index_t M = s.N * s.P * s.Q, kred = Cg * s.R * s.S;
    max_rows = M;
    p.N = Kg;
    p.z_count = G;
    const index_t tiles = ceil_div(M, t.bm) * ceil_div(Kg, t.bn);
    blocks = tiles * G;
    useful = double(M) * Kg * kred * G;
    issued = double(tiles) * t.bm * t.bn * kred * G;
  } else if (pass == ConvPass::backward_data) {
    p.N = Cg;
    p.z_count = G * s.stride_h * s.stride_w;
    for (index_t rh = 0; rh < s.stride_h; ++rh) {
      const PhaseAxis ah = phase_axis(rh, s.H, s.stride_h, s.pad_h, s.dil_h, s.R);
      for (index_t rw = 0; rw < s.stride_w; ++rw) {
        const PhaseAxis aw = phase_axis(rw, s.W, s.stride_w, s.pad_w, s.dil_w, s.S);
        const index_t M = s.N * ah.count * aw.count, kred = Kg * ah.nr * aw.nr;
        max_rows = std::max(max_rows, M);
        const index_t tiles = ceil_div(M, t.bm) * ceil_div(Cg, t.bn);
        blocks += tiles * G;
        useful += double(M) * Cg * kred * G;
        issued += double(tiles) * t.bm * t.bn * kred * G;
      }
    }
  } else {
    const index_t M = Cg * s.R * s.S, kred = s.N * s.P * s.Q;
    p.splits = weight_splits(s);
    p.bias_splits = bias_splits(s);
    max_rows = M;
    p.N = Kg;
    p.z_count = G * p.splits;
    const index_t tiles = ceil_div(M, t.bm) * ceil_div(Kg, t.bn);
    blocks = tiles * p.z_count;
    useful = double(M) * Kg * kred * G;
    issued = double(tiles) * t.bm * t.bn * kred * G;  // splits cover the reduction once
  }
  p.M = max_rows;
  p.grid_x = ceil_div(max_rows, t.bm);
  p.grid_y = ceil_div(p.N, t.bn);
  p.grid_z = std::min(p.z_count, kMaxGridZ);
  p.blocks = blocks;
  p.useful_flops = 2 * useful;
  p.issued_flops = 2 * issued;
  p.blocks_per_sm = blocks_per_sm(t, dev);
  p.waves = double(blocks) / (double(dev.sms) * p.blocks_per_sm);
  block_work = blocks > 0 ? issued / double(blocks) : 0;
  p.model_seconds = model_seconds(t, dev, blocks, block_work);
  return p;
}

// The tile for this shape and pass (int32 index path; the int64 path has one tile per pass).
inline Plan choose(const Conv2dShape& s, ConvPass pass, const Device& dev) {
  const int count = pass == ConvPass::backward_weight ? kWeightTileCount : kPixelTileCount;
  Plan best, best_any;
  bool have = false, have_any = false;
  for (int id = 0; id < count; ++id) {
    const Plan p = evaluate(s, pass, id, dev);
    if (!have_any || p.model_seconds < best_any.model_seconds) best_any = p, have_any = true;
    if (p.efficiency() >= kMinTileEfficiency && (!have || p.model_seconds < best.model_seconds)) best = p, have = true;
  }
  return have ? best : best_any;
}

inline const char* pass_name(ConvPass pass) {
  return pass == ConvPass::forward ? "forward" : pass == ConvPass::backward_data ? "backward_data" : "backward_weight";
}

inline std::string tile_name(ConvPass pass, int id) {
  const Tile& t = tile_of(pass, id);
  return std::to_string(t.bm) + "x" + std::to_string(t.bn) + " (thread " + std::to_string(t.tm) + "x" +
         std::to_string(t.tn) + ", k" + std::to_string(t.bk) + ", " + std::to_string(t.threads()) + " threads)";
}

}  // namespace fastlayers::cuda::conv_plan
