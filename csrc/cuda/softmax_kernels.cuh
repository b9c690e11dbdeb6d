// Softmax / log-softmax kernels over a contiguous array viewed as (outer, dim, inner): the axis
// has length dim and stride inner. Same formulas as csrc/cpu/softmax.cpp: the row maximum is
// subtracted before exp (fmaxf skips NaN in the max, and a NaN then poisons the row's sum, as on
// the CPU); float accumulation. Four shapes of work, each reading the input as few times as it
// can:
//   *_warp:   contiguous rows (inner == 1) past kThreadRowMaxDim and up to kWarpMaxDim long: a
//             warp per row, the row held in
//             registers (VPT values per lane; float4 loads and stores when VEC: dim % 4 == 0 and
//             16-byte aligned pointers), max and sum by warp shuffles. One read, one write.
//   *_block:  longer contiguous rows: a block per row; the forward keeps a running (max, sum) per
//             thread (online softmax), combines them across the block, then writes: two reads,
//             one write. float4 loads when VEC.
//   *_rows_staged: contiguous rows of at most kThreadRowMaxDim values: a block copies its
//             kStagedRows rows (one contiguous run) into shared memory with coalesced loads, a
//             thread per row works there (rows at an odd stride: on different banks), and the block
//             copies the results out the same way. On an
//             H200, 6.7M rows of 10: a warp per row 18 % of the copy bandwidth, a thread per row
//             reading global memory directly 26 %.
//   *_strided: inner > 1: a thread per (outer, inner) column, neighbouring threads on
//             neighbouring columns (coalesced); online (max, sum) then the write pass. Each thread
//             loads kStridedLoads values before combining them: one column is a chain of dependent
//             updates, and with one load in flight per thread the 1024-long axis=1 case measured
//             20 % of the bandwidth (34 % this way).
// No launches here, so csrc/cuda/host_emulation/ can compile it with g++.
#pragma once
#include <cmath>

#include "common/types.h"

