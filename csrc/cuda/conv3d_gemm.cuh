// conv3d's GEMM kernel: the 64 x 64-tile implicit-GEMM kernel conv.cu used before the cuda branch
// replaced it with the gather GEMM of conv_kernels.cuh (table-driven ops, per-shape tiles). The 3-D
// operand ops of conv3d_kernels.cuh are written for this kernel's op interface (column/a/b/store),
// so conv3d keeps it under its own namespace until they are ported to the gather GEMM; plus the
// split and bias reductions conv3d and conv_transpose2d launch. No host-only CUDA API (host
// emulation compiles it).
#pragma once
#include <cmath>

#include "common/types.h"

namespace fastlayers::cuda::conv3d_gemm {

constexpr int kBM = 64, kBN = 64, kBK = 16, kGemmThreads = 256;  // 16 x 16 threads, 4 x 4 each
constexpr index_t kMaxGridZ = 65535, kMaxGridY = 65535;


// ------------------------------------------------------------------------------------- kernels

// C[g][m][col] (+ per split) = sum over kk in this split's range of A[g][m][kk] * B[g][kk][col].
template <class Op, class I>
__global__ void __launch_bounds__(kGemmThreads)
    implicit_gemm_kernel(Op op, I M, I ncol, I kred, I groups, I splits, I k_chunk) {
  __shared__ float As[kBK][kBM + 4];
  __shared__ float Bs[kBK][kBN + 4];
  const int t = threadIdx.x, tx = t % 16, ty = t / 16;
  const I m0 = static_cast<I>(blockIdx.y) * kBM, n0 = static_cast<I>(blockIdx.x) * kBN;
  // z is uniform across the block, so the __syncthreads inside stay block-uniform.
  for (I z = blockIdx.z; z < groups * splits; z += gridDim.z) {
    const I g = z / splits, split = z % splits;
    const I k_begin = split * k_chunk;
    const I k_end = k_begin + k_chunk < kred ? k_begin + k_chunk : kred;
    const auto col_state = op.column(g, n0 + t % kBN, ncol);  // this thread's B column, all steps
    float acc[4][4] = {};
    for (I k0 = k_begin; k0 < k_end; k0 += kBK) {
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int e = t + i * kGemmThreads;
        const int ml = e / kBK, kl = e % kBK;  // A tile 64 x 16, reduction index fastest
        const I m = m0 + ml, kk = k0 + kl;
        As[kl][ml] = (m < M && kk < k_end) ? op.a(g, m, kk) : 0.0f;
        const int kb = e / kBN;  // B tile 16 x 64, column fastest (column = t % 64)
        const I kk_b = k0 + kb;
        Bs[kb][t % kBN] = (col_state.ok && kk_b < k_end) ? op.b(col_state, kk_b) : 0.0f;
      }
      __syncthreads();
#pragma unroll
      for (int kl = 0; kl < kBK; ++kl) {
        float av[4], bv[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) av[i] = As[kl][ty + 16 * i];
#pragma unroll
        for (int j = 0; j < 4; ++j) bv[j] = Bs[kl][tx + 16 * j];
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
          for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
      }
      __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const I m = m0 + ty + 16 * i, col = n0 + tx + 16 * j;
        if (m < M && col < ncol) op.store(g, split, m, col, acc[i][j]);
      }
  }
}

// grad_w[i] = sum over splits, in split order, of the partial sums.
template <class I>
__global__ void sum_splits_kernel(const float* __restrict__ ws, float* __restrict__ gw, I total, I splits) {
  for (I i = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<I>(gridDim.x) * blockDim.x) {
    float s = 0.0f;
    for (I k = 0; k < splits; ++k) s += ws[k * total + i];
    gw[i] = s;
  }
}

// grad_b[k] = sum over n, p, q of grad_out[n][k][p][q]: a block per channel, double partial sums,
// fixed-shape tree reduction (deterministic). Needs blockDim.x == 256.
template <class I>
__global__ void bias_grad_kernel(const float* __restrict__ go, float* __restrict__ gb, I N, I K, I PQ) {
  __shared__ double partial[256];
  const int t = threadIdx.x;
  for (I k = blockIdx.x; k < K; k += gridDim.x) {
    double s = 0.0;
    for (I e = t; e < N * PQ; e += 256) {
      const I n = e / PQ, pq = e % PQ;
      s += go[(n * K + k) * PQ + pq];
    }
    partial[t] = s;
    __syncthreads();
    for (int off = 128; off > 0; off /= 2) {
      if (t < off) partial[t] += partial[t + off];
      __syncthreads();
    }
    if (t == 0) gb[k] = static_cast<float>(partial[0]);
    __syncthreads();  // partial[] is reused by the next channel
  }
}

}  // namespace fastlayers::cuda::conv3d_gemm
