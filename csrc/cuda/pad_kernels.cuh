// Device code of the CUDA pad (csrc/cuda/pad.cu has the launchers). No host-only CUDA API, so
// csrc/cuda/host_emulation can compile it with g++ and run it.
#pragma once
#include "common/pad_geometry.h"
#include "common/types.h"

namespace fastlayers::cuda::pad_detail {

// PadGeometry narrowed to the index type I, with the input strides precomputed.
template <class I>
struct Geo {
  int rank, mode;
  I in[kPadMaxRank], out[kPadMaxRank], lo[kPadMaxRank], in_stride[kPadMaxRank];
};

template <class I>
Geo<I> narrow(const PadGeometry& g) {
  Geo<I> n{};
  n.rank = g.rank;
  n.mode = g.mode;
  I stride = 1;
  for (int d = g.rank - 1; d >= 0; --d) {
    n.in[d] = static_cast<I>(g.in[d]);
    n.out[d] = static_cast<I>(g.out[d]);
    n.lo[d] = static_cast<I>(g.lo[d]);
    n.in_stride[d] = stride;
    stride *= static_cast<I>(g.in[d]);
  }
  return n;
}

template <class I>
__global__ void pad_forward_kernel(const float* __restrict__ x, float* __restrict__ y, Geo<I> g, I total,
                                   float value) {
  const I step = static_cast<I>(gridDim.x) * blockDim.x;
  for (I e = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += step) {
    I rem = e, off = 0;
    bool fill = false;
    for (int d = g.rank - 1; d >= 0; --d) {
      const I o = rem % g.out[d];
      rem /= g.out[d];
      const I s = pad_source<I>(g.mode, o, g.in[d], g.lo[d], g.out[d]);
      fill = fill || s < 0;
      off += s * g.in_stride[d];
    }
    y[e] = fill ? value : x[off];
  }
}

// Non-constant modes, rank exactly 4 (the launcher prepends size-1 dimensions): grad_in[e] = the sum
// of grad_out over the product of the four dimensions' pad_sources_of ranges.
template <class I>
__global__ void pad_backward_gather_kernel(const float* __restrict__ grad_out, float* __restrict__ grad_in,
                                           Geo<I> g, I total) {
  const I step = static_cast<I>(gridDim.x) * blockDim.x;
  for (I e = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += step) {
    I idx[4], a[4][3], b[4][3];
    int k[4];
    I rem = e;
    for (int d = 3; d >= 0; --d) {
      idx[d] = rem % g.in[d];
      rem /= g.in[d];
      k[d] = pad_sources_of<I>(g.mode, idx[d], g.in[d], g.lo[d], g.out[d], a[d], b[d]);
    }
    float sum = 0.0f;
    for (int q0 = 0; q0 < k[0]; ++q0)
      for (I o0 = a[0][q0]; o0 < b[0][q0]; ++o0)
        for (int q1 = 0; q1 < k[1]; ++q1)
          for (I o1 = a[1][q1]; o1 < b[1][q1]; ++o1)
            for (int q2 = 0; q2 < k[2]; ++q2)
              for (I o2 = a[2][q2]; o2 < b[2][q2]; ++o2) {
                const float* row = grad_out + ((o0 * g.out[1] + o1) * g.out[2] + o2) * g.out[3];
                for (int q3 = 0; q3 < k[3]; ++q3)
                  for (I o3 = a[3][q3]; o3 < b[3][q3]; ++o3) sum += row[o3];
              }
    grad_in[e] = sum;
  }
}

}  // namespace fastlayers::cuda::pad_detail