namespace fastlayers::cuda::detail {

constexpr int kSoftmaxWarpsPerBlock = 4;  // warp kernels: 128 threads, 4 rows at a time
constexpr int kSoftmaxBlockThreads = 256;
constexpr index_t kWarpMaxDim = 1024;     // 32 lanes x 32 values
constexpr index_t kThreadRowMaxDim = 16;  // contiguous rows this short: a thread each (*_rows_staged)
constexpr int kStagedRows = 128;          // rows per block of the staged kernels (= its threads)
constexpr int kStridedLoads = 8;          // values a strided thread loads before combining them

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int off = 16; off > 0; off /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int off = 16; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

// Running softmax statistics: m = max seen (NaN skipped), s = sum of exp(x - m). A -inf term adds
// nothing; a NaN term makes s NaN; an all -inf row ends with m = -inf, s = 0, and its outputs are
// NaN, as the two-pass formula gives.
__device__ __forceinline__ void online_add(float& m, float& s, float x) {
  const float mn = fmaxf(m, x);
  if (mn == -INFINITY) {  // x is -inf or NaN, m is -inf
    if (x != x) s = x;
    return;
  }
  s = s * expf(m - mn) + expf(x - mn);
  m = mn;
}
__device__ __forceinline__ void online_merge(float& m, float& s, float m2, float s2) {
  const float mn = fmaxf(m, m2);
  if (mn == -INFINITY) {
    s = s + s2;
    return;
  }
  s = s * expf(m - mn) + s2 * expf(m2 - mn);
  m = mn;
}

// ------------------------------------------------------------------------------ warp per row
// Lane values: VEC: v[4j..4j+3] = row[4 * (lane + 32 j) ..]; else v[j] = row[lane + 32 j].
template <int VPT, bool VEC>
__device__ __forceinline__ void warp_row_load(const float* __restrict__ row, index_t dim, int lane, float (&v)[VPT],
                                              float fill) {
  if constexpr (VEC) {
#pragma unroll
    for (int j = 0; j < VPT / 4; ++j) {
      const index_t e = 4 * (lane + 32 * static_cast<index_t>(j));
      if (e < dim) {  // dim % 4 == 0: the whole float4 is in the row
        const float4 q = *reinterpret_cast<const float4*>(row + e);
        v[4 * j] = q.x, v[4 * j + 1] = q.y, v[4 * j + 2] = q.z, v[4 * j + 3] = q.w;
      } else {
        v[4 * j] = v[4 * j + 1] = v[4 * j + 2] = v[4 * j + 3] = fill;
      }
    }
  } else {
#pragma unroll
    for (int j = 0; j < VPT; ++j) {
      const index_t e = lane + 32 * static_cast<index_t>(j);
      v[j] = e < dim ? row[e] : fill;
    }
  }
}
template <int VPT, bool VEC>
__device__ __forceinline__ void warp_row_store(float* __restrict__ row, index_t dim, int lane, const float (&v)[VPT]) {
  if constexpr (VEC) {
#pragma unroll
    for (int j = 0; j < VPT / 4; ++j) {
      const index_t e = 4 * (lane + 32 * static_cast<index_t>(j));
      if (e < dim) *reinterpret_cast<float4*>(row + e) = make_float4(v[4 * j], v[4 * j + 1], v[4 * j + 2], v[4 * j + 3]);
    }
  } else {
#pragma unroll
    for (int j = 0; j < VPT; ++j) {
      const index_t e = lane + 32 * static_cast<index_t>(j);
      if (e < dim) row[e] = v[j];
    }
  }
}
template <int VPT, bool VEC>
__device__ __forceinline__ bool warp_in_row(index_t dim, int lane, int j) {
  const index_t e = VEC ? 4 * (lane + 32 * static_cast<index_t>(j / 4)) + j % 4 : lane + 32 * static_cast<index_t>(j);
  return e < dim;
}

template <bool LOG, int VPT, bool VEC>
__global__ void __launch_bounds__(kSoftmaxWarpsPerBlock * 32)
    softmax_forward_warp(const float* __restrict__ x, float* __restrict__ y, index_t rows, index_t dim) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  for (index_t r = static_cast<index_t>(blockIdx.x) * kSoftmaxWarpsPerBlock + warp; r < rows;
       r += static_cast<index_t>(gridDim.x) * kSoftmaxWarpsPerBlock) {  // warp-uniform
    float v[VPT];
    warp_row_load<VPT, VEC>(x + r * dim, dim, lane, v, -INFINITY);
    float mx = -INFINITY;
#pragma unroll
    for (int j = 0; j < VPT; ++j) mx = fmaxf(mx, v[j]);
    mx = warp_max(mx);
    float s = 0.0f;
#pragma unroll
    for (int j = 0; j < VPT; ++j) {
      if (!warp_in_row<VPT, VEC>(dim, lane, j)) continue;  // padding: not a -inf of the row
      const float e = expf(v[j] - mx);
      if (!LOG) v[j] = e;
      s += e;
    }
    s = warp_sum(s);
    if (LOG) {
      const float log_s = logf(s);
#pragma unroll
      for (int j = 0; j < VPT; ++j) v[j] = (v[j] - mx) - log_s;
    } else {
      const float inv = 1.0f / s;
#pragma unroll
      for (int j = 0; j < VPT; ++j) v[j] *= inv;
    }
    warp_row_store<VPT, VEC>(y + r * dim, dim, lane, v);
  }
}

template <bool LOG, int VPT, bool VEC>
__global__ void __launch_bounds__(kSoftmaxWarpsPerBlock * 32)
    softmax_backward_warp(const float* __restrict__ g, const float* __restrict__ y, float* __restrict__ gx,
                          index_t rows, index_t dim) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  for (index_t r = static_cast<index_t>(blockIdx.x) * kSoftmaxWarpsPerBlock + warp; r < rows;
       r += static_cast<index_t>(gridDim.x) * kSoftmaxWarpsPerBlock) {
    float gv[VPT], yv[VPT];
    warp_row_load<VPT, VEC>(g + r * dim, dim, lane, gv, 0.0f);
    warp_row_load<VPT, VEC>(y + r * dim, dim, lane, yv, 0.0f);
    float s = 0.0f;
#pragma unroll
    for (int j = 0; j < VPT; ++j) s += LOG ? gv[j] : gv[j] * yv[j];
    s = warp_sum(s);
#pragma unroll
    for (int j = 0; j < VPT; ++j) gv[j] = LOG ? gv[j] - expf(yv[j]) * s : yv[j] * (gv[j] - s);
    warp_row_store<VPT, VEC>(gx + r * dim, dim, lane, gv);
  }
}

