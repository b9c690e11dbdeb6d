// Bias kernels for the dense layer. No launches here (host emulation compiles it with g++).
#pragma once
#include "common/types.h"

namespace fastlayers::cuda::detail {

// y[r, c] += b[c] over the flat index i, grid-stride: the column i % cols is computed once per
// thread and then advanced by the stride (mod cols), no division per element.
__global__ void bias_add_rows_kernel(float* __restrict__ y, const float* __restrict__ b, index_t rows, index_t cols) {
  const index_t total = rows * cols, stride = static_cast<index_t>(gridDim.x) * blockDim.x;
  index_t i = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x;
  if (i >= total) return;
  index_t c = i % cols;
  const index_t step = stride % cols;
  for (; i < total; i += stride) {
    y[i] += b[c];
    c += step;
    if (c >= cols) c -= cols;
  }
}

// grad_b[c] = sum over r of g[r, c]. A block covers 32 columns (one per lane: a warp reads 128
// consecutive bytes of a row) with 8 warps over the rows of its chunk (grid y: row chunks of
// row_chunk rows); the 8 partial sums of a column are added in warp order. With `partial`, chunk
// y writes partial[y][c] and bias_grad_chunks_kernel adds the chunks in order; without, the one
// chunk writes grad_b. Deterministic, no atomics.
constexpr int kBiasColLanes = 32, kBiasRowWarps = 8;
__global__ void __launch_bounds__(kBiasColLanes * kBiasRowWarps)
    bias_grad_rows_kernel(const float* __restrict__ g, float* __restrict__ partial, float* __restrict__ grad_b,
                          index_t rows, index_t cols, index_t row_chunk, index_t chunks) {
  __shared__ float part[kBiasRowWarps][kBiasColLanes + 1];
  const int lane = threadIdx.x % kBiasColLanes, rw = threadIdx.x / kBiasColLanes;
  for (index_t c0 = static_cast<index_t>(blockIdx.x) * kBiasColLanes; c0 < cols;
       c0 += static_cast<index_t>(gridDim.x) * kBiasColLanes)
    for (index_t chunk = blockIdx.y; chunk < chunks; chunk += gridDim.y) {  // both loops block-uniform
      const index_t c = c0 + lane;
      const index_t r0 = chunk * row_chunk, r1 = r0 + row_chunk < rows ? r0 + row_chunk : rows;
      float s = 0.0f;
      if (c < cols)
        for (index_t r = r0 + rw; r < r1; r += kBiasRowWarps) s += g[r * cols + c];
      part[rw][lane] = s;
      __syncthreads();
      if (rw == 0 && c < cols) {
        float t = 0.0f;
        for (int k = 0; k < kBiasRowWarps; ++k) t += part[k][lane];
        if (partial != nullptr)
          partial[chunk * cols + c] = t;
        else
          grad_b[c] = t;
      }
      __syncthreads();
    }
}

__global__ void bias_grad_chunks_kernel(const float* __restrict__ partial, float* __restrict__ grad_b, index_t cols,
                                        index_t chunks) {
  for (index_t c = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; c < cols;
       c += static_cast<index_t>(gridDim.x) * blockDim.x) {
    float s = 0.0f;
    for (index_t k = 0; k < chunks; ++k) s += partial[k * cols + c];
    grad_b[c] = s;
  }
}

}  // namespace fastlayers::cuda::detail
