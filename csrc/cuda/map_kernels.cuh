// Elementwise map kernels shared by the activation, add and other elementwise launchers:
// y[i] = f(a[i]) or f(a[i], b[i]) over n contiguous floats, grid-stride. With `vec` (every
// pointer 16-byte aligned, checked by the launcher) the body moves float4s and the last n % 4
// elements are done one by one; without it, one float per step. f is a small functor struct.
// y may alias an input (each element is read before it is written, by the same thread).
// No launches here, so csrc/cuda/host_emulation/ can compile it with g++.
#pragma once
#include "common/types.h"

namespace fastlayers::cuda::detail {

template <class F>
__global__ void map1_kernel(index_t n, const float* a, float* y, F f, bool vec) {
  const index_t start = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x;
  const index_t stride = static_cast<index_t>(gridDim.x) * blockDim.x;
  index_t done = 0;
  if (vec) {
    const index_t n4 = n / 4;
    const float4* a4 = reinterpret_cast<const float4*>(a);
    float4* y4 = reinterpret_cast<float4*>(y);
    for (index_t i = start; i < n4; i += stride) {
      const float4 v = a4[i];
      y4[i] = make_float4(f(v.x), f(v.y), f(v.z), f(v.w));
    }
    done = n4 * 4;
  }
  for (index_t i = done + start; i < n; i += stride) y[i] = f(a[i]);
}

template <class F>
__global__ void map2_kernel(index_t n, const float* a, const float* b, float* y, F f, bool vec) {
  const index_t start = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x;
  const index_t stride = static_cast<index_t>(gridDim.x) * blockDim.x;
  index_t done = 0;
  if (vec) {
    const index_t n4 = n / 4;
    const float4* a4 = reinterpret_cast<const float4*>(a);
    const float4* b4 = reinterpret_cast<const float4*>(b);
    float4* y4 = reinterpret_cast<float4*>(y);
    for (index_t i = start; i < n4; i += stride) {
      const float4 u = a4[i], v = b4[i];
      y4[i] = make_float4(f(u.x, v.x), f(u.y, v.y), f(u.z, v.z), f(u.w, v.w));
    }
    done = n4 * 4;
  }
  for (index_t i = done + start; i < n; i += stride) y[i] = f(a[i], b[i]);
}

}  // namespace fastlayers::cuda::detail
