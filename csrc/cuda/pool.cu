// 2-D pooling on the GPU. One thread per output cell, grid-stride. Forward: a thread per output
// window. Backward: a thread per input cell that gathers from every window containing it, in
// row-major window order (the CPU's scatter order), so each cell is written once: no atomics, no
// zero-fill, deterministic. Max and Lp backward recompute the window's winner / norm from x (the
// bindings get no forward output), which costs reads that hit L1/L2, not DRAM.
//
// Index type: the kernels are templated on I. When every element index of the call fits in 30 bits
// (the usual case) they run with int32 (integer division is several times cheaper in 32 bits);
// otherwise with int64. The 2^30 bound leaves room for the grid-stride step without overflow.
#include <cstdint>

#include "cuda/check.h"
#include "cuda/launch.h"
#include "cuda/pool.h"
#include "cuda/pool_kernels.cuh"

namespace fastlayers::cuda {
namespace {

using namespace pool_detail;

// Whether int32 indices are safe for this call: every flat index, every padded extent and the strides
// stay below 2^30 (kh <= h + 2*ph, so window arithmetic stays below 2^31 too).
bool fits_int32(const Pool2dGeometry& g) {
  const index_t limit = index_t(1) << 30;
  return g.planes * g.h * g.w < limit && g.planes * g.oh() * g.ow() < limit && g.h + 2 * g.ph < limit &&
         g.w + 2 * g.pw < limit && g.sh < limit && g.sw < limit;
}

// A warp per plane: lanes stride through the plane (coalesced), double partial sums, shuffle reduce.
// The plane loop is warp-uniform, so the full-mask shuffles are safe.
__global__ void global_avg_forward_kernel(const float* __restrict__ x, float* __restrict__ y, index_t planes,
                                          index_t hw) {
  const int lane = threadIdx.x & 31;
  const index_t warp = (static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const index_t warps = static_cast<index_t>(gridDim.x) * blockDim.x / 32;
  for (index_t p = warp; p < planes; p += warps) {
    const float* plane = x + p * hw;
    double s = 0.0;
    for (index_t k = lane; k < hw; k += 32) s += plane[k];
    for (int off = 16; off > 0; off /= 2) s += __shfl_down_sync(0xffffffffu, s, off);
    if (lane == 0) y[p] = static_cast<float>(s / static_cast<double>(hw));
  }
}

// ------------------------------------------------------------------------------------ launchers

// Runs `launch.template operator()<I>(Geo<I>, I n)` with the narrowest safe index type.
template <class Launch>
void dispatch(const Pool2dGeometry& g, index_t n, Launch launch) {
  if (fits_int32(g))
    launch(narrow<std::int32_t>(g), static_cast<std::int32_t>(n));
  else
    launch(narrow<std::int64_t>(g), static_cast<std::int64_t>(n));
}

index_t out_count(const Pool2dGeometry& g) { return g.planes * g.oh() * g.ow(); }
index_t in_count(const Pool2dGeometry& g) { return g.planes * g.h * g.w; }
float full_window(const Pool2dGeometry& g) { return static_cast<float>(g.kh * g.kw); }

}  // namespace

void max_pool2d_forward(const float* x, float* y, const Pool2dGeometry& g, cudaStream_t stream) {
  const index_t n = out_count(g);
  if (n == 0 || in_count(g) == 0) return;
  dispatch(g, n, [&](auto geo, auto count) {
    max_forward_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(x, y, geo, count);
  });
  check_launch("max_pool2d");
}

void max_pool2d_backward(const float* grad_out, const float* x, float* grad_in, const Pool2dGeometry& g,
                         cudaStream_t stream) {
  const index_t n = in_count(g);
  if (n == 0) return;
  dispatch(g, n, [&](auto geo, auto count) {
    max_backward_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(grad_out, x, grad_in, geo, count);
  });
  check_launch("max_pool2d_backward");
}

void avg_pool2d_forward(const float* x, float* y, const Pool2dGeometry& g, bool count_include_pad,
                        cudaStream_t stream) {
  const index_t n = out_count(g);
  if (n == 0 || in_count(g) == 0) return;
  dispatch(g, n, [&](auto geo, auto count) {
    avg_forward_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(x, y, geo, count, full_window(g),
                                                                      count_include_pad);
  });
  check_launch("avg_pool2d");
}

void avg_pool2d_backward(const float* grad_out, float* grad_in, const Pool2dGeometry& g, bool count_include_pad,
                         cudaStream_t stream) {
  const index_t n = in_count(g);
  if (n == 0) return;
  dispatch(g, n, [&](auto geo, auto count) {
    avg_backward_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(grad_out, grad_in, geo, count,
                                                                       full_window(g), count_include_pad);
  });
  check_launch("avg_pool2d_backward");
}

void lp_pool2d_forward(const float* x, float* y, const Pool2dGeometry& g, double p, cudaStream_t stream) {
  const index_t n = out_count(g);
  if (n == 0 || in_count(g) == 0) return;
  dispatch(g, n, [&](auto geo, auto count) {
    lp_forward_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(x, y, geo, count, p);
  });
  check_launch("lp_pool2d");
}

void lp_pool2d_backward(const float* grad_out, const float* x, float* grad_in, const Pool2dGeometry& g,
                        double p, cudaStream_t stream) {
  const index_t n = in_count(g);
  if (n == 0) return;
  dispatch(g, n, [&](auto geo, auto count) {
    lp_backward_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(grad_out, x, grad_in, geo, count, p);
  });
  check_launch("lp_pool2d_backward");
}

void global_avg_pool2d_forward(const float* x, float* y, index_t planes, index_t hw, cudaStream_t stream) {
  if (planes == 0 || hw == 0) return;
  global_avg_forward_kernel<<<grid_for(planes * 32), kThreadsPerBlock, 0, stream>>>(x, y, planes, hw);
  check_launch("global_avg_pool2d");
}

void global_avg_pool2d_backward(const float* grad_out, float* grad_in, index_t planes, index_t hw,
                                cudaStream_t stream) {
  const index_t n = planes * hw;
  if (n == 0) return;
  if (n < (index_t(1) << 30))
    global_avg_backward_kernel<std::int32_t><<<grid_for(n), kThreadsPerBlock, 0, stream>>>(
        grad_out, grad_in, static_cast<std::int32_t>(hw), static_cast<std::int32_t>(n));
  else
    global_avg_backward_kernel<std::int64_t><<<grid_for(n), kThreadsPerBlock, 0, stream>>>(grad_out, grad_in,
                                                                                            hw, n);
  check_launch("global_avg_pool2d_backward");
}

}  // namespace fastlayers::cuda
