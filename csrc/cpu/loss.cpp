#include "cpu/loss.h"

#include <algorithm>
#include <cmath>

#include "cpu/parallel.h"
#include "cpu/vmath.h"

namespace fastlayers::cpu {
namespace {

constexpr index_t kMaxChunks = 256;     // partial sums live on the stack: no allocation
constexpr index_t kMinChunkWork = 4096;  // elements per chunk at least (amortises the chunk loop)

// sum over [0, n) in double of chunk(lo, hi), the double sum of the terms lo..hi-1. `work` is the
// cost of one term in elements (c for a softmax row), used only to size chunks and decide whether
// to wake the thread team. The chunking is a function of (n, work) alone and the chunk sums are
// added in order, so the sum does not depend on the number of threads.
template <class Chunk>
double ordered_chunk_sum(index_t n, index_t work, index_t grain, Chunk chunk_sum) {
  if (n <= 0) return 0.0;
  work = std::max<index_t>(work, 1);
  const index_t min_chunk = std::max<index_t>(1, kMinChunkWork / work);
  const index_t chunk = std::max(min_chunk, (n + kMaxChunks - 1) / kMaxChunks);
  const index_t chunks = (n + chunk - 1) / chunk;
  double partial[kMaxChunks];
#pragma omp parallel for schedule(static) if (n * work > grain)
  for (index_t k = 0; k < chunks; ++k) {
    const index_t lo = k * chunk, hi = std::min(n, lo + chunk);
    partial[k] = chunk_sum(lo, hi);
  }
  double total = 0.0;
  for (index_t k = 0; k < chunks; ++k) total += partial[k];
  return total;
}

// sum_{i < n} term(i) in double, chunked as above.
template <class Term>
double ordered_sum(index_t n, index_t work, Term term) {
  return ordered_chunk_sum(n, work, kParallelGrain, [&](index_t lo, index_t hi) {
    double s = 0.0;
    // simd reduction: several partial accumulators, combined in an order fixed at compile time,
    // so still deterministic; it breaks the add latency chain (and vectorises simple terms).
#pragma omp simd reduction(+ : s)
    for (index_t i = lo; i < hi; ++i) s += term(i);
    return s;
  });
}

// Max of one row and sum of exp(z - max) (float exp and sum, vectorised). A NaN anywhere makes
// the sum NaN (it poisons the exp sum even where the max comparison skips it); +inf gives inf - inf.
struct RowExp {
  float max;
  float sum;
};

inline RowExp row_exp(const VmathKernels& k, const float* z, index_t c) {
  const float m = k.max(z, c);
  return {m, k.exp_shift_sum(z, c, m)};
}

// logsumexp of a row, max subtracted first (logits of +-1e4 stay finite); log and add in double.
inline double row_logsumexp(const VmathKernels& k, const float* z, index_t c) {
  const RowExp r = row_exp(k, z, c);
  return static_cast<double>(r.max) + std::log(static_cast<double>(r.sum));
}

}  // namespace

void mse_loss_forward(const float* pred, const float* target, float* loss, index_t n, double scale) {
  const double s = ordered_sum(n, 1, [&](index_t i) {
    const double d = static_cast<double>(pred[i]) - target[i];
    return d * d;
  });
  loss[0] = static_cast<float>(s * scale);
}

void mse_loss_backward(const float* pred, const float* target, float* grad, index_t n, double scale) {
  const float k = static_cast<float>(2.0 * scale);
#pragma omp parallel for simd schedule(static) if (n > kParallelGrain)
  for (index_t i = 0; i < n; ++i) grad[i] = k * (pred[i] - target[i]);
}

void bce_with_logits_forward(const float* logits, const float* target, float* loss, index_t n,
                             double scale) {
  const VmathKernels& k = vmath_kernels();
  const double s = ordered_chunk_sum(n, 1, kTranscendentalGrain, [&](index_t lo, index_t hi) {
    return k.bce_sum(logits + lo, target + lo, hi - lo);
  });
  loss[0] = static_cast<float>(s * scale);
}

void bce_with_logits_backward(const float* logits, const float* target, float* grad, index_t n,
                              double scale) {
  const VmathKernels& k = vmath_kernels();
  const float a = static_cast<float>(scale);
  parallel_ranges(n, kTranscendentalGrain, [&](index_t lo, index_t hi) {
    k.bce_grad(logits + lo, target + lo, grad + lo, hi - lo, a);
  });
}

void logistic_loss_forward(const float* scores, const float* labels, float* loss, index_t n,
                           double scale) {
  const VmathKernels& k = vmath_kernels();
  const double s = ordered_chunk_sum(n, 1, kTranscendentalGrain, [&](index_t lo, index_t hi) {
    return k.logistic_sum(scores + lo, labels + lo, hi - lo);
  });
  loss[0] = static_cast<float>(s * scale);
}

void logistic_loss_backward(const float* scores, const float* labels, float* grad, index_t n,
                            double scale) {
  const VmathKernels& k = vmath_kernels();
  const float a = static_cast<float>(scale);
  parallel_ranges(n, kTranscendentalGrain, [&](index_t lo, index_t hi) {
    k.logistic_grad(scores + lo, labels + lo, grad + lo, hi - lo, a);
  });
}

void hinge_loss_forward(const float* scores, const float* labels, float* loss, index_t n,
                        double margin, double scale) {
  const double s = ordered_sum(n, 1, [&](index_t i) {
    const double m = margin - static_cast<double>(labels[i]) * scores[i];
    return m > 0.0 ? m : (m != m ? m : 0.0);  // NaN stays NaN
  });
  loss[0] = static_cast<float>(s * scale);
}

void hinge_loss_backward(const float* scores, const float* labels, float* grad, index_t n,
                         double margin, double scale) {
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
  for (index_t i = 0; i < n; ++i) {
    const double y = labels[i];
    const double m = margin - y * scores[i];
    // Subgradient 0 at the kink m == 0 (as relu'(0) = 0); NaN scores give a NaN gradient.
    grad[i] = static_cast<float>(m > 0.0 ? -scale * y : (m != m ? m : 0.0));
  }
}

void softmax_cross_entropy_forward(const float* logits, const std::int64_t* labels, float* loss,
                                   index_t n, index_t c, double scale) {
  const VmathKernels& k = vmath_kernels();
  const double s = ordered_chunk_sum(n, c, kTranscendentalGrain, [&](index_t lo, index_t hi) {
    double r = 0.0;
    for (index_t i = lo; i < hi; ++i) {
      const float* z = logits + i * c;
      r += row_logsumexp(k, z, c) - z[labels[i]];
    }
    return r;
  });
  loss[0] = static_cast<float>(s * scale);
}

void softmax_cross_entropy_backward(const float* logits, const std::int64_t* labels, float* grad,
                                    index_t n, index_t c, double scale) {
  const VmathKernels& k = vmath_kernels();
#pragma omp parallel for schedule(static) if (n * c > kTranscendentalGrain)
  for (index_t i = 0; i < n; ++i) {
    const float* z = logits + i * c;
    float* g = grad + i * c;
    const float m = k.max(z, c);
    // scale * softmax = (scale / sum) * exp(z - max): the exponentials go to g first (one exp
    // per element), then one multiply each; then the one-hot part at the label.
    k.scale(g, c, static_cast<float>(scale / k.exp_shift_store_sum(z, g, c, m)));
    g[labels[i]] = static_cast<float>(g[labels[i]] - scale);
  }
}

void softmax_cross_entropy_prob_forward(const float* logits, const float* target, float* loss,
                                        index_t n, index_t c, double scale) {
  const VmathKernels& k = vmath_kernels();
  const double s = ordered_chunk_sum(n, c, kTranscendentalGrain, [&](index_t lo, index_t hi) {
    double acc = 0.0;
    for (index_t i = lo; i < hi; ++i) {
      const float* z = logits + i * c;
      const float* t = target + i * c;
      const double lse = row_logsumexp(k, z, c);
      // sum_j t_j * (lse - z_j): each bracket is >= 0, no cancellation between large terms.
      double r = 0.0;
#pragma omp simd reduction(+ : r)
      for (index_t j = 0; j < c; ++j) r += t[j] * (lse - z[j]);
      acc += r;
    }
    return acc;
  });
  loss[0] = static_cast<float>(s * scale);
}

void softmax_cross_entropy_prob_backward(const float* logits, const float* target, float* grad,
                                         index_t n, index_t c, double scale) {
  const VmathKernels& k = vmath_kernels();
  const float sc = static_cast<float>(scale);
#pragma omp parallel for schedule(static) if (n * c > kTranscendentalGrain)
  for (index_t i = 0; i < n; ++i) {
    const float* z = logits + i * c;
    const float* t = target + i * c;
    float* g = grad + i * c;
    const float m = k.max(z, c);
    const float sum = k.exp_shift_store_sum(z, g, c, m);  // exp(z - max) into g
    double tsum = 0.0;
#pragma omp simd reduction(+ : tsum)
    for (index_t j = 0; j < c; ++j) tsum += t[j];
    // scale * (softmax * tsum - t)
    const float a = static_cast<float>(scale * tsum / sum);
#pragma omp simd
    for (index_t j = 0; j < c; ++j) g[j] = g[j] * a - sc * t[j];
  }
}

}  // namespace fastlayers::cpu