// ----------------------------------------------------------------------------- block per row
// Block-wide (m, s) merge (blockDim.x == kSoftmaxBlockThreads): warps by shuffles, then warp 0
// over the warps' results. Every thread gets the result.
__device__ __forceinline__ void block_online(float& m, float& s, float* sm, float* ss) {
#pragma unroll
  for (int off = 16; off > 0; off /= 2) {
    const float m2 = __shfl_xor_sync(0xffffffffu, m, off), s2 = __shfl_xor_sync(0xffffffffu, s, off);
    online_merge(m, s, m2, s2);
  }
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) sm[warp] = m, ss[warp] = s;
  __syncthreads();
  m = sm[0], s = ss[0];
  for (int w = 1; w < kSoftmaxBlockThreads / 32; ++w) online_merge(m, s, sm[w], ss[w]);
  __syncthreads();  // sm, ss are reused by the next row
}
__device__ __forceinline__ float block_total(float v, float* sv) {
  v = warp_sum(v);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) sv[warp] = v;
  __syncthreads();
  float t = 0.0f;
  for (int w = 0; w < kSoftmaxBlockThreads / 32; ++w) t += sv[w];
  __syncthreads();
  return t;
}

template <bool LOG, bool VEC>
__global__ void __launch_bounds__(kSoftmaxBlockThreads)
    softmax_forward_block(const float* __restrict__ x, float* __restrict__ y, index_t rows, index_t dim) {
  __shared__ float sm[kSoftmaxBlockThreads / 32], ss[kSoftmaxBlockThreads / 32];
  const int t = threadIdx.x;
  for (index_t r = blockIdx.x; r < rows; r += gridDim.x) {  // block-uniform
    const float* xr = x + r * dim;
    float* yr = y + r * dim;
    float m = -INFINITY, s = 0.0f;
    if (VEC) {
      for (index_t e = 4 * static_cast<index_t>(t); e < dim; e += 4 * kSoftmaxBlockThreads) {
        const float4 q = *reinterpret_cast<const float4*>(xr + e);
        online_add(m, s, q.x), online_add(m, s, q.y), online_add(m, s, q.z), online_add(m, s, q.w);
      }
    } else {
      for (index_t e = t; e < dim; e += kSoftmaxBlockThreads) online_add(m, s, xr[e]);
    }
    block_online(m, s, sm, ss);
    const float log_s = logf(s), inv = 1.0f / s;
    auto out = [&](float v) { return LOG ? (v - m) - log_s : expf(v - m) * inv; };
    if (VEC) {
      for (index_t e = 4 * static_cast<index_t>(t); e < dim; e += 4 * kSoftmaxBlockThreads) {
        const float4 q = *reinterpret_cast<const float4*>(xr + e);
        *reinterpret_cast<float4*>(yr + e) = make_float4(out(q.x), out(q.y), out(q.z), out(q.w));
      }
    } else {
      for (index_t e = t; e < dim; e += kSoftmaxBlockThreads) yr[e] = out(xr[e]);
    }
  }
}

