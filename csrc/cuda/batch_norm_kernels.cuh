// Batch-norm kernels over x viewed as (N, C, S). Same formulas as csrc/cpu/batch_norm.cpp:
//   statistics: every thread sums blocks of kBnChunk values in float about a shift (its running
//   mean so far), folds each block into double (count, mean, M2, sum dy, sum dy*(x - mean)) with
//   Chan's formula, and the block merges its threads the same way, so a large mean with a small
//   variance is not lost to cancellation;
//   normalise: y = ((x - mh) - ml) * a + b, the mean split into two floats.
// One block per channel (grid-stride over channels) for everything that reduces; elementwise
// kernels for the eval forward and the eval backward without affine gradients. blockDim.x must be
// a power of two <= kBnThreads. No launches here, so csrc/cuda/host_emulation/ can compile it.
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

// f(i) for every index i of channel c, spread over the block's threads: row by row when a row of
// S values keeps the threads busy, else over the flattened (n, s) with a division.
template <class F>
__device__ inline void bn_for_channel(index_t N, index_t C, index_t S, index_t c, F f) {
  if (S >= static_cast<index_t>(blockDim.x)) {
    for (index_t n = 0; n < N; ++n) {
      const index_t base = (n * C + c) * S;
      for (index_t s = threadIdx.x; s < S; s += blockDim.x) f(base + s);
    }
  } else {
    for (index_t m = threadIdx.x; m < N * S; m += blockDim.x) {
      const index_t n = m / S;
      f((n * C + c) * S + (m - n * S));
    }
  }
}

__device__ inline void bn_split_mean(double mean, float& mh, float& ml) {
  mh = static_cast<float>(mean);
  ml = static_cast<float>(mean - static_cast<double>(mh));
}

// Training forward: batch statistics, running statistics updated (when not null), normalise.
__global__ void bn_forward_train_kernel(const float* x, float* y, const float* weight,
                                        const float* bias, float* running_mean, float* running_var,
                                        index_t N, index_t C, index_t S, float momentum, float eps) {
  __shared__ BnMoments red[kBnThreads];
  __shared__ float coef[4];
  for (index_t c = blockIdx.x; c < C; c += gridDim.x) {
    BnAccum acc;
    bn_for_channel(N, C, S, c, [&](index_t i) { acc.add(x[i], 0.0f); });
    acc.flush();
    const BnMoments tot = bn_block_reduce(acc.m, red);
    if (threadIdx.x == 0) {
      const double var = (tot.m2 > 0 ? tot.m2 : 0.0) / tot.n;
      if (running_mean != nullptr) {
        const double mom = momentum;
        const double unbiased = tot.n > 1 ? var * (tot.n / (tot.n - 1)) : var;
        running_mean[c] = static_cast<float>((1.0 - mom) * running_mean[c] + mom * tot.mean);
        running_var[c] = static_cast<float>((1.0 - mom) * running_var[c] + mom * unbiased);
      }
      const double invstd = 1.0 / sqrt(var + static_cast<double>(eps));
      bn_split_mean(tot.mean, coef[0], coef[1]);
      coef[2] = static_cast<float>((weight ? static_cast<double>(weight[c]) : 1.0) * invstd);
      coef[3] = bias ? bias[c] : 0.0f;
    }
    __syncthreads();
    const float mh = coef[0], ml = coef[1], a = coef[2], b = coef[3];
    bn_for_channel(N, C, S, c, [&](index_t i) { y[i] = ((x[i] - mh) - ml) * a + b; });
    __syncthreads();  // coef is rewritten for the next channel
  }
}

// Eval forward, elementwise: y = ((x - rm) * invstd) * w + b per channel (c = (i / S) % C).
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

// stats: 0 batch (recomputed), 1 saved (mean, invstd), 2 running (mean, var) — as cpu::BnStats.
// Sums dy and dy * (x - mean) per channel, writes the affine gradients (when not null) and
// grad_x (training: a*dy + b*(x - mean) + c; eval: a*dy).
__global__ void bn_backward_kernel(const float* dy, const float* x, const float* weight,
                                   const float* mean, const float* var_or_invstd, int stats,
                                   float* gx, float* gw, float* gb, index_t N, index_t C, index_t S,
                                   float eps) {
  __shared__ BnMoments red[kBnThreads];
  __shared__ float coef[5];
  for (index_t c = blockIdx.x; c < C; c += gridDim.x) {
    BnAccum acc;
    bn_for_channel(N, C, S, c, [&](index_t i) { acc.add(x[i], dy[i]); });
    acc.flush();
    const BnMoments tot = bn_block_reduce(acc.m, red);
    if (threadIdx.x == 0) {
      const double w = weight ? static_cast<double>(weight[c]) : 1.0;
      double mu, invstd;
      if (stats == 0) {
        mu = tot.mean;
        invstd = 1.0 / sqrt((tot.m2 > 0 ? tot.m2 : 0.0) / tot.n + static_cast<double>(eps));
      } else if (stats == 1) {
        mu = mean[c];
        invstd = var_or_invstd[c];
      } else {
        mu = mean[c];
        invstd = 1.0 / sqrt(static_cast<double>(var_or_invstd[c]) + static_cast<double>(eps));
      }
      const double cxy = tot.cxy + (tot.mean - mu) * tot.sdy;
      if (gw) gw[c] = static_cast<float>(cxy * invstd);
      if (gb) gb[c] = static_cast<float>(tot.sdy);
      bn_split_mean(mu, coef[0], coef[1]);
      coef[2] = static_cast<float>(w * invstd);
      coef[3] = stats == 2 ? 0.0f : static_cast<float>(-w * invstd * invstd * invstd * cxy / tot.n);
      coef[4] = stats == 2 ? 0.0f : static_cast<float>(-w * invstd * tot.sdy / tot.n);
    }
    __syncthreads();
    const float mh = coef[0], ml = coef[1], a = coef[2], b = coef[3], k = coef[4];
    if (stats == 2) {
      bn_for_channel(N, C, S, c, [&](index_t i) { gx[i] = a * dy[i]; });
    } else {
      bn_for_channel(N, C, S, c, [&](index_t i) { gx[i] = a * dy[i] + b * ((x[i] - mh) - ml) + k; });
    }
    __syncthreads();
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
