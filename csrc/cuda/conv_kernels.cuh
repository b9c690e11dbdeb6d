// Device code of the CUDA convolution (csrc/cuda/conv.cu has the launchers and the overview):
// the implicit-GEMM kernel, its three operand "ops", and the split and bias reductions. A header
// with no host-only CUDA API, so csrc/cuda/host_emulation can compile it with g++ and run it.
#pragma once
#include <cmath>

#include "common/types.h"

namespace fastlayers::cuda::conv_detail {

constexpr int kBM = 64, kBN = 64, kBK = 16, kGemmThreads = 256;  // 16 x 16 threads, 4 x 4 each
constexpr index_t kMaxGridZ = 65535, kMaxGridY = 65535;

template <class I>
struct Dims {
  I N, C, H, W, K, R, S, P, Q, sh, sw, ph, pw, dh, dw, G;
  I Cg, Kg, RS, CRS, PQ, HW;
};

// Shape: any struct with Conv2dShape's fields (csrc/common/conv_shape.h).
template <class I, class Shape>
Dims<I> dims_of(const Shape& s) {
  Dims<I> d;
  d.N = static_cast<I>(s.N), d.C = static_cast<I>(s.C), d.H = static_cast<I>(s.H), d.W = static_cast<I>(s.W);
  d.K = static_cast<I>(s.K), d.R = static_cast<I>(s.R), d.S = static_cast<I>(s.S);
  d.P = static_cast<I>(s.P), d.Q = static_cast<I>(s.Q);
  d.sh = static_cast<I>(s.stride_h), d.sw = static_cast<I>(s.stride_w);
  d.ph = static_cast<I>(s.pad_h), d.pw = static_cast<I>(s.pad_w);
  d.dh = static_cast<I>(s.dil_h), d.dw = static_cast<I>(s.dil_w), d.G = static_cast<I>(s.groups);
  d.Cg = d.C / d.G, d.Kg = d.K / d.G, d.RS = d.R * d.S, d.CRS = d.Cg * d.RS;
  d.PQ = d.P * d.Q, d.HW = d.H * d.W;
  return d;
}

template <class I>
__device__ __forceinline__ bool inside(I h, I w, I H, I W) {
  return h >= 0 && h < H && w >= 0 && w < W;
}

// ---------------------------------------------------------------------------------------- ops
// Each op: column(g, col, ncol) precomputes what a thread's fixed B column needs; a(g, m, kk) and
// b(col_state, kk) read one operand value (called only in range); store(g, split, m, col, v).

template <class I>
struct ForwardOp {
  const float* x;
  const float* w;
  const float* bias;  // may be null
  float* y;
  Dims<I> d;

  struct Col {
    bool ok;
    I x_base, h0, w0;  // x offset of image n, group g; top-left input cell of output (p, q)
  };
  __device__ Col column(I g, I col, I ncol) const {
    Col c{col < ncol, 0, 0, 0};
    if (!c.ok) return c;
    const I n = col / d.PQ, pq = col % d.PQ, p = pq / d.Q, q = pq % d.Q;
    c.x_base = (n * d.C + g * d.Cg) * d.HW;
    c.h0 = p * d.sh - d.ph;
    c.w0 = q * d.sw - d.pw;
    return c;
  }
  __device__ float a(I g, I m, I kk) const { return w[(g * d.Kg + m) * d.CRS + kk]; }
  __device__ float b(const Col& c, I kk) const {
    const I ci = kk / d.RS, rs = kk % d.RS, r = rs / d.S, s = rs % d.S;
    const I h = c.h0 + r * d.dh, wc = c.w0 + s * d.dw;
    return inside(h, wc, d.H, d.W) ? x[c.x_base + ci * d.HW + h * d.W + wc] : 0.0f;
  }
  __device__ void store(I g, I /*split*/, I m, I col, float v) const {
    const I n = col / d.PQ, pq = col % d.PQ, k = g * d.Kg + m;
    y[(n * d.K + k) * d.PQ + pq] = bias ? v + bias[k] : v;
  }
};

template <class I>
struct BackwardDataOp {
  const float* go;
  const float* w;
  float* gx;
  Dims<I> d;

  struct Col {
    bool ok;
    I go_base, h, w;  // grad_out offset of image n, group g; the input cell this column produces
  };
  __device__ Col column(I g, I col, I ncol) const {
    Col c{col < ncol, 0, 0, 0};
    if (!c.ok) return c;
    const I n = col / d.HW, hw = col % d.HW;
    c.go_base = (n * d.K + g * d.Kg) * d.PQ;
    c.h = hw / d.W;
    c.w = hw % d.W;
    return c;
  }
  // A[c][(k, r, s)] = w[g*Kg + k][c][r][s]
  __device__ float a(I g, I m, I kk) const {
    const I k = kk / d.RS, rs = kk % d.RS;
    return w[((g * d.Kg + k) * d.Cg + m) * d.RS + rs];
  }
  // grad_out[k][p][q] where p*sh - ph + r*dh == h and q*sw - pw + s*dw == w, if such (p, q) exists.
  __device__ float b(const Col& c, I kk) const {
    const I k = kk / d.RS, rs = kk % d.RS, r = rs / d.S, s = rs % d.S;
    const I hp = c.h + d.ph - r * d.dh, wp = c.w + d.pw - s * d.dw;
    if (hp < 0 || wp < 0 || hp % d.sh != 0 || wp % d.sw != 0) return 0.0f;
    const I p = hp / d.sh, q = wp / d.sw;
    return (p < d.P && q < d.Q) ? go[c.go_base + k * d.PQ + p * d.Q + q] : 0.0f;
  }
  __device__ void store(I g, I /*split*/, I m, I col, float v) const {
    const I n = col / d.HW, hw = col % d.HW;
    gx[(n * d.C + g * d.Cg + m) * d.HW + hw] = v;
  }
};

template <class I>
struct BackwardWeightOp {
  const float* go;
  const float* x;
  float* out;        // grad_w (one split) or the workspace (splits x K x CRS partial sums)
  Dims<I> d;

  struct Col {
    bool ok;
    I x_off, roff, soff;  // x offset of channel g*Cg + c within an image; tap offsets r*dh - ph, s*dw - pw
  };
  __device__ Col column(I g, I col, I ncol) const {
    Col c{col < ncol, 0, 0, 0};
    if (!c.ok) return c;
    const I ci = col / d.RS, rs = col % d.RS, r = rs / d.S, s = rs % d.S;
    c.x_off = (g * d.Cg + ci) * d.HW;
    c.roff = r * d.dh - d.ph;
    c.soff = s * d.dw - d.pw;
    return c;
  }
  // A[k][(n, p, q)] = grad_out[n][g*Kg + k][p][q]
  __device__ float a(I g, I m, I kk) const {
    const I n = kk / d.PQ, pq = kk % d.PQ;
    return go[(n * d.K + g * d.Kg + m) * d.PQ + pq];
  }
  __device__ float b(const Col& c, I kk) const {
    const I n = kk / d.PQ, pq = kk % d.PQ, p = pq / d.Q, q = pq % d.Q;
    const I h = p * d.sh + c.roff, wc = q * d.sw + c.soff;
    return inside(h, wc, d.H, d.W) ? x[n * d.C * d.HW + c.x_off + h * d.W + wc] : 0.0f;
  }
  __device__ void store(I g, I split, I m, I col, float v) const {
    out[split * d.K * d.CRS + (g * d.Kg + m) * d.CRS + col] = v;
  }
};

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

}  // namespace fastlayers::cuda::conv_detail
