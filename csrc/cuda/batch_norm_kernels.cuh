// Batch-norm kernels over x viewed as (N, C, S). Same formulas as csrc/cpu/batch_norm.cpp.
//
// Training (and any backward that needs sums over the batch) takes three launches, so that a few
// channels still spread over the whole GPU:
//   bn_partial_kernel:  block u = (channel c, split k) reduces a contiguous share of channel c's
//     M = N*S values. Every thread sums blocks of kBnChunk values in float about a shift (its running
//     mean so far) and folds each into double (count, mean, M2, sum dy, sum dy*(x - mean)) with
//     Chan's formula; the block merges its threads the same way. A large mean with a small variance
//     is not lost to cancellation.
//   bn_finalize_kernel: a thread per channel merges its splits in order (the result depends only on
//     the problem size, not on the device), updates the running statistics or writes the affine
//     gradients, and stores the channel's coefficients (m, a, b, c): m the mean rounded to float,
//     its rounding error folded into the constant term in double.
//   bn_apply_kernel:    elementwise, y = (x - m)*a + b, or dx = a*dy + b*(x - m) + c, or dx = a*dy.
// The eval forward and the eval backward without affine gradients are single elementwise kernels.
// blockDim.x must be a power of two <= kBnThreads. No launches here, so
// csrc/cuda/host_emulation/ can compile it.
#pragma once
#include <cmath>

#include "common/types.h"

namespace fastlayers::cuda::detail {

constexpr int kBnThreads = 256;
constexpr int kBnChunk = 32;

struct BnMoments {
  double n, mean, m2, sdy, cxy;
};

__device__ inline void bn_merge(BnMoments& a, const BnMoments& b) {
  if (b.n == 0) return;
  if (a.n == 0) {
    a = b;
    return;
  }
  const double n = a.n + b.n, d = b.mean - a.mean, fa = a.n / n, fb = b.n / n;
  a.cxy = (a.cxy - d * fb * a.sdy) + (b.cxy + d * fa * b.sdy);
  a.m2 += b.m2 + d * d * a.n * fb;
  a.mean += d * fb;
  a.sdy += b.sdy;
  a.n = n;
}

// One thread's running moments: float sums of up to kBnChunk values about the shift k, folded
// into double when full.
struct BnAccum {
  BnMoments m = {0, 0, 0, 0, 0};
  float k = 0.0f, s1 = 0.0f, s2 = 0.0f, sg = 0.0f, sgx = 0.0f;
  int cnt = 0;

  __device__ void add(float x, float g) {
    if (cnt == 0 && m.n == 0) k = x;
    const float d = x - k;
    s1 += d;
    s2 += d * d;
    sg += g;
    sgx += g * d;
    if (++cnt == kBnChunk) flush();
  }
  __device__ void flush() {
    if (cnt == 0) return;
    BnMoments p;
    p.n = cnt;
    const double e = static_cast<double>(s1) / cnt;
    p.mean = static_cast<double>(k) + e;
    p.m2 = static_cast<double>(s2) - static_cast<double>(s1) * e;
    p.sdy = sg;
    p.cxy = static_cast<double>(sgx) - e * static_cast<double>(sg);
    bn_merge(m, p);
    k = static_cast<float>(m.mean);
    s1 = s2 = sg = sgx = 0.0f;
    cnt = 0;
  }
};

// Tree merge over the block; every thread gets the total. Ends with a barrier so `red` can be reused.
__device__ inline BnMoments bn_block_reduce(const BnMoments& v, BnMoments* red) {
  const int t = threadIdx.x;
  red[t] = v;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s /= 2) {
    if (t < s) bn_merge(red[t], red[t + s]);
    __syncthreads();
  }
  const BnMoments r = red[0];
  __syncthreads();
  return r;
}

// Splits of each channel's M values: enough blocks in all to fill a large GPU (about 1024), each
// with at least 2048 values. A function of the problem size only.
inline index_t bn_splits(index_t N, index_t C, index_t S) {
  const index_t M = N * S;
  const index_t want = (1024 + C - 1) / C, most = (M + 2047) / 2048;
  const index_t s = want < most ? want : most;
  return s < 1 ? 1 : s;
}

