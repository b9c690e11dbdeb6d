// Loss kernels. The forwards sum per-element (or per-row) terms in double, as the CPU does
// (csrc/cpu/loss.cpp), with a deterministic two-pass reduction and no atomics: pass 1 has a
// grid fixed by n alone, each block sums a fixed strided subset and tree-reduces it in shared
// memory into partial[block]; pass 2 (one block) adds the partials the same way and writes
// float(scale * total) into loss[0]. With a one-block pass 1 the block writes loss[0] itself.
// The summation order differs from the CPU's, so GPU and CPU agree to rounding, not bitwise;
// the GPU result is the same on every run for the same n.
// The backwards are elementwise (or a thread per row for softmax cross-entropy).
// No launches here, so csrc/cuda/host_emulation/ can compile it with g++.
#pragma once
#include <cmath>
#include <cstdint>

#include "common/types.h"

namespace fastlayers::cuda::detail {

constexpr int kReduceThreads = 256;  // a power of two (tree reduction)

// Block tree reduction of v (double); the result is valid in thread 0.
__device__ inline double block_sum(double v, double* red) {
  const int t = threadIdx.x;
  red[t] = v;
  __syncthreads();
  for (int s = kReduceThreads / 2; s > 0; s /= 2) {
    if (t < s) red[t] += red[t + s];
    __syncthreads();
  }
  return red[0];
}

template <class Term>
__global__ void sum_terms_kernel(index_t n, Term term, double* partial, float* loss, double scale) {
  __shared__ double red[kReduceThreads];
  double s = 0.0;
  for (index_t i = blockIdx.x * static_cast<index_t>(kReduceThreads) + threadIdx.x; i < n;
       i += static_cast<index_t>(gridDim.x) * kReduceThreads)
    s += term(i);
  s = block_sum(s, red);
  if (threadIdx.x == 0) {
    if (gridDim.x == 1) loss[0] = static_cast<float>(s * scale);
    else partial[blockIdx.x] = s;
  }
}

__global__ void sum_partials_kernel(const double* partial, int count, float* loss,
                                           double scale) {
  __shared__ double red[kReduceThreads];
  double s = 0.0;
  for (int i = threadIdx.x; i < count; i += kReduceThreads) s += partial[i];
  s = block_sum(s, red);
  if (threadIdx.x == 0) loss[0] = static_cast<float>(s * scale);
}

// ---- the terms: same formulas as csrc/cpu/loss.cpp ----

// log(1 + exp(x)) without overflow; written as max(x, 0) the way std::max does it (NaN stays).
__device__ inline double softplus(double x) { return (x < 0.0 ? 0.0 : x) + log1p(exp(-fabs(x))); }

__device__ inline double sigmoid(double x) {
  if (x >= 0.0) return 1.0 / (1.0 + exp(-x));
  const double e = exp(x);
  return e / (1.0 + e);
}

__device__ inline double row_logsumexp(const float* z, index_t c) {
  float m = z[0];
  for (index_t j = 1; j < c; ++j) m = z[j] > m ? z[j] : m;
  double s = 0.0;
  for (index_t j = 0; j < c; ++j) s += exp(static_cast<double>(z[j]) - m);
  return m + log(s);
}

struct MseTerm {
  const float *pred, *target;
  __device__ double operator()(index_t i) const {
    const double d = static_cast<double>(pred[i]) - target[i];
    return d * d;
  }
};
struct BceTerm {
  const float *logits, *target;
  __device__ double operator()(index_t i) const {
    const double z = logits[i];
    return softplus(z) - z * target[i];
  }
};
struct LogisticTerm {
  const float *scores, *labels;
  __device__ double operator()(index_t i) const {
    return softplus(-static_cast<double>(labels[i]) * scores[i]);
  }
};
struct HingeTerm {
  const float *scores, *labels;
  double margin;
  __device__ double operator()(index_t i) const {
    const double m = margin - static_cast<double>(labels[i]) * scores[i];
    return m > 0.0 ? m : (m != m ? m : 0.0);
  }
};
struct SceTerm {  // one row of logits (c classes) per term
  const float* logits;
  const std::int64_t* labels;
  index_t c;
  __device__ double operator()(index_t i) const {
    const float* z = logits + i * c;
    return row_logsumexp(z, c) - z[labels[i]];
  }
};
struct SceProbTerm {
  const float *logits, *target;
  index_t c;
  __device__ double operator()(index_t i) const {
    const float* z = logits + i * c;
    const float* t = target + i * c;
    const double lse = row_logsumexp(z, c);
    double r = 0.0;
    for (index_t j = 0; j < c; ++j) r += t[j] * (lse - z[j]);
    return r;
  }
};

// ---- backwards ----

#define FL_GRID_STRIDE(i, n)                                                                  \
  for (index_t i = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; i < (n); \
       i += static_cast<index_t>(gridDim.x) * blockDim.x)

__global__ void mse_backward_kernel(const float* pred, const float* target, float* grad,
                                           index_t n, float k) {
  FL_GRID_STRIDE(i, n) grad[i] = k * (pred[i] - target[i]);
}

__global__ void bce_backward_kernel(const float* logits, const float* target, float* grad,
                                           index_t n, double scale) {
  FL_GRID_STRIDE(i, n) grad[i] = static_cast<float>(scale * (sigmoid(logits[i]) - target[i]));
}

__global__ void logistic_backward_kernel(const float* scores, const float* labels,
                                                float* grad, index_t n, double scale) {
  FL_GRID_STRIDE(i, n) {
    const double y = labels[i];
    grad[i] = static_cast<float>(-scale * y * sigmoid(-y * scores[i]));
  }
}

__global__ void hinge_backward_kernel(const float* scores, const float* labels, float* grad,
                                             index_t n, double margin, double scale) {
  FL_GRID_STRIDE(i, n) {
    const double y = labels[i];
    const double m = margin - y * scores[i];
    grad[i] = static_cast<float>(m > 0.0 ? -scale * y : (m != m ? m : 0.0));
  }
}

__global__ void sce_backward_kernel(const float* logits, const std::int64_t* labels,
                                           float* grad, index_t n, index_t c, double scale) {
  FL_GRID_STRIDE(i, n) {
    const float* z = logits + i * c;
    float* g = grad + i * c;
    const double lse = row_logsumexp(z, c);
    for (index_t j = 0; j < c; ++j) g[j] = static_cast<float>(scale * exp(z[j] - lse));
    const index_t y = labels[i];
    g[y] = static_cast<float>(scale * (exp(z[y] - lse) - 1.0));
  }
}

__global__ void sce_prob_backward_kernel(const float* logits, const float* target,
                                                float* grad, index_t n, index_t c, double scale) {
  FL_GRID_STRIDE(i, n) {
    const float* z = logits + i * c;
    const float* t = target + i * c;
    float* g = grad + i * c;
    const double lse = row_logsumexp(z, c);
    double tsum = 0.0;
    for (index_t j = 0; j < c; ++j) tsum += t[j];
    for (index_t j = 0; j < c; ++j) g[j] = static_cast<float>(scale * (exp(z[j] - lse) * tsum - t[j]));
  }
}

#undef FL_GRID_STRIDE

}  // namespace fastlayers::cuda::detail
