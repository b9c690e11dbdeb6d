// Convolution dispatch: index type, tile (conv_plan.h), grid, backward-weight splits and bias
// chunks, turned into launches of the kernels of conv_kernels.cuh through a launcher L
// (launch_grid.h): conv.cu launches on a CUDA stream, the host emulation runs the same code on
// host threads. L: operator()(const char* op, Grid, int threads, kernel, args...).
//
// Index type: int32 when every tensor and index of the call stays below 2^30 (integer arithmetic
// is cheaper), int64 otherwise (one tile per pass).
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

#include "common/conv_shape.h"
#include "cuda/conv_kernels.cuh"
#include "cuda/launch.h"
#include "cuda/launch_grid.h"

namespace fastlayers::cuda::conv_dispatch {

using conv_plan::ceil_div;
using conv_plan::Plan;
using namespace conv_detail;

// Whether int32 indices are safe: every tensor (workspace included), padded extent, stride and
// dilated kernel extent below 2^30, so every index the ops form (and the grid-stride steps) fits.
inline bool fits_int32(const Conv2dShape& s, index_t workspace_used) {
  const index_t lim = index_t(1) << 30;
  const index_t values[] = {s.N * s.C * s.H * s.W,
                            s.N * s.K * s.P * s.Q,
                            s.K * (s.C / s.groups) * s.R * s.S,
                            workspace_used,
                            s.H + 2 * s.pad_h,
                            s.W + 2 * s.pad_w,
                            s.stride_h * s.stride_w * s.groups,
                            s.dil_h * s.R,
                            s.dil_w * s.S,
                            s.C,
                            s.K};
  for (index_t v : values)
    if (v >= lim) return false;
  return true;
}

template <class Op, int BM, int BN, int TM, int TN, int BK, int MINB, class L>
void launch_tile(L& launch, const Op& op, const Plan& p, const char* name) {
  if (p.grid_x > 0x7fffffffLL || p.grid_y > conv_plan::kMaxGridY)
    throw std::runtime_error(std::string("fastlayers.") + name + ": the GEMM of " + std::to_string(p.M) + " x " +
                             std::to_string(p.N) + " is too large for one launch");
  const Grid grid{static_cast<unsigned>(p.grid_x), static_cast<unsigned>(p.grid_y), static_cast<unsigned>(p.grid_z)};
  launch(name, grid, (BM / TM) * (BN / TN), &conv_gemm_kernel<Op, BM, BN, TM, TN, BK, MINB>, op,
         static_cast<typename Op::Index>(p.z_count));
}

template <class Op, bool WEIGHT, int ID, class L>
void launch_id(L& launch, const Op& op, const Plan& p, const char* name) {
  constexpr conv_plan::Tile t = WEIGHT ? conv_plan::kWeightTiles[ID] : conv_plan::kPixelTiles[ID];
  launch_tile<Op, t.bm, t.bn, t.tm, t.tn, t.bk, t.min_blocks>(launch, op, p, name);
}

// The plan's tile (the int64 path instantiates only its one tile per pass).
template <class Op, bool WEIGHT, class L, int... IDS>
void launch_plan(L& launch, const Op& op, const Plan& p, const char* name, std::integer_sequence<int, IDS...>) {
  if constexpr (sizeof(typename Op::Index) == 8) {
    launch_id<Op, WEIGHT, WEIGHT ? conv_plan::kWeightTileInt64 : conv_plan::kPixelTileInt64>(launch, op, p, name);
  } else {
    bool done = false;
    ((p.tile == IDS ? (launch_id<Op, WEIGHT, IDS>(launch, op, p, name), done = true) : false), ...);
    if (!done) throw std::logic_error(std::string("fastlayers.") + name + ": unknown tile");
  }
}
template <class Op, class L>
void launch_pixels(L& launch, const Op& op, const Plan& p, const char* name) {
  launch_plan<Op, false>(launch, op, p, name, std::make_integer_sequence<int, conv_plan::kPixelTileCount>{});
}
template <class Op, class L>
void launch_weights(L& launch, const Op& op, const Plan& p, const char* name) {
  launch_plan<Op, true>(launch, op, p, name, std::make_integer_sequence<int, conv_plan::kWeightTileCount>{});
}

// tile >= 0 forces a tile of the pass's table (tests); the int64 path always runs its own.
inline Plan plan_for(const Conv2dShape& s, ConvPass pass, bool int64, int tile, const DeviceProfile& dev) {
  if (int64)
    return conv_plan::evaluate(s, pass, pass == ConvPass::backward_weight ? conv_plan::kWeightTileInt64
                                                                          : conv_plan::kPixelTileInt64, dev);
  return tile >= 0 ? conv_plan::evaluate(s, pass, tile, dev) : conv_plan::choose(s, pass, dev);
}

template <class I, class L>
void forward_impl(L& launch, const Conv2dShape& s, const float* x, const float* w, const float* b, float* y, int tile,
                  const DeviceProfile& dev) {
  const ForwardOp<I> op{x, w, b, y, dims_of<I>(s)};
  launch_pixels(launch, op, plan_for(s, ConvPass::forward, sizeof(I) == 8, tile, dev), "conv2d");
}

template <class I, class L>
void backward_data_impl(L& launch, const Conv2dShape& s, const float* go, const float* w, float* gx, int tile,
                        const DeviceProfile& dev) {
  const BackwardDataOp<I> op{go, w, gx, dims_of<I>(s)};
  launch_pixels(launch, op, plan_for(s, ConvPass::backward_data, sizeof(I) == 8, tile, dev), "conv2d_backward_data");
}

template <class I, class L>
void backward_weight_impl(L& launch, const Conv2dShape& s, const float* go, const float* x, float* gw, float* gb,
                          float* ws, index_t splits, index_t bsplits, int tile, const DeviceProfile& dev) {
  const index_t kred = s.N * s.P * s.Q, w_count = s.K * (s.C / s.groups) * s.R * s.S;
  // Each split covers a multiple of 16 reduction steps; trailing splits may be empty (they then
  // write zeros, which the sum adds).
  const index_t k_chunk = kred > 0 ? ceil_div(ceil_div(kred, splits), 16) * 16 : 16;
  const BackwardWeightOp<I> op{go, x, splits > 1 ? ws : gw, dims_of<I>(s), static_cast<I>(splits),
                               static_cast<I>(k_chunk)};
  Plan p = plan_for(s, ConvPass::backward_weight, sizeof(I) == 8, tile, dev);
  p.z_count = s.groups * splits;  // the splits this workspace allows (the plan assumed the full count)
  p.grid_z = p.z_count < conv_plan::kMaxGridZ ? p.z_count : conv_plan::kMaxGridZ;
  launch_weights(launch, op, p, "conv2d_backward_weight");
  if (splits > 1)
    launch("conv2d_backward_weight (sum of splits)", Grid{grid_for(w_count), 1, 1}, kThreadsPerBlock,
           &sum_splits_kernel<I>, ws, gw, static_cast<I>(w_count), static_cast<I>(splits));
  if (gb != nullptr && s.K > 0) {
    const bool vec = (s.P * s.Q) % 4 == 0 && reinterpret_cast<std::uintptr_t>(go) % 16 == 0;
    double* partial = nullptr;
    if (bsplits > 1) {  // after the weight partials, 8-byte aligned (conv_plan::weight_workspace_floats)
      const index_t wpart = splits > 1 ? splits * w_count : 0;
      partial = reinterpret_cast<double*>(ws + (wpart + 1) / 2 * 2);
    }
    const Grid grid{static_cast<unsigned>(s.K < 65535 * 8 ? s.K : 65535 * 8), static_cast<unsigned>(bsplits), 1};
    launch("conv2d_backward_weight (bias)", grid, kBiasThreads, &bias_partial_kernel<I>, go, partial, gb,
           static_cast<I>(s.N), static_cast<I>(s.K), static_cast<I>(s.P * s.Q), static_cast<I>(bsplits), vec);
    if (bsplits > 1)
      launch("conv2d_backward_weight (bias chunks)", Grid{grid_for(s.K), 1, 1}, kThreadsPerBlock,
             &bias_chunks_kernel<I>, static_cast<const double*>(partial), gb, static_cast<I>(s.K),
             static_cast<I>(bsplits));
  }
}

// ------------------------------------------------------------------------ the three passes

template <class L>
void forward(L& launch, const Conv2dShape& s, const float* x, const float* w, const float* b, float* y,
             const DeviceProfile& dev, int tile = -1) {
  if (s.N * s.K * s.P * s.Q == 0) return;
  if (fits_int32(s, 0))
    forward_impl<std::int32_t>(launch, s, x, w, b, y, tile, dev);
  else
    forward_impl<std::int64_t>(launch, s, x, w, b, y, tile, dev);
}

template <class L>
void backward_data(L& launch, const Conv2dShape& s, const float* go, const float* w, float* gx,
                   const DeviceProfile& dev, int tile = -1) {
  if (s.N * s.C * s.H * s.W == 0) return;
  if (fits_int32(s, 0))
    backward_data_impl<std::int32_t>(launch, s, go, w, gx, tile, dev);
  else
    backward_data_impl<std::int64_t>(launch, s, go, w, gx, tile, dev);
}

// With less workspace than conv_plan::weight_workspace_floats asks for: one bias chunk, then fewer
// splits (down to one, which needs none).
template <class L>
void backward_weight(L& launch, const Conv2dShape& s, const float* go, const float* x, float* gw, float* gb, float* ws,
                     index_t ws_floats, const DeviceProfile& dev, int tile = -1) {
  const index_t w_count = s.K * (s.C / s.groups) * s.R * s.S;
  if (w_count == 0) return;
  index_t splits = conv_plan::weight_splits(s), bsplits = conv_plan::bias_splits(s);
  if (ws == nullptr) ws_floats = 0;
  if (conv_plan::weight_workspace_floats(s, splits, bsplits) > ws_floats) {
    bsplits = 1;
    while (splits > 1 && conv_plan::weight_workspace_floats(s, splits, 1) > ws_floats)
      splits = ws_floats / w_count < splits - 1 ? ws_floats / w_count : splits - 1;
    if (splits < 1) splits = 1;
  }
  if (fits_int32(s, conv_plan::weight_workspace_floats(s, splits, bsplits)))
    backward_weight_impl<std::int32_t>(launch, s, go, x, gw, gb, ws, splits, bsplits, tile, dev);
  else
    backward_weight_impl<std::int64_t>(launch, s, go, x, gw, gb, ws, splits, bsplits, tile, dev);
}

}  // namespace fastlayers::cuda::conv_dispatch
