// Cross-entropy (class indices or probabilities) and nll_loss on the CPU, over logits laid out
// (n, c, d): rows of c classes, d = d1*...*dK positions per sample (d = 1 for (N, C) logits).
//
// d == 1: a row is contiguous; max and sum of exponentials use the vectorised vmath loops (float
// exp and sum, log-sum-exp in double), as softmax does. d > 1 (per-pixel classification): a task
// takes up to kLanes neighbouring positions of one sample and walks the classes for all of them at
// once, so every access is a contiguous run and the per-position state lives on the stack.
// A sample's loss is accumulated in double; the batch sums are ordered (loss_reduce.h).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "common/loss_terms.h"
#include "cpu/loss.h"
#include "cpu/loss_reduce.h"
#include "cpu/parallel.h"
#include "cpu/vmath.h"

namespace fastlayers::cpu {
namespace {

using loss::kMean;
using loss::kNone;

constexpr index_t kLanes = 64;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// The class-index options of one call.
struct ClassOpts {
  const std::int64_t* labels;
  const float* weight;  // null: every class weighs 1
  std::int64_t ignore;
  double eps;   // label smoothing
  double wsum;  // sum of the class weights (c without weights)
  index_t c;

  double w(index_t j) const { return weight ? static_cast<double>(weight[j]) : 1.0; }

