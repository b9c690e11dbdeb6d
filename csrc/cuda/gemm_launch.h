// SGEMM dispatch: a plan (gemm_plan.h) turned into launches of the kernels of gemm_kernels.cuh
// through a launcher L (launch_grid.h): gemm.cu launches on a CUDA stream, the host emulation runs
// the same code on host threads. L: operator()(const char* op, Grid, int threads, kernel, args...).
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

#include "cuda/gemm_kernels.cuh"
#include "cuda/launch.h"
#include "cuda/launch_grid.h"

namespace fastlayers::cuda::gemm_dispatch {

using gemm_plan::Plan;

struct GemmArgs {
  bool ta, tb;
  index_t M, N, K;
  float alpha;
  const float* A;
  index_t lda;
  const float* B;
  index_t ldb;
  float beta;
  float* C;
  index_t ldc;
};

inline bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

inline unsigned grid_x_of(index_t tiles, index_t splits) {
  // Tiles on gridDim.x (up to 2^31 - 1), splits on y.
  if (tiles > 2147483647LL || splits > 65535)
    throw std::runtime_error("fastlayers.sgemm: the problem needs more than 2^31 - 1 tiles");
  return static_cast<unsigned>(tiles);
}

template <class L>
void reduce_splits(L& launch, const float* partial, index_t splits, index_t M, index_t N, float alpha, float beta,
                   float* C, index_t ldc, bool trans_c) {
  launch("sgemm (split-K sum)", Grid{grid_for(M * N), 1, 1}, kThreadsPerBlock, &detail::splitk_reduce, partial,
         splits, M, N, alpha, beta, C, ldc, trans_c);
}

template <int TILE, bool TA, bool TB, class L>
void launch_warp_t(L& launch, const GemmArgs& g, const Plan& p, float* ws) {
  constexpr gemm_plan::WarpTile w = gemm_plan::kWarpTiles[TILE];
  const index_t tiles_n = (g.N + w.bn - 1) / w.bn;
  const Grid grid{grid_x_of((g.M + w.bm - 1) / w.bm * tiles_n, p.splits), static_cast<unsigned>(p.splits), 1};
  // float4 loads need 16-byte aligned rows: base pointers aligned and leading dimensions % 4.
  const bool vec = aligned16(g.A) && aligned16(g.B) && g.lda % 4 == 0 && g.ldb % 4 == 0;
  const bool vec_c = aligned16(g.C) && g.ldc % 4 == 0;
  float* partial = p.splits > 1 ? ws : nullptr;
  if (vec)
    launch("sgemm", grid, w.threads(), &detail::sgemm_warp<w.bm, w.bn, w.bk, w.wm, w.wn, w.tm, w.tn, TA, TB, true, w.min_blocks>,
           g.M, g.N, g.K, g.alpha, g.A, g.lda, g.B, g.ldb, g.beta, g.C, g.ldc, tiles_n, vec_c, p.k_chunk, partial);
  else
    launch("sgemm", grid, w.threads(), &detail::sgemm_warp<w.bm, w.bn, w.bk, w.wm, w.wn, w.tm, w.tn, TA, TB, false, w.min_blocks>,
           g.M, g.N, g.K, g.alpha, g.A, g.lda, g.B, g.ldb, g.beta, g.C, g.ldc, tiles_n, vec_c, p.k_chunk, partial);
  if (partial) reduce_splits(launch, partial, p.splits, g.M, g.N, g.alpha, g.beta, g.C, g.ldc, false);
}

template <int TILE, class L>
void launch_warp(L& launch, const GemmArgs& g, const Plan& p, float* ws) {
  if (!g.ta && !g.tb) launch_warp_t<TILE, false, false>(launch, g, p, ws);
  else if (!g.ta && g.tb) launch_warp_t<TILE, false, true>(launch, g, p, ws);
  else if (g.ta && !g.tb) launch_warp_t<TILE, true, false>(launch, g, p, ws);
  else launch_warp_t<TILE, true, true>(launch, g, p, ws);
}

template <bool TA, bool TB, int TPR, bool TRANS, class L>
void launch_narrow_t(L& launch, const GemmArgs& g, const Plan& p, float* partial) {
  constexpr int rows = gemm_plan::kNarrowThreads / TPR;
  const Grid grid{grid_x_of((g.M + rows - 1) / rows, p.splits), static_cast<unsigned>(p.splits), 1};
  launch("sgemm", grid, gemm_plan::kNarrowThreads, &detail::sgemm_narrow<TA, TB, TPR, TRANS>, g.M, g.N, g.K, g.alpha,
         g.A, g.lda, g.B, g.ldb, g.beta, g.C, g.ldc, p.k_chunk, partial);
}

// g: the problem the kernel sees (operands swapped when p.transposed), N <= kNarrowMaxN.
template <bool TA, bool TB, class L>
void launch_narrow_flags(L& launch, const GemmArgs& g, const Plan& p, float* partial) {
  if (p.tpr == 1 && !p.transposed) launch_narrow_t<TA, TB, 1, false>(launch, g, p, partial);
  else if (p.tpr == 1) launch_narrow_t<TA, TB, 1, true>(launch, g, p, partial);
  else if (!p.transposed) launch_narrow_t<TA, TB, 2, false>(launch, g, p, partial);
  else launch_narrow_t<TA, TB, 2, true>(launch, g, p, partial);
}

template <class L>
void launch_narrow_block(L& launch, const GemmArgs& g, const Plan& p, float* ws) {
  float* partial = p.splits > 1 ? ws : nullptr;
  if (!g.ta && !g.tb) launch_narrow_flags<false, false>(launch, g, p, partial);
  else if (!g.ta && g.tb) launch_narrow_flags<false, true>(launch, g, p, partial);
  else if (g.ta && !g.tb) launch_narrow_flags<true, false>(launch, g, p, partial);
  else launch_narrow_flags<true, true>(launch, g, p, partial);
  if (partial) reduce_splits(launch, partial, p.splits, g.M, g.N, g.alpha, g.beta, g.C, g.ldc, p.transposed);
}

// C = op(A) op(B) by the narrow kernel. Transposed, it computes C^T = op(B)^T op(A)^T: the
// kernel's A is B (transposed when B was not), its B is A, and it stores C transposed. Columns
// past kNarrowMaxN (a forced narrow path on a wide problem) run as further launches on column
// blocks (one after the other on the stream, so they can share the workspace).
template <class L>
void launch_narrow(L& launch, const GemmArgs& g, const Plan& p, float* ws) {
  GemmArgs k = g;
  if (p.transposed) {
    k.ta = !g.tb, k.tb = !g.ta;
    k.M = g.N, k.N = g.M;
    k.A = g.B, k.lda = g.ldb, k.B = g.A, k.ldb = g.lda;
  }
  const index_t n_all = k.N;
  for (index_t j0 = 0; j0 < n_all; j0 += gemm_plan::kNarrowMaxN) {
    GemmArgs b = k;
    b.N = n_all - j0 < gemm_plan::kNarrowMaxN ? n_all - j0 : gemm_plan::kNarrowMaxN;
    b.B = k.tb ? k.B + j0 * k.ldb : k.B + j0;          // columns j0.. of the kernel's op(B)
    b.C = p.transposed ? g.C + j0 * g.ldc : g.C + j0;  // rows (transposed) or columns j0.. of C
    launch_narrow_block(launch, b, p, ws);
  }
}

// The plan for `path` with `splits` (0: the plan's choice), cut to the workspace given: the most
// splits that fit (same kernel), else none.
inline Plan plan_for(int path, index_t splits, index_t M, index_t N, index_t K, const float* ws, index_t ws_floats,
                     const DeviceProfile& dev) {
  Plan p = gemm_plan::choose(path, M, N, K, splits, dev);
  if (p.splits > 1 && (ws == nullptr || p.workspace_floats() > ws_floats)) {
    const index_t fit = ws == nullptr ? 1 : ws_floats / (p.M * p.N);
    p = gemm_plan::choose(p.path, M, N, K, fit > 1 ? (fit < p.splits ? fit : p.splits) : 1, dev);
    if (p.splits > 1 && (ws == nullptr || p.workspace_floats() > ws_floats)) p = gemm_plan::choose(p.path, M, N, K, 1, dev);
  }
  return p;
}

// The whole of sgemm_path after the argument checks: K == 0 scaling, the reference kernel, or the plan.
template <class L>
void run(L& launch, int path, index_t splits, const GemmArgs& g, float* ws, index_t ws_floats,
         const DeviceProfile& dev) {
  if (g.M <= 0 || g.N <= 0) return;
  if (g.K <= 0) {
    launch("sgemm", Grid{grid_for(g.M * g.N), 1, 1}, kThreadsPerBlock, &detail::scale_matrix_kernel, g.M, g.N, g.beta,
           g.C, g.ldc);
    return;
  }
  if (path == gemm_plan::kReference) {
    launch("sgemm", Grid{grid_for(g.M * g.N), 1, 1}, kThreadsPerBlock, &detail::sgemm_reference_kernel, g.ta, g.tb,
           g.M, g.N, g.K, g.alpha, g.A, g.lda, g.B, g.ldb, g.beta, g.C, g.ldc);
    return;
  }
  const Plan p = plan_for(path, splits, g.M, g.N, g.K, ws, ws_floats, dev);
  switch (p.path) {
    case gemm_plan::kTile128: launch_warp<0>(launch, g, p, ws); break;
    case gemm_plan::kTile64: launch_warp<1>(launch, g, p, ws); break;
    case gemm_plan::kTile32: launch_warp<2>(launch, g, p, ws); break;
    case gemm_plan::kTile16x64: launch_warp<3>(launch, g, p, ws); break;
    case gemm_plan::kTile16x8: launch_warp<4>(launch, g, p, ws); break;
    case gemm_plan::kNarrow: launch_narrow(launch, g, p, ws); break;
    default: throw std::logic_error("fastlayers.sgemm: the plan chose no kernel");
  }
}

}  // namespace fastlayers::cuda::gemm_dispatch
