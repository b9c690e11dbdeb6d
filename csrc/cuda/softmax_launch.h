// Softmax dispatch (kernels: softmax_kernels.cuh) through a launcher L (launch_grid.h): softmax.cu
// launches on a CUDA stream, the host emulation runs the same code on host threads.
#pragma once
#include <cstdint>
#include <type_traits>

#include "cuda/launch.h"
#include "cuda/launch_grid.h"
#include "cuda/softmax_kernels.cuh"

namespace fastlayers::cuda::softmax_dispatch {

using namespace detail;

inline bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }
inline unsigned capped(index_t blocks) {
  const index_t cap = 65535LL * 8;
  return static_cast<unsigned>(blocks < cap ? blocks : cap);
}

// Values per lane of the warp kernels: the smallest power of two with 32 * VPT >= dim.
inline int values_per_lane(index_t dim) {
  int v = 1;
  while (32 * v < dim) v *= 2;
  return v;
}

template <bool LOG, int VPT, bool VEC, class L>
void forward_warp(L& launch, const float* x, float* y, index_t rows, index_t dim, const char* op) {
  launch(op, Grid{capped((rows + kSoftmaxWarpsPerBlock - 1) / kSoftmaxWarpsPerBlock), 1, 1}, kSoftmaxWarpsPerBlock * 32,
         &softmax_forward_warp<LOG, VPT, VEC>, x, y, rows, dim);
}
template <bool LOG, int VPT, bool VEC, class L>
void backward_warp(L& launch, const float* g, const float* y, float* gx, index_t rows, index_t dim, const char* op) {
  launch(op, Grid{capped((rows + kSoftmaxWarpsPerBlock - 1) / kSoftmaxWarpsPerBlock), 1, 1}, kSoftmaxWarpsPerBlock * 32,
         &softmax_backward_warp<LOG, VPT, VEC>, g, y, gx, rows, dim);
}

// Calls fn(integral_constant VPT, integral_constant VEC) for the warp kernel of this row length.
template <class F>
void with_warp_shape(index_t dim, bool vec, F&& fn) {
  switch (values_per_lane(dim)) {
    case 1: fn(std::integral_constant<int, 1>{}, std::false_type{}); break;
    case 2: fn(std::integral_constant<int, 2>{}, std::false_type{}); break;
    case 4: vec ? fn(std::integral_constant<int, 4>{}, std::true_type{}) : fn(std::integral_constant<int, 4>{}, std::false_type{}); break;
    case 8: vec ? fn(std::integral_constant<int, 8>{}, std::true_type{}) : fn(std::integral_constant<int, 8>{}, std::false_type{}); break;
    case 16: vec ? fn(std::integral_constant<int, 16>{}, std::true_type{}) : fn(std::integral_constant<int, 16>{}, std::false_type{}); break;
    default: vec ? fn(std::integral_constant<int, 32>{}, std::true_type{}) : fn(std::integral_constant<int, 32>{}, std::false_type{}); break;
  }
}

template <bool LOG, class L>
void forward(L& launch, const float* x, float* y, index_t outer, index_t dim, index_t inner, const char* op) {
  if (outer <= 0 || dim <= 0 || inner <= 0) return;
  const bool vec = dim % 4 == 0 && aligned16(x) && aligned16(y);
  if (inner == 1 && dim <= kThreadRowMaxDim) {  // a thread per row, staged through shared memory
    launch(op, Grid{capped((outer + kStagedRows - 1) / kStagedRows), 1, 1}, kStagedRows,
           &softmax_forward_rows_staged<LOG>, x, y, outer, dim);
  } else if (inner == 1 && dim <= kWarpMaxDim) {
    with_warp_shape(dim, vec, [&](auto vpt, auto v) { forward_warp<LOG, decltype(vpt)::value, decltype(v)::value>(launch, x, y, outer, dim, op); });
  } else if (inner == 1) {
    if (vec)
      launch(op, Grid{capped(outer), 1, 1}, kSoftmaxBlockThreads, &softmax_forward_block<LOG, true>, x, y, outer, dim);
    else
      launch(op, Grid{capped(outer), 1, 1}, kSoftmaxBlockThreads, &softmax_forward_block<LOG, false>, x, y, outer, dim);
  } else {
    launch(op, Grid{grid_for(outer * inner), 1, 1}, kThreadsPerBlock, &softmax_forward_strided<LOG>, x, y, outer, dim,
           inner);
  }
}

template <bool LOG, class L>
void backward(L& launch, const float* g, const float* y, float* gx, index_t outer, index_t dim, index_t inner,
              const char* op) {
  if (outer <= 0 || dim <= 0 || inner <= 0) return;
  const bool vec = dim % 4 == 0 && aligned16(g) && aligned16(y) && aligned16(gx);
  if (inner == 1 && dim <= kThreadRowMaxDim) {
    launch(op, Grid{capped((outer + kStagedRows - 1) / kStagedRows), 1, 1}, kStagedRows,
           &softmax_backward_rows_staged<LOG>, g, y, gx, outer, dim);
  } else if (inner == 1 && dim <= kWarpMaxDim) {
    with_warp_shape(dim, vec, [&](auto vpt, auto v) { backward_warp<LOG, decltype(vpt)::value, decltype(v)::value>(launch, g, y, gx, outer, dim, op); });
  } else if (inner == 1) {
    if (vec)
      launch(op, Grid{capped(outer), 1, 1}, kSoftmaxBlockThreads, &softmax_backward_block<LOG, true>, g, y, gx, outer, dim);
    else
      launch(op, Grid{capped(outer), 1, 1}, kSoftmaxBlockThreads, &softmax_backward_block<LOG, false>, g, y, gx, outer, dim);
  } else {
    launch(op, Grid{grid_for(outer * inner), 1, 1}, kThreadsPerBlock, &softmax_backward_strided<LOG>, g, y, gx, outer,
           dim, inner);
  }
}

}  // namespace fastlayers::cuda::softmax_dispatch
