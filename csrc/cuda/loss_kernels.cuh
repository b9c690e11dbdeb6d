// Loss kernels (launchers in loss.cu). No launches here, so csrc/cuda/host_emulation/ can compile
// this with g++ (warp shuffles and atomicCAS emulated by host_emulation/cuda_shim.h).
//
// Reductions ("sum"/"mean") are deterministic two-pass sums with no atomics: pass 1 has a grid
// fixed by the problem size alone, each block sums a fixed subset in double and writes its partial
// (two doubles: the loss and, for class-index losses, the target weight) into the caller's
// workspace; pass 2 (one block) adds the partials in a fixed order and writes
// float(loss_sum / weight_sum) ("mean" of a class-index loss), float(loss_sum * scale) otherwise.
// The GPU sums in a different order than the CPU: they agree to rounding, not bitwise; the GPU
// gives the same bits on every run.
//
// Cross-entropy over (n, c, d) logits:
// - d == 1: a team per row — a warp (c <= kWarpRowMax) or a 256-thread block — reads the row once
//   with float4 loads where aligned, keeping an online (max, sum of exp) pair per thread (float
//   math, no FP64 per element), combined across the team with shuffles; the backward reads the row
//   a second time (from cache) to write the gradient.
// - d > 1 (per-pixel classification): a thread per position walks the classes at stride d, so a
//   warp reads 32 neighbouring positions of each class row: coalesced. Rows of at most
//   kThreadRowMax classes (d == 1) take the same kernels: a thread per row, 32 rows per warp in
//   flight (a warp team per 10-class row measured 62 GB/s on an H200, 2 % of its bandwidth).
// Labels are checked as they are read: a class index outside [0, c) that is not ignore_index (or a
// +-1 label that is neither) makes the sample's loss and gradient NaN and is recorded in the
// status word (report_bad_label; csrc/cuda/loss.h), so no host copy is needed per call.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "common/loss_terms.h"
#include "common/types.h"

namespace fastlayers::cuda::detail {

constexpr int kReduceThreads = 256;  // a power of two (tree reduction)
constexpr int kMaxPartials = 1024;   // pass-1 blocks at most; 2 doubles each in the workspace
constexpr int kWorkspaceWeight = 2 * kMaxPartials;  // workspace slot: the backward's 1 / weight
constexpr int kWorkspaceWsum = kWorkspaceWeight + 1;  // slot: the class weights' sum
constexpr int kTeamBlock = 256;
constexpr int kWarpRowMax = 1024;  // rows up to this many classes: a warp each, above: a block
constexpr int kRowsPerBlock = kTeamBlock / 32;
constexpr int kThreadRowMax = 16;  // rows up to this many classes (d == 1): a thread each, as d > 1

static_assert(kWorkspaceWsum < loss::kWorkspaceDoubles, "workspace too small");

// ------------------------------------------------------------------ status

__device__ inline std::int64_t float_bits(float y) {
  std::uint32_t u;
  memcpy(&u, &y, sizeof u);
  return static_cast<std::int64_t>(u);
}

// The first bad label wins the status word; later ones leave it alone.
__device__ inline void report_bad_label(std::int64_t* status, std::int64_t code, std::int64_t value,
                                        std::int64_t classes) {
  if (!status) return;
  unsigned long long* word = reinterpret_cast<unsigned long long*>(status);
  if (atomicCAS(word, 0ULL, static_cast<unsigned long long>(code)) == 0ULL) {
    status[1] = value;
    status[2] = classes;
  }
}

// ------------------------------------------------------------------ block / warp reductions

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

template <class T>
__device__ inline T warp_sum(T v) {
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;  // the same in every lane (butterfly)
}

// Online softmax state: max m and sum of exp(x - m) over the values seen.
struct MaxSum {
  float m, s;
};

__device__ inline void online_add(MaxSum& st, float x) {
  if (x > st.m) {
    st.s = st.s * expf(st.m - x) + 1.0f;  // the first finite x: 0 * exp(-inf) + 1
    st.m = x;
  } else {
    st.s += x == -INFINITY ? 0.0f : expf(x - st.m);  // NaN poisons s (it never wins the max)
  }
}

__device__ inline MaxSum combine(MaxSum a, MaxSum b) {
  const float m = fmaxf(a.m, b.m);
  const float sa = a.s == 0.0f ? 0.0f : a.s * expf(a.m - m);
  const float sb = b.s == 0.0f ? 0.0f : b.s * expf(b.m - m);
  return {m, sa + sb};
}

__device__ inline MaxSum warp_combine(MaxSum st) {
  for (int o = 16; o > 0; o /= 2) {
    MaxSum other{__shfl_xor_sync(0xffffffffu, st.m, o), __shfl_xor_sync(0xffffffffu, st.s, o)};
    st = combine(st, other);
  }
  return st;
}

// A team reads one row: a warp (kThreads = 32; a block holds blockDim.x / 32 of them) or the
// whole block (kThreads = kTeamBlock = blockDim.x). Its reductions return the same value in every
// thread of the team.
template <int kThreads>
struct Team {
  static constexpr int threads = kThreads;
  __device__ static int rank() { return kThreads == 32 ? static_cast<int>(threadIdx.x % 32) : static_cast<int>(threadIdx.x); }