  // 0: ignored; 1: a class in [0, c); -1: out of range (the op layer has rejected those already;
  // should one get here, its loss and gradient are NaN and nothing outside the row is read).
  int classify(std::int64_t y) const {
    if (y == ignore) return 0;
    return y >= 0 && y < c ? 1 : -1;
  }
};

double weight_sum(const float* weight, index_t c) {
  if (!weight) return static_cast<double>(c);
  double s = 0.0;
  for (index_t j = 0; j < c; ++j) s += weight[j];
  return s;
}

// Summed weight of the non-ignored targets (the divisor of "mean"). A bad label adds nothing: its
// own row is NaN, the others keep finite gradients.
double target_weight(const ClassOpts& o, index_t rows) {
  const Sum2 s = ordered_chunk_sum<Sum2>(rows, 1, kParallelGrain, [&](index_t lo, index_t hi) {
    Sum2 r;
    for (index_t i = lo; i < hi; ++i) {
      if (o.classify(o.labels[i]) > 0) r.a += o.w(o.labels[i]);
    }
    return r;
  });
  return s.a;
}

// The loss of one sample from its log-sum-exp lse (double), its target logit zy, and
// A = sum_j w_j (lse - z_j) (only needed with smoothing).
inline double class_row_loss(const ClassOpts& o, double wy, double lse, double zy, double a) {
  const double nll = wy * (lse - zy);
  return o.eps > 0.0 ? (1.0 - o.eps) * nll + (o.eps / static_cast<double>(o.c)) * a : nll;
}

// ---------------------------------------------------------------- class-index forward

// Contiguous row i (d == 1): its loss and target weight.
Sum2 class_row_forward(const VmathKernels& k, const ClassOpts& o, const float* z, index_t i) {
  const std::int64_t y = o.labels[i];
  const int kind = o.classify(y);
  if (kind == 0) return {};
  if (kind < 0) return {kNaN, 0.0};  // the loss shows it; the mean's divisor does not
  const index_t c = o.c;
  const float m = k.max(z, c);
  const double lse = static_cast<double>(m) + std::log(static_cast<double>(k.exp_shift_sum(z, c, m)));
  double a = 0.0;
  if (o.eps > 0.0) {
    // sum_j w_j (lse - z_j): each term >= 0 for non-negative weights, no cancellation
    if (o.weight) {
#pragma omp simd reduction(+ : a)
      for (index_t j = 0; j < c; ++j) a += static_cast<double>(o.weight[j]) * (lse - z[j]);
    } else {
#pragma omp simd reduction(+ : a)
      for (index_t j = 0; j < c; ++j) a += lse - z[j];
    }
  }
  const double wy = o.w(y);
  return {class_row_loss(o, wy, lse, z[y], a), wy};
}

// Lanes: the w (<= kLanes) positions p0..p0+w-1 of sample s. Row statistics per lane.
struct LaneStats {
  float mx[kLanes], sum[kLanes];
};

void lane_stats(const float* z, index_t c, index_t d, index_t w, LaneStats& st) {
  vmath_kernels().lanes_max_expsum(z, c, d, w, st.mx, st.sum);  // the per-ISA loop
}

// Loss (or per-position losses into out) of the lanes; returns their sum and target weight.
Sum2 class_lanes_forward(const ClassOpts& o, const float* z, const std::int64_t* labels, index_t d,
                         index_t w, float* out) {
  LaneStats st;
  const index_t c = o.c;
  lane_stats(z, c, d, w, st);
  double lse[kLanes], a[kLanes];
  for (index_t i = 0; i < w; ++i) {
    lse[i] = static_cast<double>(st.mx[i]) + std::log(static_cast<double>(st.sum[i]));
    a[i] = 0.0;
  }
  if (o.eps > 0.0) {
    for (index_t j = 0; j < c; ++j) {
      const float* r = z + j * d;
      const double wj = o.w(j);
#pragma omp simd
      for (index_t i = 0; i < w; ++i) a[i] += wj * (lse[i] - r[i]);
    }
  }
  Sum2 total;
  for (index_t i = 0; i < w; ++i) {
    const std::int64_t y = labels[i];
    const int kind = o.classify(y);
    double v = 0.0, wy = 0.0;
    if (kind > 0) {
      wy = o.w(y);
      v = class_row_loss(o, wy, lse[i], z[y * d + i], a[i]);
    } else if (kind < 0) {
      v = kNaN;
    }
    if (out) out[i] = static_cast<float>(v);
    total.a += v;
    total.b += wy;
  }
  return total;
}

// Runs rows (d == 1) or lane blocks (d > 1) as ordered tasks; row(i) / lanes(s, p0, w) return Sum2.
template <class Row, class Lanes>
Sum2 over_samples(index_t n, index_t c, index_t d, Row row, Lanes lanes) {
  if (d == 1) {
    return ordered_chunk_sum<Sum2>(n, c, kTranscendentalGrain, [&](index_t lo, index_t hi) {
      Sum2 r;
      for (index_t i = lo; i < hi; ++i) r += row(i);
      return r;
    });
  }
  const index_t blocks = (d + kLanes - 1) / kLanes;
  return ordered_chunk_sum<Sum2>(n * blocks, c * kLanes, kTranscendentalGrain,
                                 [&](index_t lo, index_t hi) {
    Sum2 r;
    for (index_t t = lo; t < hi; ++t) {
      const index_t s = t / blocks, p0 = (t % blocks) * kLanes;
      r += lanes(s, p0, std::min(kLanes, d - p0));
    }
    return r;
  });
}

void finish(float* out, const Sum2& s, int reduction) {
  if (reduction == kNone) return;
  out[0] = static_cast<float>(reduction == kMean ? s.a / s.b : s.a);  // 0 / 0 = NaN
}

// ---------------------------------------------------------------- class-index backward

// d loss / d z of one contiguous row into g (d == 1); up = the row's upstream factor.
void class_row_backward(const VmathKernels& k, const ClassOpts& o, const float* z, float* g,
                        std::int64_t y, int kind, double up) {
  const index_t c = o.c;
  if (kind <= 0) {
    const float fill = kind == 0 ? 0.0f : std::numeric_limits<float>::quiet_NaN();
    std::fill(g, g + c, fill);
    return;
  }
  const double wy = o.w(y);
  const double cinv = 1.0 / static_cast<double>(c);
  // softmax part: Q = (1 - eps) w_y + (eps / c) sum_j w_j  (= w_y without smoothing)
  const double q = o.eps > 0.0 ? (1.0 - o.eps) * wy + o.eps * cinv * o.wsum : wy;
  const float m = k.max(z, c);
  // up * Q * softmax = (up * Q / sum) * exp(z - max): exponentials into g, then one multiply each
  k.scale(g, c, static_cast<float>(up * q / k.exp_shift_store_sum(z, g, c, m)));
  if (o.eps > 0.0) {
    const double e = up * o.eps * cinv;
    if (o.weight) {
#pragma omp simd
      for (index_t j = 0; j < c; ++j) g[j] = static_cast<float>(g[j] - e * o.weight[j]);
    } else {
      const float ef = static_cast<float>(e);
#pragma omp simd
      for (index_t j = 0; j < c; ++j) g[j] -= ef;
    }
  }
  g[y] = static_cast<float>(g[y] - up * (1.0 - o.eps) * wy);
}

void class_lanes_backward(const ClassOpts& o, const float* z, float* g, const std::int64_t* labels,
                          index_t d, index_t w, const double* up) {
  LaneStats st;
  const index_t c = o.c;
  lane_stats(z, c, d, w, st);
  const double cinv = 1.0 / static_cast<double>(c);
  float coef[kLanes], smooth[kLanes];
  int kind[kLanes];
  for (index_t i = 0; i < w; ++i) {
    kind[i] = o.classify(labels[i]);
    const double wy = kind[i] > 0 ? o.w(labels[i]) : 0.0;
    const double q = o.eps > 0.0 ? (1.0 - o.eps) * wy + o.eps * cinv * o.wsum : wy;
    coef[i] = kind[i] > 0 ? static_cast<float>(up[i] * q / st.sum[i]) : 0.0f;
    smooth[i] = kind[i] > 0 ? static_cast<float>(up[i] * o.eps * cinv) : 0.0f;
  }
  vmath_kernels().lanes_exp_grad(z, g, c, d, w, st.mx, coef, smooth, o.weight);
  for (index_t i = 0; i < w; ++i) {
    if (kind[i] > 0) {
      const std::int64_t y = labels[i];
      float& gy = g[y * d + i];
      gy = static_cast<float>(gy - up[i] * (1.0 - o.eps) * o.w(y));
    } else {  // ignored: exactly 0 (even for non-finite logits); out of range: NaN
      const float fill = kind[i] == 0 ? 0.0f : std::numeric_limits<float>::quiet_NaN();
      for (index_t j = 0; j < c; ++j) g[j * d + i] = fill;
    }
  }
}

// Per-sample upstream factor: grad_out[r] (kNone) or grad_out[0] (reduced), times 1 / W for
// "mean"; nullptr grad_out is 1.
struct Upstream {
  const float* grad_out;
  int reduction;
  double scale;  // 1 / W for "mean", else 1
  double operator()(index_t r) const {
    const double g = grad_out ? static_cast<double>(grad_out[reduction == kNone ? r : 0]) : 1.0;
    return g * scale;
  }
};

// ---------------------------------------------------------------- probability targets

struct ProbOpts {
  const float* weight;
  double eps;
  index_t c;
  // smoothed and weighted target w_j ((1 - eps) t_j + eps / c)
  double tw(const float* t, index_t j, index_t stride) const {
    double v = t[j * stride];
    if (eps > 0.0) v = (1.0 - eps) * v + eps / static_cast<double>(c);
    return weight ? v * weight[j] : v;
  }
};

double prob_row_forward(const VmathKernels& k, const ProbOpts& o, const float* z, const float* t) {
  const index_t c = o.c;
  const float m = k.max(z, c);
  const double lse = static_cast<double>(m) + std::log(static_cast<double>(k.exp_shift_sum(z, c, m)));
  // sum_j tw_j * (lse - z_j): each bracket is >= 0, no cancellation between large terms
  double r = 0.0;
  if (!o.weight && o.eps == 0.0) {
#pragma omp simd reduction(+ : r)
    for (index_t j = 0; j < c; ++j) r += t[j] * (lse - z[j]);
  } else {
    for (index_t j = 0; j < c; ++j) r += o.tw(t, j, 1) * (lse - z[j]);
  }
  return r;
}

void prob_row_backward(const VmathKernels& k, const ProbOpts& o, const float* z, const float* t,
                       float* g, double up) {
  const index_t c = o.c;
  const float m = k.max(z, c);
  const float sum = k.exp_shift_store_sum(z, g, c, m);  // exp(z - max) into g
  const float sc = static_cast<float>(up);
  if (!o.weight && o.eps == 0.0) {
    double tsum = 0.0;
#pragma omp simd reduction(+ : tsum)
    for (index_t j = 0; j < c; ++j) tsum += t[j];
    const float a = static_cast<float>(up * tsum / sum);  // up * (softmax * tsum - t)
#pragma omp simd
    for (index_t j = 0; j < c; ++j) g[j] = g[j] * a - sc * t[j];
    return;
  }
  double tsum = 0.0;
  for (index_t j = 0; j < c; ++j) tsum += o.tw(t, j, 1);
  const double a = up * tsum / sum;
  for (index_t j = 0; j < c; ++j) g[j] = static_cast<float>(g[j] * a - up * o.tw(t, j, 1));
}

double prob_lanes_forward(const ProbOpts& o, const float* z, const float* t, index_t d, index_t w,
                          float* out) {
  LaneStats st;
  const index_t c = o.c;
  lane_stats(z, c, d, w, st);
  double lse[kLanes], r[kLanes];
  for (index_t i = 0; i < w; ++i) {
    lse[i] = static_cast<double>(st.mx[i]) + std::log(static_cast<double>(st.sum[i]));
    r[i] = 0.0;
  }
  for (index_t j = 0; j < c; ++j) {
    const float* zr = z + j * d;
    const float* tr = t + j * d;
    const double wj = o.weight ? static_cast<double>(o.weight[j]) : 1.0;
    const double e = o.eps, ec = o.eps / static_cast<double>(c);
#pragma omp simd
    for (index_t i = 0; i < w; ++i) r[i] += wj * ((1.0 - e) * tr[i] + ec) * (lse[i] - zr[i]);
  }
  double total = 0.0;
  for (index_t i = 0; i < w; ++i) {
    if (out) out[i] = static_cast<float>(r[i]);
    total += r[i];
  }
  return total;
}

void prob_lanes_backward(const ProbOpts& o, const float* z, const float* t, float* g, index_t d,
                         index_t w, const double* up) {
  LaneStats st;
  const index_t c = o.c;
  lane_stats(z, c, d, w, st);
  const double e = o.eps, ec = o.eps / static_cast<double>(c);
  double tsum[kLanes];
  for (index_t i = 0; i < w; ++i) tsum[i] = 0.0;
  for (index_t j = 0; j < c; ++j) {
    const float* tr = t + j * d;
    const double wj = o.weight ? static_cast<double>(o.weight[j]) : 1.0;
#pragma omp simd
    for (index_t i = 0; i < w; ++i) tsum[i] += wj * ((1.0 - e) * tr[i] + ec);
  }
  float coef[kLanes];
  for (index_t i = 0; i < w; ++i) coef[i] = static_cast<float>(up[i] * tsum[i] / st.sum[i]);
  for (index_t j = 0; j < c; ++j) {
    const float* zr = z + j * d;
    const float* tr = t + j * d;
    float* gr = g + j * d;
    const double wj = o.weight ? static_cast<double>(o.weight[j]) : 1.0;
#pragma omp simd
    for (index_t i = 0; i < w; ++i)
      gr[i] = static_cast<float>(coef[i] * vmath::fast_exp(zr[i] - st.mx[i]) -
                                 up[i] * wj * ((1.0 - e) * tr[i] + ec));
  }
}

template <class RowFn, class LanesFn>
void for_each_sample(index_t n, index_t c, index_t d, RowFn row, LanesFn lanes) {
  if (n <= 0 || c <= 0 || d <= 0) return;
  const bool parallel = n * c * d > kTranscendentalGrain;
  if (d == 1) {
    if (!parallel) {  // no OpenMP region for small batches (batch-1 work)
      for (index_t i = 0; i < n; ++i) row(i);
      return;
    }
#pragma omp parallel for schedule(static) num_threads(max_threads())
    for (index_t i = 0; i < n; ++i) row(i);
  } else {
    const index_t blocks = (d + kLanes - 1) / kLanes;
#pragma omp parallel for schedule(static) if (parallel) num_threads(max_threads())
    for (index_t t = 0; t < n * blocks; ++t) {
      const index_t s = t / blocks, p0 = (t % blocks) * kLanes;
      lanes(s, p0, std::min(kLanes, d - p0));
    }
  }
}

ClassOpts class_opts(const std::int64_t* labels, const float* weight, index_t c,
                     std::int64_t ignore, double eps) {
  return ClassOpts{labels, weight, ignore, eps, eps > 0.0 ? weight_sum(weight, c) : 0.0, c};
}

}  // namespace

void softmax_cross_entropy_forward(const float* logits, const std::int64_t* labels,
                                   const float* weight, float* out, index_t n, index_t c, index_t d,
                                   std::int64_t ignore_index, double label_smoothing, int reduction,
                                   double*, std::int64_t*) {
  const ClassOpts o = class_opts(labels, weight, c, ignore_index, label_smoothing);
  const VmathKernels& k = vmath_kernels();
  float* per = reduction == kNone ? out : nullptr;
  const Sum2 s = over_samples(
      n, c, d,
      [&](index_t i) {
        const Sum2 r = class_row_forward(k, o, logits + i * c, i);
        if (per) per[i] = static_cast<float>(r.a);
        return r;
      },
      [&](index_t s, index_t p0, index_t w) {
        return class_lanes_forward(o, logits + s * c * d + p0, labels + s * d + p0, d, w,
                                   per ? per + s * d + p0 : nullptr);
      });
  finish(out, s, reduction);
}

void softmax_cross_entropy_backward(const float* logits, const std::int64_t* labels,
                                    const float* weight, const float* grad_out, float* grad,
                                    index_t n, index_t c, index_t d, std::int64_t ignore_index,
                                    double label_smoothing, int reduction, double*,
                                    std::int64_t*) {
  const ClassOpts o = class_opts(labels, weight, c, ignore_index, label_smoothing);
  const Upstream up{grad_out, reduction, reduction == kMean ? 1.0 / target_weight(o, n * d) : 1.0};
  const VmathKernels& k = vmath_kernels();
  for_each_sample(
      n, c, d,
      [&](index_t i) {
        const std::int64_t y = labels[i];
        class_row_backward(k, o, logits + i * c, grad + i * c, y, o.classify(y), up(i));
      },
      [&](index_t s, index_t p0, index_t w) {
        double u[kLanes];
        for (index_t i = 0; i < w; ++i) u[i] = up(s * d + p0 + i);
        class_lanes_backward(o, logits + s * c * d + p0, grad + s * c * d + p0, labels + s * d + p0,
                             d, w, u);
      });
}

void softmax_cross_entropy_prob_forward(const float* logits, const float* target,
                                        const float* weight, float* out, index_t n, index_t c,
                                        index_t d, double label_smoothing, int reduction, double*) {
  const ProbOpts o{weight, label_smoothing, c};
  const VmathKernels& k = vmath_kernels();
  float* per = reduction == kNone ? out : nullptr;
  const Sum2 s = over_samples(
      n, c, d,
      [&](index_t i) {
        const double r = prob_row_forward(k, o, logits + i * c, target + i * c);
        if (per) per[i] = static_cast<float>(r);
        return Sum2{r, 1.0};
      },
      [&](index_t s, index_t p0, index_t w) {
        const double r = prob_lanes_forward(o, logits + s * c * d + p0, target + s * c * d + p0, d,
                                            w, per ? per + s * d + p0 : nullptr);
        return Sum2{r, static_cast<double>(w)};
      });
  finish(out, s, reduction);
}

void softmax_cross_entropy_prob_backward(const float* logits, const float* target,
                                         const float* weight, const float* grad_out, float* grad,
                                         index_t n, index_t c, index_t d, double label_smoothing,
                                         int reduction) {
  const ProbOpts o{weight, label_smoothing, c};
  const Upstream up{grad_out, reduction, reduction == kMean ? mean_scale(static_cast<double>(n * d)) : 1.0};
  const VmathKernels& k = vmath_kernels();
  for_each_sample(
      n, c, d,
      [&](index_t i) { prob_row_backward(k, o, logits + i * c, target + i * c, grad + i * c, up(i)); },
      [&](index_t s, index_t p0, index_t w) {
        double u[kLanes];
        for (index_t i = 0; i < w; ++i) u[i] = up(s * d + p0 + i);
        const index_t off = s * c * d + p0;
        prob_lanes_backward(o, logits + off, target + off, grad + off, d, w, u);
      });
}

void nll_loss_forward(const float* input, const std::int64_t* labels, const float* weight,
                      float* out, index_t n, index_t c, index_t d, std::int64_t ignore_index,
                      int reduction, double*, std::int64_t*) {
  const ClassOpts o = class_opts(labels, weight, c, ignore_index, 0.0);
  const index_t rows = n * d;
  // each row is a gather from anywhere in the input (a cache miss, not one element's work)
  constexpr index_t kGatherWork = 16;
  const Sum2 s = ordered_chunk_sum<Sum2>(rows, kGatherWork, kParallelGrain, [&](index_t lo, index_t hi) {
    Sum2 r;
    for (index_t i = lo; i < hi; ++i) {
      const std::int64_t y = labels[i];
      const int kind = o.classify(y);
      double v = 0.0, wy = 0.0;
      if (kind > 0) {
        wy = o.w(y);
        v = -wy * input[(i / d) * c * d + y * d + i % d];
      } else if (kind < 0) {
        v = kNaN;
      }
      if (reduction == kNone) out[i] = static_cast<float>(v);
      r.a += v;
      r.b += wy;
    }
    return r;
  });
  finish(out, s, reduction);
}

void nll_loss_backward(const std::int64_t* labels, const float* weight, const float* grad_out,
                       float* grad, index_t n, index_t c, index_t d, std::int64_t ignore_index,
                       int reduction, double*, std::int64_t*) {
  const ClassOpts o = class_opts(labels, weight, c, ignore_index, 0.0);
  const index_t rows = n * d;
  const Upstream up{grad_out, reduction, reduction == kMean ? 1.0 / target_weight(o, rows) : 1.0};
  const index_t total = rows * c;
  parallel_ranges(total, kParallelGrain, [&](index_t lo, index_t hi) {
    std::memset(grad + lo, 0, static_cast<size_t>(hi - lo) * sizeof(float));
  });
#pragma omp parallel for schedule(static) if (rows > kParallelGrain) num_threads(max_threads())
  for (index_t i = 0; i < rows; ++i) {
    const std::int64_t y = labels[i];
    const int kind = o.classify(y);
    float* g = grad + (i / d) * c * d + i % d;
    if (kind > 0) g[y * d] = static_cast<float>(-o.w(y) * up(i));
    else if (kind < 0)
      for (index_t j = 0; j < c; ++j) g[j * d] = std::numeric_limits<float>::quiet_NaN();
  }
}

}  // namespace fastlayers::cpu
