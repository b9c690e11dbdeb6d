// Softmax / log-softmax kernels over a contiguous array viewed as (outer, dim, inner): the axis
// has length dim and stride inner. Same formulas as csrc/cpu/softmax.cpp: the row maximum is
// subtracted before exp (fmaxf skips NaN in the max, and a NaN then poisons the row's sum, as on
// the CPU); float accumulation.
//   *_rows_thread: one thread per (outer, inner) row; for inner > 1 neighbouring threads read
//                  neighbouring inner positions (coalesced), and for short contiguous rows.
//   *_rows_block:  one block per contiguous row (inner == 1, dim > 32), shared-memory tree
//                  reductions (blockDim a power of two), block-uniform loops.
// No launches here, so csrc/cuda/host_emulation/ can compile it with g++.
#pragma once
#include <cmath>

#include "common/types.h"

namespace fastlayers::cuda::detail {

constexpr int kSoftmaxMaxThreads = 256;

template <bool LOG>
__global__ void softmax_forward_rows_thread(const float* x, float* y, index_t outer, index_t dim,
                                            index_t inner) {
  const index_t rows = outer * inner;
  for (index_t r = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; r < rows;
       r += static_cast<index_t>(gridDim.x) * blockDim.x) {
    const index_t base = (r / inner) * dim * inner + r % inner;
    const float* xr = x + base;
    float* yr = y + base;
    float mx = -INFINITY;
    for (index_t d = 0; d < dim; ++d) mx = fmaxf(mx, xr[d * inner]);
    float s = 0.0f;
    for (index_t d = 0; d < dim; ++d) {
      const float e = expf(xr[d * inner] - mx);
      if (!LOG) yr[d * inner] = e;
      s += e;
    }
    if (LOG) {
      const float log_s = logf(s);
      for (index_t d = 0; d < dim; ++d) yr[d * inner] = (xr[d * inner] - mx) - log_s;
    } else {
      for (index_t d = 0; d < dim; ++d) yr[d * inner] /= s;
    }
  }
}

template <bool LOG>
__global__ void softmax_backward_rows_thread(const float* g, const float* y, float* gx,
                                             index_t outer, index_t dim, index_t inner) {
  const index_t rows = outer * inner;
  for (index_t r = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; r < rows;
       r += static_cast<index_t>(gridDim.x) * blockDim.x) {
    const index_t base = (r / inner) * dim * inner + r % inner;
    float s = 0.0f;
    for (index_t d = 0; d < dim; ++d)
      s += LOG ? g[base + d * inner] : g[base + d * inner] * y[base + d * inner];
    for (index_t d = 0; d < dim; ++d) {
      const index_t k = base + d * inner;
      gx[k] = LOG ? g[k] - expf(y[k]) * s : y[k] * (g[k] - s);  // log: softmax = exp(y)
    }
  }
}

// Tree reduction over the block (blockDim.x a power of two <= kSoftmaxMaxThreads); every thread
// gets the result. Ends with a barrier so `red` can be reused right away.
template <bool MAX>
__device__ float block_reduce(float v, float* red) {
  const int t = threadIdx.x;
  red[t] = v;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s /= 2) {
    if (t < s) red[t] = MAX ? fmaxf(red[t], red[t + s]) : red[t] + red[t + s];
    __syncthreads();
  }
  const float result = red[0];
  __syncthreads();
  return result;
}

template <bool LOG>
__global__ void softmax_forward_rows_block(const float* x, float* y, index_t outer, index_t dim) {
  __shared__ float red[kSoftmaxMaxThreads];
  const int t = threadIdx.x;
  for (index_t r = blockIdx.x; r < outer; r += gridDim.x) {
    const float* xr = x + r * dim;
    float* yr = y + r * dim;
    float mx = -INFINITY;
    for (index_t d = t; d < dim; d += blockDim.x) mx = fmaxf(mx, xr[d]);
    mx = block_reduce<true>(mx, red);
    float s = 0.0f;
    for (index_t d = t; d < dim; d += blockDim.x) {
      const float e = expf(xr[d] - mx);
      if (!LOG) yr[d] = e;
      s += e;
    }
    s = block_reduce<false>(s, red);
    if (LOG) {
      const float log_s = logf(s);
      for (index_t d = t; d < dim; d += blockDim.x) yr[d] = (xr[d] - mx) - log_s;
    } else {
      for (index_t d = t; d < dim; d += blockDim.x) yr[d] /= s;  // this thread wrote yr[d] above
    }
  }
}

template <bool LOG>
__global__ void softmax_backward_rows_block(const float* g, const float* y, float* gx,
                                            index_t outer, index_t dim) {
  __shared__ float red[kSoftmaxMaxThreads];
  const int t = threadIdx.x;
  for (index_t r = blockIdx.x; r < outer; r += gridDim.x) {
    const float* gr = g + r * dim;
    const float* yr = y + r * dim;
    float* o = gx + r * dim;
    float s = 0.0f;
    for (index_t d = t; d < dim; d += blockDim.x) s += LOG ? gr[d] : gr[d] * yr[d];
    s = block_reduce<false>(s, red);
    for (index_t d = t; d < dim; d += blockDim.x)
      o[d] = LOG ? gr[d] - expf(yr[d]) * s : yr[d] * (gr[d] - s);
  }
}

}  // namespace fastlayers::cuda::detail