// Block u = c * splits + k reduces values m in [M*k/splits, M*(k+1)/splits) of channel c
// (m = n*S + s); dy may be null. part[u] gets the block's moments.
__global__ void bn_partial_kernel(const float* x, const float* dy, index_t N, index_t C, index_t S,
                                  index_t splits, BnMoments* part) {
  __shared__ BnMoments red[kBnThreads];
  const index_t M = N * S, units = C * splits;
  for (index_t u = blockIdx.x; u < units; u += gridDim.x) {
    const index_t c = u / splits, k = u - c * splits;
    const index_t m0 = M * k / splits, m1 = M * (k + 1) / splits;
    BnAccum acc;
    if (S >= static_cast<index_t>(blockDim.x)) {
      // run by run: neighbouring threads read neighbouring values of a row of S
      for (index_t n = m0 / S; n * S < m1; ++n) {
        const index_t lo = n * S > m0 ? n * S : m0, hi = (n + 1) * S < m1 ? (n + 1) * S : m1;
        const index_t base = (n * C + c) * S - n * S;  // + m is the address of value m
        for (index_t m = lo + threadIdx.x; m < hi; m += blockDim.x)
          acc.add(x[base + m], dy ? dy[base + m] : 0.0f);
      }
    } else {
      for (index_t m = m0 + threadIdx.x; m < m1; m += blockDim.x) {
        const index_t n = m / S, i = (n * C + c) * S + (m - n * S);
        acc.add(x[i], dy ? dy[i] : 0.0f);
      }
    }
    acc.flush();
    const BnMoments tot = bn_block_reduce(acc.m, red);
    if (threadIdx.x == 0) part[u] = tot;
  }
}

// What bn_finalize_kernel computes from a channel's moments (modes as cpu::BnStats, plus the forward).
enum BnMode : int { kBnForward = -1, kBnBatch = 0, kBnSaved = 1, kBnRunning = 2 };

// A thread per channel: merges the channel's splits in order and writes coef[4c .. 4c+3] =
// (m, a, b, c) for bn_apply_kernel. kBnForward: the batch statistics normalise, the running
// statistics (when not null) are updated. Backward modes: mean_in / var_or_invstd as
// cpu::batch_norm_backward; gw / gb written when not null.
__global__ void bn_finalize_kernel(const BnMoments* part, index_t splits, index_t C, int mode,
                                   const float* weight, const float* bias, float* running_mean,
                                   float* running_var, const float* mean_in, const float* var_or_invstd,
                                   float* gw, float* gb, float momentum, float eps, float* coef) {
  for (index_t c = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; c < C;
       c += static_cast<index_t>(gridDim.x) * blockDim.x) {
    BnMoments tot = {0, 0, 0, 0, 0};
    for (index_t k = 0; k < splits; ++k) bn_merge(tot, part[c * splits + k]);
    const double w = weight ? static_cast<double>(weight[c]) : 1.0;
    const double var_b = (tot.m2 > 0 ? tot.m2 : 0.0) / tot.n;
    double mu, invstd;
    if (mode == kBnForward || mode == kBnBatch) {
      mu = tot.mean;
      invstd = 1.0 / sqrt(var_b + static_cast<double>(eps));
    } else if (mode == kBnSaved) {
      mu = mean_in[c];
      invstd = var_or_invstd[c];
    } else {
      mu = mean_in[c];
      invstd = 1.0 / sqrt(static_cast<double>(var_or_invstd[c]) + static_cast<double>(eps));
    }
    float* k = coef + 4 * c;
    k[0] = static_cast<float>(mu);
    const double err = mu - static_cast<double>(k[0]);  // the float mean's rounding error
    k[1] = static_cast<float>(w * invstd);
    if (mode == kBnForward) {
      if (running_mean != nullptr) {
        const double mom = momentum;
        const double unbiased = tot.n > 1 ? var_b * (tot.n / (tot.n - 1)) : var_b;
        running_mean[c] = static_cast<float>((1.0 - mom) * running_mean[c] + mom * tot.mean);
        running_var[c] = static_cast<float>((1.0 - mom) * running_var[c] + mom * unbiased);
      }
      k[2] = static_cast<float>((bias ? static_cast<double>(bias[c]) : 0.0) - err * w * invstd);
      k[3] = 0.0f;
    } else {
      const double cxy = tot.cxy + (tot.mean - mu) * tot.sdy;  // sum dy * (x - mu)
      if (gw) gw[c] = static_cast<float>(cxy * invstd);
      if (gb) gb[c] = static_cast<float>(tot.sdy);
      const bool train = mode != kBnRunning;
      const double b = train ? -w * invstd * invstd * invstd * cxy / tot.n : 0.0;
      k[2] = static_cast<float>(b);
      k[3] = train ? static_cast<float>(-w * invstd * tot.sdy / tot.n - err * b) : 0.0f;
    }
  }
}

