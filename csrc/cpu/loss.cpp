#include "cpu/loss.h"

#include <algorithm>
#include <cmath>

#include "cpu/parallel.h"

namespace fastlayers::cpu {
namespace {

constexpr index_t kMaxChunks = 256;     // partial sums live on the stack: no allocation
constexpr index_t kMinChunkWork = 4096;  // elements per chunk at least (amortises the chunk loop)

// sum_{i < n} term(i) in double. `work` is the cost of one term in elements (c for a softmax row),
// used only to size chunks and decide whether to wake the thread team. The chunking is a function
// of (n, work) alone, so the sum does not depend on the number of threads.
template <class Term>
double ordered_sum(index_t n, index_t work, Term term) {
  if (n <= 0) return 0.0;
  work = std::max<index_t>(work, 1);
  const index_t min_chunk = std::max<index_t>(1, kMinChunkWork / work);
  const index_t chunk = std::max(min_chunk, (n + kMaxChunks - 1) / kMaxChunks);
  const index_t chunks = (n + chunk - 1) / chunk;
  double partial[kMaxChunks];
#pragma omp parallel for schedule(static) if (n * work > kParallelGrain)
  for (index_t k = 0; k < chunks; ++k) {
    const index_t lo = k * chunk, hi = std::min(n, lo + chunk);
    double s = 0.0;
    // simd reduction: several partial accumulators, combined in an order fixed at compile time,
    // so still deterministic; it breaks the add latency chain (and vectorises simple terms).
#pragma omp simd reduction(+ : s)
    for (index_t i = lo; i < hi; ++i) s += term(i);
    partial[k] = s;
  }
  double total = 0.0;
  for (index_t k = 0; k < chunks; ++k) total += partial[k];
  return total;
}

// log(1 + exp(x)) without overflow: max(x, 0) + log1p(exp(-|x|)). NaN in, NaN out.
inline double softplus(double x) { return std::max(x, 0.0) + std::log1p(std::exp(-std::fabs(x))); }

// 1 / (1 + exp(-x)) without overflow for either sign. NaN in, NaN out (x >= 0 is false for NaN).
inline double sigmoid(double x) {
  if (x >= 0.0) return 1.0 / (1.0 + std::exp(-x));
  const double e = std::exp(x);
  return e / (1.0 + e);
}

// max and log-sum-exp of one row (max subtracted first, so logits of +-1e4 stay finite).
// A NaN anywhere makes the result NaN: it poisons the sum even when the max comparison skips it.
inline double row_logsumexp(const float* z, index_t c) {
  float m = z[0];
  for (index_t j = 1; j < c; ++j) m = z[j] > m ? z[j] : m;
  double s = 0.0;
  for (index_t j = 0; j < c; ++j) s += std::exp(static_cast<double>(z[j]) - m);
  return m + std::log(s);
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
  const double s = ordered_sum(n, 1, [&](index_t i) {
    const double z = logits[i];
    // softplus(z) - z*t  ==  max(z,0) - z*t + log1p(exp(-|z|))
    return softplus(z) - z * target[i];
  });
  loss[0] = static_cast<float>(s * scale);
}

void bce_with_logits_backward(const float* logits, const float* target, float* grad, index_t n,
                              double scale) {
#pragma omp parallel for schedule(static) if (n > kParallelGrain / 8)
  for (index_t i = 0; i < n; ++i)
    grad[i] = static_cast<float>(scale * (sigmoid(logits[i]) - target[i]));
}

void logistic_loss_forward(const float* scores, const float* labels, float* loss, index_t n,
                           double scale) {
  const double s = ordered_sum(n, 1, [&](index_t i) {
    return softplus(-static_cast<double>(labels[i]) * scores[i]);
  });
  loss[0] = static_cast<float>(s * scale);
}

void logistic_loss_backward(const float* scores, const float* labels, float* grad, index_t n,
                            double scale) {
#pragma omp parallel for schedule(static) if (n > kParallelGrain / 8)
  for (index_t i = 0; i < n; ++i) {
    const double y = labels[i];
    grad[i] = static_cast<float>(-scale * y * sigmoid(-y * scores[i]));
  }
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
  const double s = ordered_sum(n, c, [&](index_t i) {
    const float* z = logits + i * c;
    return row_logsumexp(z, c) - z[labels[i]];
  });
  loss[0] = static_cast<float>(s * scale);
}

void softmax_cross_entropy_backward(const float* logits, const std::int64_t* labels, float* grad,
                                    index_t n, index_t c, double scale) {
#pragma omp parallel for schedule(static) if (n * c > kParallelGrain / 8)
  for (index_t i = 0; i < n; ++i) {
    const float* z = logits + i * c;
    float* g = grad + i * c;
    const double lse = row_logsumexp(z, c);
    for (index_t j = 0; j < c; ++j) g[j] = static_cast<float>(scale * std::exp(z[j] - lse));
    g[labels[i]] = static_cast<float>(scale * (std::exp(z[labels[i]] - lse) - 1.0));
  }
}

void softmax_cross_entropy_prob_forward(const float* logits, const float* target, float* loss,
                                        index_t n, index_t c, double scale) {
  const double s = ordered_sum(n, c, [&](index_t i) {
    const float* z = logits + i * c;
    const float* t = target + i * c;
    const double lse = row_logsumexp(z, c);
    // sum_j t_j * (lse - z_j): each bracket is >= 0, no cancellation between large terms.
    double r = 0.0;
    for (index_t j = 0; j < c; ++j) r += t[j] * (lse - z[j]);
    return r;
  });
  loss[0] = static_cast<float>(s * scale);
}

void softmax_cross_entropy_prob_backward(const float* logits, const float* target, float* grad,
                                         index_t n, index_t c, double scale) {
#pragma omp parallel for schedule(static) if (n * c > kParallelGrain / 8)
  for (index_t i = 0; i < n; ++i) {
    const float* z = logits + i * c;
    const float* t = target + i * c;
    float* g = grad + i * c;
    const double lse = row_logsumexp(z, c);
    double tsum = 0.0;
    for (index_t j = 0; j < c; ++j) tsum += t[j];
    for (index_t j = 0; j < c; ++j)
      g[j] = static_cast<float>(scale * (std::exp(z[j] - lse) * tsum - t[j]));
  }
}

}  // namespace fastlayers::cpu
