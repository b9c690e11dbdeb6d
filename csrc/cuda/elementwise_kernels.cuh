// Broadcasting elementwise kernels (launchers in elementwise.cu). The geometry is the canonical
// form of csrc/cpu/elementwise.h (collapsed output shape, per-operand strides, 0 = broadcast).
// No launches here, so csrc/cuda/host_emulation/ can compile it with g++.
#pragma once
#include "common/types.h"

namespace fastlayers::cuda::detail {

constexpr int kMaxBroadcastDims = 8;
enum BinaryOp : int { kBinaryAdd = 0, kBinaryMul = 1 };

struct BroadcastGeom {
  int ndim;
  index_t shape[kMaxBroadcastDims], sa[kMaxBroadcastDims], sb[kMaxBroadcastDims];
};

template <int kOp>
__device__ inline float binary(float a, float b, float alpha) {
  if constexpr (kOp == kBinaryAdd) return a + alpha * b;
  else return a * b;
}

#define FL_GRID_STRIDE(i, n)                                                                  \
  for (index_t i = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; i < (n); \
       i += static_cast<index_t>(gridDim.x) * blockDim.x)

// One dimension: same shape (strides 1, 1) or a scalar operand (stride 0).
template <int kOp>
__global__ void broadcast1_kernel(index_t n, const float* a, index_t sa, const float* b, index_t sb,
                                  float* y, float alpha) {
  FL_GRID_STRIDE(i, n) y[i] = binary<kOp>(a[i * sa], b[i * sb], alpha);
}

// Two dimensions (rows, cols): a row or column broadcast (a bias over a batch, a per-row scale).
template <int kOp>
__global__ void broadcast2_kernel(index_t n, index_t cols, const float* a, index_t ar, index_t ac,
                                  const float* b, index_t br, index_t bc, float* y, float alpha) {
  FL_GRID_STRIDE(i, n) {
    const index_t r = i / cols, c = i - r * cols;
    y[i] = binary<kOp>(a[r * ar + c * ac], b[r * br + c * bc], alpha);
  }
}

// Any geometry: the output index decomposed over the dimensions.
template <int kOp>
__global__ void broadcast_kernel(index_t n, BroadcastGeom g, const float* a, const float* b, float* y,
                                 float alpha) {
  FL_GRID_STRIDE(i, n) {
    index_t rest = i, oa = 0, ob = 0;
    for (int k = g.ndim - 1; k >= 0; --k) {
      const index_t v = rest % g.shape[k];
      rest /= g.shape[k];
      oa += v * g.sa[k];
      ob += v * g.sb[k];
    }
    y[i] = binary<kOp>(a[oa], b[ob], alpha);
  }
}

// The backward of broadcasting: out = alpha * (g summed over the reduced dimensions). The outer
// dimensions are split into kept (k*) and reduced (r*) sets with g's strides (kg, rg) and the
// output's (ko); the innermost dimension (inner elements, contiguous in g) is kept or reduced.
struct SumGeom {
  int nk, nr;
  index_t ksize[kMaxBroadcastDims], kg[kMaxBroadcastDims], ko[kMaxBroadcastDims];
  index_t rsize[kMaxBroadcastDims], rg[kMaxBroadcastDims];
  index_t inner;
  index_t kept_count, reduced_count;  // products of ksize and rsize
};

__device__ inline void kept_offsets(const SumGeom& s, index_t i, index_t& g, index_t& o) {
  g = o = 0;
  for (int k = s.nk - 1; k >= 0; --k) {
    const index_t v = i % s.ksize[k];
    i /= s.ksize[k];
    g += v * s.kg[k];
    o += v * s.ko[k];
  }
}

__device__ inline index_t reduced_offset(const SumGeom& s, index_t i) {
  index_t g = 0;
  for (int k = s.nr - 1; k >= 0; --k) {
    g += (i % s.rsize[k]) * s.rg[k];
    i /= s.rsize[k];
  }
  return g;
}

// Innermost dimension kept: a thread per output element (neighbouring threads read neighbouring
// floats), summing over the reduced combinations in order.
__global__ void sum_kept_inner_kernel(SumGeom s, const float* g, float* out, float alpha) {
  const index_t outputs = s.kept_count * s.inner;
  FL_GRID_STRIDE(o, outputs) {
    const index_t kidx = o / s.inner, j = o - kidx * s.inner;
    index_t g0, o0;
    kept_offsets(s, kidx, g0, o0);
    double acc = 0.0;
    for (index_t r = 0; r < s.reduced_count; ++r) acc += g[g0 + reduced_offset(s, r) + j];
    out[o0 + j] = static_cast<float>(alpha * acc);
  }
}

constexpr int kSumThreads = 256;  // a power of two

// Innermost dimension reduced: a block per output element; its threads stride over the reduced
// elements (runs of `inner` contiguous floats) and meet in a tree (a fixed order: deterministic).
__global__ void sum_reduced_inner_kernel(SumGeom s, const float* g, float* out, float alpha) {
  __shared__ double red[kSumThreads];
  const index_t total = s.reduced_count * s.inner;
  for (index_t o = blockIdx.x; o < s.kept_count; o += gridDim.x) {
    index_t g0, o0;
    kept_offsets(s, o, g0, o0);
    double acc = 0.0;
    for (index_t r = threadIdx.x; r < total; r += kSumThreads) {
      const index_t combo = r / s.inner, j = r - combo * s.inner;
      acc += g[g0 + reduced_offset(s, combo) + j];
    }
    red[threadIdx.x] = acc;
    __syncthreads();
    for (int w = kSumThreads / 2; w > 0; w /= 2) {
      if (static_cast<int>(threadIdx.x) < w) red[threadIdx.x] += red[threadIdx.x + w];
      __syncthreads();
    }
    if (threadIdx.x == 0) out[o0] = static_cast<float>(alpha * red[0]);
    __syncthreads();
  }
}

#undef FL_GRID_STRIDE

}  // namespace fastlayers::cuda::detail