  __device__ static MaxSum reduce(MaxSum st) {
    st = warp_combine(st);
    if constexpr (kThreads == 32) {
      return st;
    } else {
      __shared__ float sm[kThreads / 32], ss[kThreads / 32];
      __syncthreads();  // the previous row's reads of sm/ss are done
      if (threadIdx.x % 32 == 0) {
        sm[threadIdx.x / 32] = st.m;
        ss[threadIdx.x / 32] = st.s;
      }
      __syncthreads();
      MaxSum r{sm[0], ss[0]};
      for (int w = 1; w < kThreads / 32; ++w) r = combine(r, MaxSum{sm[w], ss[w]});
      return r;
    }
  }

  __device__ static double sum(double v) {
    v = warp_sum(v);
    if constexpr (kThreads == 32) {
      return v;
    } else {
      __shared__ double sd[kThreads / 32];
      __syncthreads();
      if (threadIdx.x % 32 == 0) sd[threadIdx.x / 32] = v;
      __syncthreads();
      double r = 0.0;
      for (int w = 0; w < kThreads / 32; ++w) r += sd[w];
      return r;
    }
  }
};

// Calls f(j, z[j]) for the team member's share of the row z[0..c), float4 loads when aligned.
template <class TeamT, class F>
__device__ inline void for_row(const float* z, index_t c, F f) {
  const int r = TeamT::rank();
  if ((reinterpret_cast<std::uintptr_t>(z) & 15) == 0) {
    const index_t c4 = c / 4;
    const float4* z4 = reinterpret_cast<const float4*>(z);
    for (index_t q = r; q < c4; q += TeamT::threads) {
      const float4 v = z4[q];
      f(4 * q, v.x);
      f(4 * q + 1, v.y);
      f(4 * q + 2, v.z);
      f(4 * q + 3, v.w);
    }
    for (index_t j = 4 * c4 + r; j < c; j += TeamT::threads) f(j, z[j]);
  } else {
    for (index_t j = r; j < c; j += TeamT::threads) f(j, z[j]);
  }
}

// ------------------------------------------------------------------ pass 2 and partial writes

// Writes a block's two partial sums (thread 0 holds them) or, with a one-block grid, the result.
struct Finish {
  double* partial;  // 2 per block
  float* out;
  int reduction;
  double scale;  // "mean" of an elementwise loss: 1 / n (class-index losses divide by the weight)
  bool by_weight;

