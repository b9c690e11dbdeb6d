// 2-D pooling on the GPU. Every kernel is a grid-stride loop with one thread per output cell
// (forward) or per input cell (backward: a gather over the windows that contain the cell, in
// row-major window order, so each cell is written once, deterministically, in the CPU's summation
// order). The max-pool backward never recomputes an argmax per input cell: from saved indices it is
// one gather that reads grad_out and the indices once (bandwidth-bound); from x, windows that tile the
// input take a single pass (a thread per window finds its winner once and writes its rectangle), any
// other geometry writes the winners to a caller-owned int64 workspace first (one argmax per window)
// and then runs the same gather.
//
// Index type: the kernels are templated on I. When every element index and geometry value of the
// call fits in 30 bits (the usual case) they run with int32 (integer division is several times
// cheaper in 32 bits); otherwise with int64. The 2^30 bound leaves room for the sums the kernels form
// (window ends, grid-stride steps) without overflow.
#include <cstdint>

#include "cuda/check.h"
#include "cuda/launch.h"
#include "cuda/pool.h"
#include "cuda/pool_kernels.cuh"

namespace fastlayers::cuda {
namespace {

using namespace pool_detail;

constexpr index_t kInt32Limit = index_t(1) << 30;

bool fits_int32(const Pool2dGeometry& g) {
  const index_t l = kInt32Limit;
  return g.planes * g.h * g.w < l && g.planes * g.oh * g.ow < l && g.h + 2 * g.ph < l && g.w + 2 * g.pw < l &&
         g.sh < l && g.sw < l && g.ekh() < l && g.ekw() < l && g.oh - 1 <= (l - 1) / g.sh &&
         g.ow - 1 <= (l - 1) / g.sw;  // (oh-1)*sh: the last window's start
}

bool fits_int32(const AdaptivePool2dGeometry& g) {
  const index_t l = kInt32Limit;
  // The window bounds form (i+1)*h and (r+1)*oh: h*oh < 2^62 (the op's bound), so these cannot overflow.
  return g.planes * g.h * g.w < l && g.planes * g.oh * g.ow < l && (g.h + 1) * (g.oh + 1) < l &&
         (g.w + 1) * (g.ow + 1) < l;
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

// Runs `launch(Geo<I>, I n)` with the narrowest safe index type.
template <class Launch>
void dispatch(const Pool2dGeometry& g, index_t n, Launch launch) {
  if (fits_int32(g))
    launch(narrow<std::int32_t>(g), static_cast<std::int32_t>(n));
  else
    launch(narrow<std::int64_t>(g), static_cast<std::int64_t>(n));
}

template <class Launch>
void dispatch(const AdaptivePool2dGeometry& g, index_t n, Launch launch) {
  if (fits_int32(g))
    launch(narrow_adaptive<std::int32_t>(g), static_cast<std::int32_t>(n));
  else
    launch(narrow_adaptive<std::int64_t>(g), static_cast<std::int64_t>(n));
}

template <class G>
index_t out_count(const G& g) { return g.planes * g.oh * g.ow; }
template <class G>
index_t in_count(const G& g) { return g.planes * g.h * g.w; }

}  // namespace

// ----------------------------------------------------------------------------------------- max

void max_pool2d_forward(const float* x, float* y, std::int64_t* indices, const Pool2dGeometry& g,
                        cudaStream_t stream) {
  const index_t n = out_count(g);
  if (n == 0) return;
  dispatch(g, n, [&](auto geo, auto count) {
    max_forward_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(x, y, indices, geo, count);
  });
  check_launch("max_pool2d");
}

void max_pool2d_backward_indices(const float* grad_out, const std::int64_t* indices, float* grad_in,
                                 const Pool2dGeometry& g, cudaStream_t stream) {
  const index_t n = in_count(g);
  if (n == 0) return;
  dispatch(g, n, [&](auto geo, auto count) {
    max_backward_indices_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(grad_out, indices, grad_in, geo,
                                                                               count);
  });
  check_launch("max_pool2d_backward");
}

void max_pool2d_backward(const float* grad_out, const float* x, float* grad_in, std::int64_t* workspace,
                         const Pool2dGeometry& g, cudaStream_t stream) {
  if (in_count(g) == 0) return;
  if (g.tiled()) {
    const index_t n = out_count(g);
    dispatch(g, n, [&](auto geo, auto count) {
      max_backward_tiled_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(grad_out, x, grad_in, geo, count);
    });
    check_launch("max_pool2d_backward");
    return;
  }
  max_pool2d_forward(x, nullptr, workspace, g, stream);
  max_pool2d_backward_indices(grad_out, workspace, grad_in, g, stream);
}

// ----------------------------------------------------------------------------------------- avg

void avg_pool2d_forward(const float* x, float* y, const Pool2dGeometry& g, bool count_include_pad,
                        double divisor_override, cudaStream_t stream) {
  const index_t n = out_count(g);
  if (n == 0) return;
  const float div = static_cast<float>(divisor_override);
  dispatch(g, n, [&](auto geo, auto count) {
    avg_forward_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(x, y, geo, count, count_include_pad, div);
  });
  check_launch("avg_pool2d");
}

void avg_pool2d_backward(const float* grad_out, float* grad_in, const Pool2dGeometry& g, bool count_include_pad,
                         double divisor_override, cudaStream_t stream) {
  const index_t n = in_count(g);
  if (n == 0) return;
  const float div = static_cast<float>(divisor_override);
  dispatch(g, n, [&](auto geo, auto count) {
    avg_backward_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(grad_out, grad_in, geo, count,
                                                                       count_include_pad, div);
  });
  check_launch("avg_pool2d_backward");
}

// ------------------------------------------------------------------------------------------ lp

void lp_pool2d_forward(const float* x, float* y, const Pool2dGeometry& g, double p, cudaStream_t stream) {
  const index_t n = out_count(g);
  if (n == 0) return;
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

// ------------------------------------------------------------------------------------ adaptive

void adaptive_avg_pool2d_forward(const float* x, float* y, const AdaptivePool2dGeometry& g, cudaStream_t stream) {
  const index_t n = out_count(g);
  if (n == 0) return;
  dispatch(g, n, [&](auto geo, auto count) {
    adaptive_avg_forward_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(x, y, geo, count);
  });
  check_launch("adaptive_avg_pool2d");
}

void adaptive_avg_pool2d_backward(const float* grad_out, float* grad_in, const AdaptivePool2dGeometry& g,
                                  cudaStream_t stream) {
  const index_t n = in_count(g);
  if (n == 0 || g.oh == 0 || g.ow == 0) return;
  dispatch(g, n, [&](auto geo, auto count) {
    adaptive_avg_backward_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(grad_out, grad_in, geo, count);
  });
  check_launch("adaptive_avg_pool2d_backward");
}

void adaptive_max_pool2d_forward(const float* x, float* y, std::int64_t* indices, const AdaptivePool2dGeometry& g,
                                 cudaStream_t stream) {
  const index_t n = out_count(g);
  if (n == 0) return;
  dispatch(g, n, [&](auto geo, auto count) {
    adaptive_max_forward_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(x, y, indices, geo, count);
  });
  check_launch("adaptive_max_pool2d");
}

void adaptive_max_pool2d_backward_indices(const float* grad_out, const std::int64_t* indices, float* grad_in,
                                          const AdaptivePool2dGeometry& g, cudaStream_t stream) {
  const index_t n = in_count(g);
  if (n == 0 || g.oh == 0 || g.ow == 0) return;
  dispatch(g, n, [&](auto geo, auto count) {
    adaptive_max_backward_indices_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(grad_out, indices, grad_in,
                                                                                        geo, count);
  });
  check_launch("adaptive_max_pool2d_backward");
}

void adaptive_max_pool2d_backward(const float* grad_out, const float* x, float* grad_in, std::int64_t* workspace,
                                  const AdaptivePool2dGeometry& g, cudaStream_t stream) {
  if (in_count(g) == 0 || g.oh == 0 || g.ow == 0) return;
  adaptive_max_pool2d_forward(x, nullptr, workspace, g, stream);
  adaptive_max_pool2d_backward_indices(grad_out, workspace, grad_in, g, stream);
}

// -------------------------------------------------------------------------------------- unpool

void max_unpool2d_forward(const float* x, const std::int64_t* indices, float* y, index_t planes, index_t in_hw,
                          index_t out_hw, cudaStream_t stream) {
  if (planes * out_hw == 0) return;
  check(cudaMemsetAsync(y, 0, sizeof(float) * static_cast<size_t>(planes * out_hw), stream), "max_unpool2d");
  const index_t n = planes * in_hw;
  if (n == 0) return;
  if (n < kInt32Limit && planes * out_hw < kInt32Limit)
    max_unpool_forward_kernel<std::int32_t><<<grid_for(n), kThreadsPerBlock, 0, stream>>>(
        x, indices, y, static_cast<std::int32_t>(in_hw), static_cast<std::int32_t>(out_hw),
        static_cast<std::int32_t>(n));
  else
    max_unpool_forward_kernel<std::int64_t><<<grid_for(n), kThreadsPerBlock, 0, stream>>>(x, indices, y, in_hw,
                                                                                           out_hw, n);
  check_launch("max_unpool2d");
}

void max_unpool2d_backward(const float* grad_out, const std::int64_t* indices, float* grad_x, index_t planes,
                           index_t in_hw, index_t out_hw, cudaStream_t stream) {
  const index_t n = planes * in_hw;
  if (n == 0) return;
  if (n < kInt32Limit && planes * out_hw < kInt32Limit)
    max_unpool_backward_kernel<std::int32_t><<<grid_for(n), kThreadsPerBlock, 0, stream>>>(
        grad_out, indices, grad_x, static_cast<std::int32_t>(in_hw), static_cast<std::int32_t>(out_hw),
        static_cast<std::int32_t>(n));
  else
    max_unpool_backward_kernel<std::int64_t><<<grid_for(n), kThreadsPerBlock, 0, stream>>>(grad_out, indices,
                                                                                            grad_x, in_hw, out_hw, n);
  check_launch("max_unpool2d_backward");
}

// -------------------------------------------------------------------------------------- global

void global_avg_pool2d_forward(const float* x, float* y, index_t planes, index_t hw, cudaStream_t stream) {
  if (planes == 0 || hw == 0) return;
  global_avg_forward_kernel<<<grid_for(planes * 32), kThreadsPerBlock, 0, stream>>>(x, y, planes, hw);
  check_launch("global_avg_pool2d");
}

void global_avg_pool2d_backward(const float* grad_out, float* grad_in, index_t planes, index_t hw,
                                cudaStream_t stream) {
  const index_t n = planes * hw;
  if (n == 0) return;
  if (n < kInt32Limit)
    global_avg_backward_kernel<std::int32_t><<<grid_for(n), kThreadsPerBlock, 0, stream>>>(
        grad_out, grad_in, static_cast<std::int32_t>(hw), static_cast<std::int32_t>(n));
  else
    global_avg_backward_kernel<std::int64_t><<<grid_for(n), kThreadsPerBlock, 0, stream>>>(grad_out, grad_in,
                                                                                            hw, n);
  check_launch("global_avg_pool2d_backward");
}

}  // namespace fastlayers::cuda