template <bool LOG, bool VEC>
__global__ void __launch_bounds__(kSoftmaxBlockThreads)
    softmax_backward_block(const float* __restrict__ g, const float* __restrict__ y, float* __restrict__ gx,
                           index_t rows, index_t dim) {
  __shared__ float sv[kSoftmaxBlockThreads / 32];
  const int t = threadIdx.x;
  for (index_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* gr = g + r * dim;
    const float* yr = y + r * dim;
    float* o = gx + r * dim;
    float s = 0.0f;
    if (VEC) {
      for (index_t e = 4 * static_cast<index_t>(t); e < dim; e += 4 * kSoftmaxBlockThreads) {
        const float4 a = *reinterpret_cast<const float4*>(gr + e), b = *reinterpret_cast<const float4*>(yr + e);
        s += LOG ? (a.x + a.y) + (a.z + a.w) : (a.x * b.x + a.y * b.y) + (a.z * b.z + a.w * b.w);
      }
    } else {
      for (index_t e = t; e < dim; e += kSoftmaxBlockThreads) s += LOG ? gr[e] : gr[e] * yr[e];
    }
    s = block_total(s, sv);
    auto out = [&](float gg, float yy) { return LOG ? gg - expf(yy) * s : yy * (gg - s); };
    if (VEC) {
      for (index_t e = 4 * static_cast<index_t>(t); e < dim; e += 4 * kSoftmaxBlockThreads) {
        const float4 a = *reinterpret_cast<const float4*>(gr + e), b = *reinterpret_cast<const float4*>(yr + e);
        *reinterpret_cast<float4*>(o + e) = make_float4(out(a.x, b.x), out(a.y, b.y), out(a.z, b.z), out(a.w, b.w));
      }
    } else {
      for (index_t e = t; e < dim; e += kSoftmaxBlockThreads) o[e] = out(gr[e], yr[e]);
    }
  }
}

// ------------------------------------------------------------------- short rows, staged (inner == 1)
// Block b takes rows [b * kStagedRows, ...) (grid-stride): floats [r0 * dim, r1 * dim) are one
// contiguous run, copied in and out by all threads with neighbouring threads on neighbouring floats.
// The row math is the strided kernels' (online max and sum, in order), so the results are the same.
constexpr int kStagedStride = kThreadRowMaxDim + 1;  // the tile's widest row stride (odd)

// Calls f(i, t) for this thread's floats i = threadIdx.x + j * kStagedRows < n of the run, with t
// their place in the tile: row * stride + col, stride = dim rounded up to odd, so that the 32 rows
// a warp reads at once fall on different banks. (row, col) is stepped, not divided out, per float.
template <class F>
__device__ __forceinline__ void staged_walk(index_t n, int dim, int stride, F f) {
  const int step_r = kStagedRows / dim, step_c = kStagedRows % dim;
  int row = static_cast<int>(threadIdx.x) / dim, col = static_cast<int>(threadIdx.x) % dim;
#pragma unroll 4
  for (index_t i = threadIdx.x; i < n; i += kStagedRows) {
    f(i, row * stride + col);
    col += step_c;
    row += step_r;
    if (col >= dim) col -= dim, ++row;
  }
}

template <bool LOG>
__global__ void __launch_bounds__(kStagedRows)
    softmax_forward_rows_staged(const float* __restrict__ x, float* __restrict__ y, index_t rows, index_t dim) {
  __shared__ float tile[kStagedRows * kStagedStride];
  const int d_n = static_cast<int>(dim), stride = d_n | 1;
  for (index_t r0 = static_cast<index_t>(blockIdx.x) * kStagedRows; r0 < rows;
       r0 += static_cast<index_t>(gridDim.x) * kStagedRows) {  // block-uniform
    const index_t nr = rows - r0 < kStagedRows ? rows - r0 : kStagedRows, n = nr * dim;
    const float* xs = x + r0 * dim;
    staged_walk(n, d_n, stride, [&](index_t i, int t) { tile[t] = xs[i]; });
    __syncthreads();
    if (static_cast<index_t>(threadIdx.x) < nr) {
      float* row = tile + threadIdx.x * stride;
      float m = -INFINITY, s = 0.0f;
      for (int d = 0; d < d_n; ++d) online_add(m, s, row[d]);
      const float log_s = logf(s), inv = 1.0f / s;
      for (int d = 0; d < d_n; ++d) row[d] = LOG ? (row[d] - m) - log_s : expf(row[d] - m) * inv;
    }
    __syncthreads();
    float* ys = y + r0 * dim;
    staged_walk(n, d_n, stride, [&](index_t i, int t) { ys[i] = tile[t]; });
    __syncthreads();  // the tile is refilled next round
  }
}