  __device__ double result(double loss, double weight) const {
    if (reduction == loss::kMean) return by_weight ? loss / weight : loss * scale;
    return loss;
  }
  __device__ void block_done(double loss, double weight) const {
    if (threadIdx.x != 0) return;
    if (gridDim.x == 1) {
      out[0] = static_cast<float>(result(loss, weight));
    } else {
      partial[2 * blockIdx.x] = loss;
      partial[2 * blockIdx.x + 1] = weight;
    }
  }
};

__global__ void sum_partials_kernel(const double* partial, int count, Finish fin) {
  __shared__ double red[kReduceThreads];
  double a = 0.0, b = 0.0;
  for (int i = threadIdx.x; i < count; i += kReduceThreads) {
    a += partial[2 * i];
    b += partial[2 * i + 1];
  }
  a = block_sum(a, red);
  __syncthreads();
  b = block_sum(b, red);
  if (threadIdx.x == 0) fin.out[0] = static_cast<float>(fin.result(a, b));
}

// ------------------------------------------------------------------ elementwise losses

// term(i) -> the loss of element i (double); grad(i) -> its derivative.
template <class F>
struct PairTerm {
  const float *a, *b;
  F f;
  std::int64_t* status;  // +-1 label check when code != 0
  std::int64_t code;
  __device__ bool ok(index_t i) const {
    if (code == 0 || loss::is_pm1(b[i])) return true;
    report_bad_label(status, code, float_bits(b[i]), 0);
    return false;
  }
  __device__ double value(index_t i) const { return ok(i) ? f.value(a[i], b[i]) : NAN; }
  __device__ double grad(index_t i) const { return ok(i) ? f.grad(a[i], b[i]) : NAN; }
};

struct BceTerm {
  const float *x, *t, *w, *pw;
  __device__ double value(index_t i) const {
    const double v = loss::bce_value(x[i], t[i], pw ? static_cast<double>(pw[i]) : 1.0);
    return w ? v * w[i] : v;
  }
  __device__ double grad(index_t i) const {
    const double g = pw ? loss::bce_grad(x[i], t[i], pw[i]) : loss::sigmoid(x[i]) - t[i];
    return w ? g * w[i] : g;
  }
};

#define FL_GRID_STRIDE(i, n)                                                                  \
  for (index_t i = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; i < (n); \
       i += static_cast<index_t>(gridDim.x) * blockDim.x)

// Pass 1 of a reduced elementwise loss (kReduceThreads per block).
template <class Term>
__global__ void elementwise_sum_kernel(index_t n, Term term, Finish fin) {
  __shared__ double red[kReduceThreads];
  double s = 0.0;
  FL_GRID_STRIDE(i, n) s += term.value(i);
  s = block_sum(s, red);
  fin.block_done(s, 0.0);
}

template <class Term>
__global__ void elementwise_none_kernel(index_t n, Term term, float* out) {
  FL_GRID_STRIDE(i, n) out[i] = static_cast<float>(term.value(i));
}

// grad[i] = k * grad_out[i or 0] * term.grad(i); grad_out may be null (1).
template <class Term>
__global__ void elementwise_grad_kernel(index_t n, Term term, const float* grad_out, bool per_element,
                                        double k, float* grad) {
  FL_GRID_STRIDE(i, n) {
    const double g = grad_out ? static_cast<double>(grad_out[per_element ? i : 0]) : 1.0;
    grad[i] = static_cast<float>(k * g * term.grad(i));
  }
}

// ------------------------------------------------------------------ cross-entropy and nll

struct ClassArgs {
  const float* z;  // logits (ce) or log-probabilities (nll), (n, c, d)
  const std::int64_t* labels;  // (n, d)
  const float* weight;  // (c) or null
  index_t n, c, d;
  std::int64_t ignore;
  float eps;             // label smoothing
  const double* wsum_p;  // with smoothing and weights: the weights' sum (weight_sum_kernel)
  int reduction;
  std::int64_t* status;
  std::int64_t code;