// Elementwise with the coefficients of bn_finalize_kernel. apply: 0 normalise (out = y),
// 1 training backward (out = dx), 2 eval backward (out = a*dy). Planes of S values per block
// iteration when S is long (one division per plane), else flat indices.
__global__ void bn_apply_kernel(int apply, const float* x, const float* dy, float* out, const float* coef,
                                index_t N, index_t C, index_t S) {
  auto one = [&](index_t i, const float* k) {
    if (apply == 0) out[i] = (x[i] - k[0]) * k[1] + k[2];
    else if (apply == 1) out[i] = k[1] * dy[i] + (k[2] * (x[i] - k[0]) + k[3]);
    else out[i] = k[1] * dy[i];
  };
  if (S >= static_cast<index_t>(blockDim.x)) {
    for (index_t q = blockIdx.x; q < N * C; q += gridDim.x) {
      const float* k = coef + 4 * (q % C);
      for (index_t s = threadIdx.x; s < S; s += blockDim.x) one(q * S + s, k);
    }
  } else {
    const index_t total = N * C * S;
    for (index_t i = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; i < total;
         i += static_cast<index_t>(gridDim.x) * blockDim.x)
      one(i, coef + 4 * ((i / S) % C));
  }
}

// Eval forward, elementwise: y = (x - rm) * (w / sqrt(rv + eps)) + b per channel (c = (i / S) % C).
__global__ void bn_forward_eval_kernel(const float* x, float* y, const float* weight, const float* bias,
                                       const float* running_mean, const float* running_var,
                                       index_t N, index_t C, index_t S, float eps) {
  const index_t total = N * C * S;
  for (index_t i = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<index_t>(gridDim.x) * blockDim.x) {
    const index_t c = (i / S) % C;
    const float a = (weight ? weight[c] : 1.0f) / sqrtf(running_var[c] + eps);
    y[i] = (x[i] - running_mean[c]) * a + (bias ? bias[c] : 0.0f);
  }
}

// Eval backward without affine gradients, elementwise: grad_x = dy * w / sqrt(running_var + eps).
__global__ void bn_backward_scale_kernel(const float* dy, const float* weight, const float* running_var,
                                         float* gx, index_t N, index_t C, index_t S, float eps) {
  const index_t total = N * C * S;
  for (index_t i = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<index_t>(gridDim.x) * blockDim.x) {
    const index_t c = (i / S) % C;
    gx[i] = dy[i] * ((weight ? weight[c] : 1.0f) / sqrtf(running_var[c] + eps));
  }
}

// w' = w * s[k], b' = (b - mean) * s + bias, s = weight / sqrt(var + eps); over K * per_k weights
// (the first K indices also write b'; per_k may be 0).
__global__ void fold_batch_norm_kernel(const float* w, const float* b, const float* running_mean,
                                       const float* running_var, const float* weight, const float* bias,
                                       float* w_out, float* b_out, index_t K, index_t per_k, float eps) {
  const index_t nw = K * per_k, total = nw > K ? nw : K;
  for (index_t i = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<index_t>(gridDim.x) * blockDim.x) {
    if (i < nw) {
      const index_t k = i / per_k;
      const double s = (weight ? static_cast<double>(weight[k]) : 1.0) /
                       sqrt(static_cast<double>(running_var[k]) + static_cast<double>(eps));
      w_out[i] = w[i] * static_cast<float>(s);
    }
    if (i < K) {
      const double sk = (weight ? static_cast<double>(weight[i]) : 1.0) /
                        sqrt(static_cast<double>(running_var[i]) + static_cast<double>(eps));
      b_out[i] = static_cast<float>(((b ? static_cast<double>(b[i]) : 0.0) - running_mean[i]) * sk +
                                    (bias ? static_cast<double>(bias[i]) : 0.0));
    }
  }
}

}  // namespace fastlayers::cuda::detail