template <bool LOG>
__global__ void __launch_bounds__(kStagedRows)
    softmax_backward_rows_staged(const float* __restrict__ g, const float* __restrict__ y, float* __restrict__ gx,
                                 index_t rows, index_t dim) {
  __shared__ float gt[kStagedRows * kStagedStride], yt[kStagedRows * kStagedStride];
  const int d_n = static_cast<int>(dim), stride = d_n | 1;
  for (index_t r0 = static_cast<index_t>(blockIdx.x) * kStagedRows; r0 < rows;
       r0 += static_cast<index_t>(gridDim.x) * kStagedRows) {
    const index_t nr = rows - r0 < kStagedRows ? rows - r0 : kStagedRows, n = nr * dim, base = r0 * dim;
    staged_walk(n, d_n, stride, [&](index_t i, int t) { gt[t] = g[base + i], yt[t] = y[base + i]; });
    __syncthreads();
    if (static_cast<index_t>(threadIdx.x) < nr) {
      float* gr = gt + threadIdx.x * stride;
      const float* yr = yt + threadIdx.x * stride;
      float s = 0.0f;
      for (int d = 0; d < d_n; ++d) s += LOG ? gr[d] : gr[d] * yr[d];
      for (int d = 0; d < d_n; ++d) gr[d] = LOG ? gr[d] - expf(yr[d]) * s : yr[d] * (gr[d] - s);
    }
    __syncthreads();
    staged_walk(n, d_n, stride, [&](index_t i, int t) { gx[base + i] = gt[t]; });
    __syncthreads();
  }
}

// ------------------------------------------------------------------------- strided (inner > 1)
template <bool LOG>
__global__ void softmax_forward_strided(const float* __restrict__ x, float* __restrict__ y, index_t outer,
                                        index_t dim, index_t inner) {
  const index_t cols = outer * inner;
  for (index_t c = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; c < cols;
       c += static_cast<index_t>(gridDim.x) * blockDim.x) {
    const index_t o = c / inner, base = o * dim * inner + (c - o * inner);
    const float* xr = x + base;
    float* yr = y + base;
    float m = -INFINITY, s = 0.0f;
    for (index_t d0 = 0; d0 < dim; d0 += kStridedLoads) {
      float v[kStridedLoads];
#pragma unroll
      for (int t = 0; t < kStridedLoads; ++t) v[t] = d0 + t < dim ? xr[(d0 + t) * inner] : -INFINITY;
#pragma unroll
      for (int t = 0; t < kStridedLoads; ++t) online_add(m, s, v[t]);  // -inf adds exactly nothing
    }
    const float log_s = logf(s), inv = 1.0f / s;
#pragma unroll 4
    for (index_t d = 0; d < dim; ++d) yr[d * inner] = LOG ? (xr[d * inner] - m) - log_s : expf(xr[d * inner] - m) * inv;
  }
}

template <bool LOG>
__global__ void softmax_backward_strided(const float* __restrict__ g, const float* __restrict__ y,
                                         float* __restrict__ gx, index_t outer, index_t dim, index_t inner) {
  const index_t cols = outer * inner;
  for (index_t c = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; c < cols;
       c += static_cast<index_t>(gridDim.x) * blockDim.x) {
    const index_t o = c / inner, base = o * dim * inner + (c - o * inner);
    float s = 0.0f;
#pragma unroll 8
    for (index_t d = 0; d < dim; ++d)
      s += LOG ? g[base + d * inner] : g[base + d * inner] * y[base + d * inner];
#pragma unroll 4
    for (index_t d = 0; d < dim; ++d) {
      const index_t k = base + d * inner;
      gx[k] = LOG ? g[k] - expf(y[k]) * s : y[k] * (g[k] - s);  // log: softmax = exp(y)
    }
  }
}

}  // namespace fastlayers::cuda::detail