  __device__ float w(index_t j) const { return weight ? weight[j] : 1.0f; }
  __device__ float wsum() const { return wsum_p ? static_cast<float>(wsum_p[0]) : static_cast<float>(c); }
  // 0 ignored, 1 valid, -1 bad (reported)
  __device__ int classify(std::int64_t y) const {
    if (y == ignore) return 0;
    if (y >= 0 && y < c) return 1;
    report_bad_label(status, code, y, c);
    return -1;
  }
};

// The upstream factor of sample p: grad_out[p] ("none") or grad_out[0] (null: 1), times the
// "mean" divisor's inverse: 1 / weight (workspace slot kWorkspaceWeight, written by the weight
// pass) for class indices, 1 / (n d) for probability targets.
struct Upstream {
  const float* grad_out;
  const double* inv_weight;  // class-index "mean": 1 / weight on the device; else null
  bool per_sample;
  double scale;  // probability targets' "mean": 1 / (n d); else 1
  __device__ float at(index_t p) const {
    double g = grad_out ? static_cast<double>(grad_out[per_sample ? p : 0]) : 1.0;
    if (inv_weight) g *= inv_weight[0];
    return static_cast<float>(g * scale);
  }
};

// Loss of one sample from m, log(sum exp(z - m)) = ls, the target logit zy and, with smoothing,
// a = sum_j w_j (m - z_j).
__device__ inline double class_sample_loss(const ClassArgs& A, float wy, float m, double ls, float zy,
                                           double a) {
  const double nll = static_cast<double>(wy) * (static_cast<double>(m - zy) + ls);
  if (A.eps <= 0.0f) return nll;
  const double smooth = static_cast<double>(A.wsum()) * ls + a;
  return (1.0 - A.eps) * nll + (A.eps / static_cast<double>(A.c)) * smooth;
}

// d == 1, a team per row. Pass 1 of a reduction (or the per-row loss for "none").
template <int kThreads>
__global__ void ce_rows_forward_kernel(ClassArgs A, Finish fin, float* out_none) {
  using TeamT = Team<kThreads>;
  const index_t per_block = blockDim.x / kThreads;  // warp teams: any multiple of 32 threads
  const index_t team = blockIdx.x * per_block + threadIdx.x / kThreads;
  const index_t teams = static_cast<index_t>(gridDim.x) * per_block;
  double acc = 0.0, accw = 0.0;  // meaningful in the team's rank-0 thread
  for (index_t row = team; row < A.n; row += teams) {
    const float* z = A.z + row * A.c;
    MaxSum st{-INFINITY, 0.0f};
    for_row<TeamT>(z, A.c, [&](index_t, float x) { online_add(st, x); });
    st = TeamT::reduce(st);
    const std::int64_t y = A.labels[row];
    const int kind = A.classify(y);
    double a = 0.0;
    if (A.eps > 0.0f && kind > 0) {
      float part = 0.0f;  // sum_j w_j (m - z_j): terms >= 0 for non-negative weights
      for_row<TeamT>(z, A.c, [&](index_t j, float x) { part += A.w(j) * (st.m - x); });
      a = TeamT::sum(static_cast<double>(part));
    }
    double v = 0.0, wy = 0.0;
    if (kind > 0) {
      wy = A.w(y);
      v = class_sample_loss(A, static_cast<float>(wy), st.m, log(static_cast<double>(st.s)), z[y], a);
    } else if (kind < 0) {
      v = NAN;  // the loss shows it; the mean's divisor does not
    }
    if (TeamT::rank() == 0) {
      if (out_none) out_none[row] = static_cast<float>(v);
      acc += v;
      accw += wy;
    }
  }
  if (out_none) return;
  __shared__ double red[kReduceThreads];
  const bool leader = TeamT::rank() == 0;
  const double s = block_sum(leader ? acc : 0.0, red);
  __syncthreads();
  const double sw = block_sum(leader ? accw : 0.0, red);
  fin.block_done(s, sw);
}

// d > 1: a thread per position p = (sample, position); classes at stride d.
__global__ void ce_positions_forward_kernel(ClassArgs A, Finish fin, float* out_none) {
  double acc = 0.0, accw = 0.0;
  const index_t positions = A.n * A.d;
  FL_GRID_STRIDE(p, positions) {
    const index_t s = p / A.d, q = p % A.d;
    const float* z = A.z + s * A.c * A.d + q;
    MaxSum st{-INFINITY, 0.0f};
#pragma unroll 4
    for (index_t j = 0; j < A.c; ++j) online_add(st, z[j * A.d]);
    const std::int64_t y = A.labels[p];
    const int kind = A.classify(y);
    double v = 0.0, wy = 0.0;
    if (kind > 0) {
      double a = 0.0;
      if (A.eps > 0.0f)
        for (index_t j = 0; j < A.c; ++j) a += static_cast<double>(A.w(j) * (st.m - z[j * A.d]));
      wy = A.w(y);
      v = class_sample_loss(A, static_cast<float>(wy), st.m, log(static_cast<double>(st.s)),
                            z[y * A.d], a);
    } else if (kind < 0) {
      v = NAN;  // the loss shows it; the mean's divisor does not
    }
    if (out_none) out_none[p] = static_cast<float>(v);
    acc += v;
    accw += wy;
  }
  if (out_none) return;
  __shared__ double red[kReduceThreads];
  const double s = block_sum(acc, red);
  __syncthreads();
  const double sw = block_sum(accw, red);
  fin.block_done(s, sw);
}

// Pass 1 of the summed target weight (the backward's "mean" divisor); fin.out unused: the
// result goes to workspace[kWorkspaceWeight] as 1 / weight (see inverse_weight_kernel).
__global__ void target_weight_kernel(ClassArgs A, double* partial) {
  __shared__ double red[kReduceThreads];
  double s = 0.0;
  const index_t positions = A.n * A.d;
  FL_GRID_STRIDE(p, positions) {
    const std::int64_t y = A.labels[p];
    if (y == A.ignore) continue;
    if (y >= 0 && y < A.c) s += A.w(y);  // a bad label adds nothing (the grad kernel reports it)
  }
  s = block_sum(s, red);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

// The class weights' sum into out[0] (one block), for label smoothing with weights.
__global__ void weight_sum_kernel(const float* weight, index_t c, double* out) {
  __shared__ double red[kReduceThreads];
  double s = 0.0;
  for (index_t j = threadIdx.x; j < c; j += kReduceThreads) s += weight[j];
  s = block_sum(s, red);
  if (threadIdx.x == 0) out[0] = s;
}

__global__ void inverse_weight_kernel(const double* partial, int count, double* inv) {
  __shared__ double red[kReduceThreads];
  double s = 0.0;
  for (int i = threadIdx.x; i < count; i += kReduceThreads) s += partial[i];
  s = block_sum(s, red);
  if (threadIdx.x == 0) inv[0] = 1.0 / s;  // 1 / 0 = inf: only non-ignored rows use it
}

// Gradient of one sample: g_j = coef * exp(z_j - m) - smooth * w_j - [j == y] hit.
struct ClassGrad {
  float coef, smooth, hit;
};

__device__ inline ClassGrad class_grad(const ClassArgs& A, float u, float wy, const MaxSum& st) {
  const float cinv = 1.0f / static_cast<float>(A.c);
  const float q = A.eps > 0.0f ? (1.0f - A.eps) * wy + A.eps * cinv * A.wsum() : wy;
  return {u * q / st.s, A.eps > 0.0f ? u * A.eps * cinv : 0.0f, u * (1.0f - A.eps) * wy};
}

template <int kThreads>
__global__ void ce_rows_backward_kernel(ClassArgs A, Upstream up, float* grad) {
  using TeamT = Team<kThreads>;
  const index_t per_block = blockDim.x / kThreads;  // warp teams: any multiple of 32 threads
  const index_t team = blockIdx.x * per_block + threadIdx.x / kThreads;
  const index_t teams = static_cast<index_t>(gridDim.x) * per_block;
  for (index_t row = team; row < A.n; row += teams) {
    const float* z = A.z + row * A.c;
    float* g = grad + row * A.c;
    const std::int64_t y = A.labels[row];
    const int kind = A.classify(y);
    if (kind <= 0) {  // ignored: exactly 0; bad: NaN
      const float fill = kind == 0 ? 0.0f : NAN;
      for (index_t j = TeamT::rank(); j < A.c; j += TeamT::threads) g[j] = fill;
      continue;
    }
    MaxSum st{-INFINITY, 0.0f};
    for_row<TeamT>(z, A.c, [&](index_t, float x) { online_add(st, x); });
    st = TeamT::reduce(st);
    const ClassGrad k = class_grad(A, up.at(row), A.w(y), st);
    for_row<TeamT>(z, A.c, [&](index_t j, float x) {
      float v = k.coef * expf(x - st.m) - k.smooth * A.w(j);
      if (j == y) v -= k.hit;
      g[j] = v;
    });
  }
}

__global__ void ce_positions_backward_kernel(ClassArgs A, Upstream up, float* grad) {
  const index_t positions = A.n * A.d;
  FL_GRID_STRIDE(p, positions) {
    const index_t s = p / A.d, q = p % A.d;
    const float* z = A.z + s * A.c * A.d + q;
    float* g = grad + s * A.c * A.d + q;
    const std::int64_t y = A.labels[p];
    const int kind = A.classify(y);
    if (kind <= 0) {
      const float fill = kind == 0 ? 0.0f : NAN;
      for (index_t j = 0; j < A.c; ++j) g[j * A.d] = fill;
      continue;
    }
    MaxSum st{-INFINITY, 0.0f};
#pragma unroll 4
    for (index_t j = 0; j < A.c; ++j) online_add(st, z[j * A.d]);
    const ClassGrad k = class_grad(A, up.at(p), A.w(y), st);
    for (index_t j = 0; j < A.c; ++j) {
      float v = k.coef * expf(z[j * A.d] - st.m) - k.smooth * A.w(j);
      if (j == y) v -= k.hit;
      g[j * A.d] = v;
    }
  }
}

// ---- probability targets: tw_j = w_j ((1 - eps) t_j + eps / c)

struct ProbArgs {
  const float *z, *t, *weight;
  index_t n, c, d;
  float eps;
  int reduction;
  __device__ float tw(index_t j, float t) const {
    const float v = eps > 0.0f ? (1.0f - eps) * t + eps / static_cast<float>(c) : t;
    return weight ? v * weight[j] : v;
  }
};

template <int kThreads>
__global__ void ce_prob_rows_forward_kernel(ProbArgs A, Finish fin, float* out_none) {
  using TeamT = Team<kThreads>;
  const index_t per_block = blockDim.x / kThreads;  // warp teams: any multiple of 32 threads
  const index_t team = blockIdx.x * per_block + threadIdx.x / kThreads;
  const index_t teams = static_cast<index_t>(gridDim.x) * per_block;
  double acc = 0.0;
  for (index_t row = team; row < A.n; row += teams) {
    const float* z = A.z + row * A.c;
    const float* t = A.t + row * A.c;
    MaxSum st{-INFINITY, 0.0f};
    for_row<TeamT>(z, A.c, [&](index_t, float x) { online_add(st, x); });
    st = TeamT::reduce(st);
    const float ls = logf(st.s);
    // sum_j tw_j (lse - z_j) with lse - z_j = (m - z_j) + ls >= 0: no cancellation
    float part = 0.0f;
    for_row<TeamT>(z, A.c, [&](index_t j, float x) { part += A.tw(j, t[j]) * ((st.m - x) + ls); });
    const double v = TeamT::sum(static_cast<double>(part));
    if (TeamT::rank() == 0) {
      if (out_none) out_none[row] = static_cast<float>(v);
      acc += v;
    }
  }
  if (out_none) return;
  __shared__ double red[kReduceThreads];
  fin.block_done(block_sum(TeamT::rank() == 0 ? acc : 0.0, red), 0.0);
}

__global__ void ce_prob_positions_forward_kernel(ProbArgs A, Finish fin, float* out_none) {
  double acc = 0.0;
  const index_t positions = A.n * A.d;
  FL_GRID_STRIDE(p, positions) {
    const index_t s = p / A.d, q = p % A.d;
    const float* z = A.z + s * A.c * A.d + q;
    const float* t = A.t + s * A.c * A.d + q;
    MaxSum st{-INFINITY, 0.0f};
#pragma unroll 4
    for (index_t j = 0; j < A.c; ++j) online_add(st, z[j * A.d]);
    const float ls = logf(st.s);
    double v = 0.0;
    for (index_t j = 0; j < A.c; ++j) v += A.tw(j, t[j * A.d]) * ((st.m - z[j * A.d]) + ls);
    if (out_none) out_none[p] = static_cast<float>(v);
    acc += v;
  }
  if (out_none) return;
  __shared__ double red[kReduceThreads];
  fin.block_done(block_sum(acc, red), 0.0);
}

template <int kThreads>
__global__ void ce_prob_rows_backward_kernel(ProbArgs A, Upstream up, float* grad) {
  using TeamT = Team<kThreads>;
  const index_t per_block = blockDim.x / kThreads;  // warp teams: any multiple of 32 threads
  const index_t team = blockIdx.x * per_block + threadIdx.x / kThreads;
  const index_t teams = static_cast<index_t>(gridDim.x) * per_block;
  for (index_t row = team; row < A.n; row += teams) {
    const float* z = A.z + row * A.c;
    const float* t = A.t + row * A.c;
    float* g = grad + row * A.c;
    MaxSum st{-INFINITY, 0.0f};
    float tsum = 0.0f;
    for_row<TeamT>(z, A.c, [&](index_t j, float x) {
      online_add(st, x);
      tsum += A.tw(j, t[j]);
    });
    st = TeamT::reduce(st);
    const float u = up.at(row);
    const float coef = u * static_cast<float>(TeamT::sum(static_cast<double>(tsum))) / st.s;
    for_row<TeamT>(z, A.c, [&](index_t j, float x) { g[j] = coef * expf(x - st.m) - u * A.tw(j, t[j]); });
  }
}

__global__ void ce_prob_positions_backward_kernel(ProbArgs A, Upstream up, float* grad) {
  const index_t positions = A.n * A.d;
  FL_GRID_STRIDE(p, positions) {
    const index_t s = p / A.d, q = p % A.d;
    const index_t off = s * A.c * A.d + q;
    const float* z = A.z + off;
    const float* t = A.t + off;
    float* g = grad + off;
    MaxSum st{-INFINITY, 0.0f};
    float tsum = 0.0f;
    for (index_t j = 0; j < A.c; ++j) {
      online_add(st, z[j * A.d]);
      tsum += A.tw(j, t[j * A.d]);
    }
    const float u = up.at(p);
    const float coef = u * tsum / st.s;
    for (index_t j = 0; j < A.c; ++j) g[j * A.d] = coef * expf(z[j * A.d] - st.m) - u * A.tw(j, t[j * A.d]);
  }
}

// ---- nll_loss

__global__ void nll_forward_kernel(ClassArgs A, Finish fin, float* out_none) {
  double acc = 0.0, accw = 0.0;
  const index_t positions = A.n * A.d;
  FL_GRID_STRIDE(p, positions) {
    const std::int64_t y = A.labels[p];
    const int kind = A.classify(y);
    double v = 0.0, wy = 0.0;
    if (kind > 0) {
      wy = A.w(y);
      v = -wy * A.z[(p / A.d) * A.c * A.d + y * A.d + p % A.d];
    } else if (kind < 0) {
      v = NAN;  // the loss shows it; the mean's divisor does not
    }
    if (out_none) out_none[p] = static_cast<float>(v);
    acc += v;
    accw += wy;
  }
  if (out_none) return;
  __shared__ double red[kReduceThreads];
  const double s = block_sum(acc, red);
  __syncthreads();
  const double sw = block_sum(accw, red);
  fin.block_done(s, sw);
}

// A thread per gradient element: -w_y * u at the target class, 0 elsewhere.
__global__ void nll_backward_kernel(ClassArgs A, Upstream up, float* grad) {
  const index_t total = A.n * A.c * A.d;
  FL_GRID_STRIDE(e, total) {
    const index_t q = e % A.d, j = (e / A.d) % A.c, s = e / (A.c * A.d);
    const index_t p = s * A.d + q;
    const std::int64_t y = A.labels[p];
    const int kind = j == 0 ? A.classify(y) : (y == A.ignore ? 0 : (y >= 0 && y < A.c ? 1 : -1));
    float v = 0.0f;
    if (kind < 0) v = NAN;
    else if (kind > 0 && j == y) v = -A.w(y) * up.at(p);
    grad[e] = v;
  }
}

#undef FL_GRID_STRIDE

}  // namespace fastlayers::cuda::detail
