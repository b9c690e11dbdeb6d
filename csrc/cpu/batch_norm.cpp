// Batch normalisation driver: splits (N, C, S) into pieces, merges their moments in double, and
// applies the per-channel affine maps with the loops of batch_norm_loops.h (one table per ISA).
#include "cpu/batch_norm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/batch_norm_loops.h"
#include "cpu/cpu_features.h"
#include "cpu/parallel.h"

namespace fastlayers::cpu {

const BatchNormKernels& batch_norm_kernels_generic() {
  static const BatchNormKernels k = make_batch_norm_kernels();
  return k;
}

#if !(defined(__x86_64__) || defined(_M_X64))
// No ISA objects off x86-64 (CMakeLists.txt drops them): the baseline serves every level.
const BatchNormKernels& batch_norm_kernels_avx2() { return batch_norm_kernels_generic(); }
const BatchNormKernels& batch_norm_kernels_avx512() { return batch_norm_kernels_generic(); }
#endif

const BatchNormKernels& batch_norm_kernels() {
  switch (active_isa()) {
    case Isa::avx512: return batch_norm_kernels_avx512();
    case Isa::avx2: return batch_norm_kernels_avx2();
    default: return batch_norm_kernels_generic();
  }
}

namespace {

constexpr index_t kPiece = 4096;     // floats per piece of a run: 16 KiB, its second pass hits L1
constexpr index_t kLongRun = 64;     // S >= kLongRun: per-run pieces; below: the column path
constexpr index_t kColWidth = 256;   // columns (channels x S) per group in the column path
constexpr index_t kColBlock = 4096;  // floats per row block of the column path (L1)

// Count, mean, sum of squared deviations; with dy also sum dy and sum dy * (x - mean).
struct Moments {
  double n = 0, mean = 0, m2 = 0, sdy = 0, cxy = 0;
};

// Chan et al.'s pairwise update, extended to the co-moment with dy.
inline void merge(Moments& a, const Moments& b) {
  if (b.n == 0) return;
  if (a.n == 0) {
    a = b;
    return;
  }
  const double n = a.n + b.n, d = b.mean - a.mean, fa = a.n / n, fb = b.n / n;
  a.cxy = (a.cxy - d * fb * a.sdy) + (b.cxy + d * fa * b.sdy);  // both about the merged mean
  a.m2 += b.m2 + d * d * a.n * fb;
  a.mean += d * fb;
  a.sdy += b.sdy;
  a.n = n;
}

inline Moments from_piece(const PieceSums& p, index_t len) {
  Moments r;
  r.n = static_cast<double>(len);
  const double e = static_cast<double>(p.d1) / r.n;  // the float mean's error
  r.mean = static_cast<double>(p.m) + e;
  r.m2 = static_cast<double>(p.d2) - static_cast<double>(p.d1) * e;
  r.sdy = p.sdy;
  r.cxy = static_cast<double>(p.sdyx) - e * static_cast<double>(p.sdy);
  return r;
}

// What the apply pass does with a channel: forward y = ((x - mh) - ml) * a + b; training
// backward dx = a*dy + b*((x - mh) - ml) + c; eval backward dx = a*dy.
struct Coeff {
  float mh = 0, ml = 0, a = 0, b = 0, c = 0;
};

enum class Apply { normalise, backward, scale };

struct Problem {
  const float* x;
  const float* dy;  // null in the forward
  float* out;       // y or grad_x
  index_t N, C, S;
  bool need_moments;
  Apply apply;
  const BatchNormKernels* k;
};

inline void split_mean(double mean, Coeff& k) {
  k.mh = static_cast<float>(mean);
  k.ml = static_cast<float>(mean - static_cast<double>(k.mh));
}

// ---- the runs path (S >= kLongRun): channel c's values m = n*S + s in [m0, m1), in pieces.
// REVERSE walks them last to first: the apply pass that follows the moments then starts with the
// runs the moments read last, the ones most likely still in L2.
template <bool REVERSE = false, class F>
void for_pieces(const Problem& p, index_t c, index_t m0, index_t m1, F f) {
  const index_t S = p.S, CS = p.C * p.S;
  auto run = [&](index_t m, index_t len) {
    const index_t n = m / S, base = n * CS + c * S + (m - n * S);
    const index_t np = (len + kPiece - 1) / kPiece;
    for (index_t q = 0; q < np; ++q) {
      const index_t i = REVERSE ? np - 1 - q : q;
      const index_t lo = len * i / np, hi = len * (i + 1) / np;
      f(base + lo, hi - lo);
    }
  };
  if (!REVERSE) {
    for (index_t m = m0; m < m1;) {
      const index_t len = std::min(m1, (m / S + 1) * S) - m;
      run(m, len);
      m += len;
    }
  } else {
    for (index_t m = m1; m > m0;) {
      const index_t start = std::max(m0, (m - 1) / S * S);
      run(start, m - start);
      m = start;
    }
  }
}

Moments run_moments(const Problem& p, index_t c, index_t m0, index_t m1) {
  Moments acc;
  for_pieces(p, c, m0, m1, [&](index_t off, index_t len) {
    PieceSums ps;
    p.k->run_moments(p.x + off, p.dy ? p.dy + off : nullptr, len, &ps);
    merge(acc, from_piece(ps, len));
  });
  return acc;
}

// One contiguous run [off, off + len) of one channel.
inline void apply_run(const Problem& p, index_t off, index_t len, const Coeff& k) {
  switch (p.apply) {
    case Apply::normalise: p.k->normalise_run(p.x + off, p.out + off, len, k.mh, k.ml, k.a, k.b); break;
    case Apply::backward:
      p.k->backward_run(p.dy + off, p.x + off, p.out + off, len, k.a, k.b, k.mh, k.ml, k.c);
      break;
    case Apply::scale: p.k->scale_run(p.dy + off, p.out + off, len, k.a); break;
  }
}

void run_apply(const Problem& p, index_t c, index_t m0, index_t m1, const Coeff& k) {
  for_pieces<true>(p, c, m0, m1, [&](index_t off, index_t len) { apply_run(p, off, len, k); });
}

// ---- the column path (S < kLongRun): channels [c0, c1) (at most kColWidth columns) over rows
// [n0, n1). Each row holds the group's (c1 - c0) * S values contiguously; blocks of rows give every
// column a piece, merged per column over the blocks and then per channel over its S columns.
void col_moments(const Problem& p, index_t c0, index_t c1, index_t n0, index_t n1, Moments* out) {
  const index_t S = p.S, ld = p.C * S, W = (c1 - c0) * S;
  const index_t R = std::max<index_t>(8, kColBlock / W);
  float m[kColWidth], d1[kColWidth], d2[kColWidth], sdy[kColWidth], sdyx[kColWidth];
  Moments col[kColWidth];
  for (index_t r0 = n0; r0 < n1; r0 += R) {
    const index_t rows = std::min(R, n1 - r0);
    const float* xb = p.x + r0 * ld + c0 * S;
    const float* gb = p.dy ? p.dy + r0 * ld + c0 * S : nullptr;
    p.k->col_sums(xb, rows, ld, W, m);
    const float inv = 1.0f / static_cast<float>(rows);
    for (index_t j = 0; j < W; ++j) m[j] *= inv;
    p.k->col_moments(xb, gb, rows, ld, W, m, d1, d2, sdy, sdyx);
    for (index_t j = 0; j < W; ++j) merge(col[j], from_piece(PieceSums{m[j], d1[j], d2[j], sdy[j], sdyx[j]}, rows));
  }
  for (index_t ch = 0; ch < c1 - c0; ++ch) {
    Moments acc;
    for (index_t s = 0; s < S; ++s) merge(acc, col[ch * S + s]);
    out[ch] = acc;
  }
}

void col_apply(const Problem& p, index_t c0, index_t c1, index_t n0, index_t n1, const Coeff* k) {
  const index_t S = p.S, ld = p.C * S, W = (c1 - c0) * S;
  float mh[kColWidth], ml[kColWidth], a[kColWidth], b[kColWidth], c[kColWidth];
  for (index_t j = 0; j < W; ++j) {
    const Coeff& kc = k[j / S];
    mh[j] = kc.mh, ml[j] = kc.ml, a[j] = kc.a, b[j] = kc.b, c[j] = kc.c;
  }
  const ColCoeffs cc{mh, ml, a, b, c};
  for (index_t n = n1 - 1; n >= n0; --n) {  // last rows first: they are the ones still in cache
    const index_t off = n * ld + c0 * S;
    switch (p.apply) {
      case Apply::normalise: p.k->normalise_cols(p.x + off, p.out + off, W, &cc); break;
      case Apply::backward: p.k->backward_cols(p.dy + off, p.x + off, p.out + off, W, &cc); break;
      case Apply::scale: p.k->scale_cols(p.dy + off, p.out + off, W, &cc); break;
    }
  }
}

// Runs the moments (when needed), coeff(c, moments or null) -> Coeff per channel (called once per
// channel; it may write per-channel outputs such as running statistics), and the apply pass.
//   Whole channels per thread (the usual case): a thread takes a unit of channels, gathers its
//   moments, then applies them while the unit's data is still in L2.
//   Too few channels for the threads: every thread takes a slice of each channel's values (runs
//   path) or of the rows (column path); partial moments are merged in thread order in between.
template <class CoeffFn>
void drive(const Problem& p, CoeffFn coeff) {
  const index_t N = p.N, C = p.C, S = p.S;
  int T = get_num_threads();
  if (N * C * S <= kParallelGrain) T = 1;
  const bool cols = S < kLongRun;
  index_t G = 1;  // channels per unit
  if (cols) {
    G = std::max<index_t>(1, kColWidth / S);
    if (T > 1 && (C + G - 1) / G < 2 * T) {
      // Narrower units so that every thread gets some, if a unit's row stays >= one cache line.
      const index_t g2 = std::max<index_t>(1, C / (2 * T));
      if (g2 * S >= 16) G = std::min(G, g2);
    }
  }
  const index_t units = (C + G - 1) / G;
  if (!p.need_moments) {
    // Nothing to reduce (eval): coefficients once, then the data in memory order, a contiguous
    // share per thread (planes of S values, or rows of C*S for the column path).
    std::vector<Coeff> k(static_cast<size_t>(C));
    for (index_t c = 0; c < C; ++c) k[c] = coeff(c, nullptr);
    if (!cols) {
#pragma omp parallel for schedule(static) num_threads(T) if (T > 1)
      for (index_t q = 0; q < N * C; ++q) apply_run(p, q * S, S, k[q % C]);
    } else {
#pragma omp parallel num_threads(T)
      {
        const index_t t = omp_get_thread_num(), nt = omp_get_num_threads();
        for (index_t u = 0; u < units; ++u) {
          const index_t c0 = u * G, c1 = std::min(C, c0 + G);
          col_apply(p, c0, c1, N * t / nt, N * (t + 1) / nt, &k[c0]);
        }
      }
    }
    return;
  }
  if (T == 1 || units >= 2 * T) {
#pragma omp parallel for schedule(static) num_threads(T) if (T > 1)
    for (index_t u = 0; u < units; ++u) {
      const index_t c0 = u * G, c1 = std::min(C, c0 + G);
      Moments mo[kColWidth];
      Coeff k[kColWidth];
      if (p.need_moments) {
        if (cols) col_moments(p, c0, c1, 0, N, mo);
        else mo[0] = run_moments(p, c0, 0, N * S);
      }
      for (index_t c = c0; c < c1; ++c) k[c - c0] = coeff(c, p.need_moments ? &mo[c - c0] : nullptr);
      if (cols) col_apply(p, c0, c1, 0, N, k);
      else run_apply(p, c0, 0, N * S, k[0]);
    }
    return;
  }
  std::vector<Moments> part(p.need_moments ? static_cast<size_t>(T * C) : 0);
  std::vector<Coeff> coeffs(static_cast<size_t>(C));
  const index_t extent = cols ? N : N * S;
#pragma omp parallel num_threads(T)
  {
    const index_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    const index_t lo = extent * t / nt, hi = extent * (t + 1) / nt;
    if (p.need_moments) {
      for (index_t u = 0; u < units; ++u) {
        const index_t c0 = u * G, c1 = std::min(C, c0 + G);
        if (cols) col_moments(p, c0, c1, lo, hi, &part[t * C + c0]);
        else part[t * C + c0] = run_moments(p, c0, lo, hi);
      }
    }
#pragma omp barrier
#pragma omp single
    for (index_t c = 0; c < C; ++c) {
      Moments m;
      if (p.need_moments)
        for (index_t q = 0; q < nt; ++q) merge(m, part[q * C + c]);
      coeffs[c] = coeff(c, p.need_moments ? &m : nullptr);
    }
    for (index_t u = 0; u < units; ++u) {
      const index_t c0 = u * G, c1 = std::min(C, c0 + G);
      if (cols) col_apply(p, c0, c1, lo, hi, &coeffs[c0]);
      else run_apply(p, c0, lo, hi, coeffs[c0]);
    }
  }
}

}  // namespace

void batch_norm_forward(const float* x, float* y, const float* weight, const float* bias,
                        float* running_mean, float* running_var, index_t N, index_t C, index_t S,
                        bool training, float momentum, float eps) {
  if (N * C * S <= 0) return;
  const Problem p{x, nullptr, y, N, C, S, training, Apply::normalise, &batch_norm_kernels()};
  const double mom = momentum;
  drive(p, [&](index_t c, const Moments* mo) {
    double mean, var;
    if (training) {
      mean = mo->mean;
      var = std::max(mo->m2, 0.0) / mo->n;  // biased: the batch is normalised with it
      if (running_mean != nullptr) {
        const double unbiased = mo->n > 1 ? var * (mo->n / (mo->n - 1)) : var;
        running_mean[c] = static_cast<float>((1.0 - mom) * running_mean[c] + mom * mean);
        running_var[c] = static_cast<float>((1.0 - mom) * running_var[c] + mom * unbiased);
      }
    } else {
      mean = running_mean[c];
      var = running_var[c];
    }
    const double invstd = 1.0 / std::sqrt(var + static_cast<double>(eps));
    Coeff k;
    split_mean(mean, k);
    k.a = static_cast<float>((weight ? static_cast<double>(weight[c]) : 1.0) * invstd);
    k.b = bias ? bias[c] : 0.0f;
    return k;
  });
}

void batch_norm_backward(const float* grad_out, const float* x, const float* weight,
                         const float* mean, const float* var_or_invstd, int stats,
                         float* grad_x, float* grad_weight, float* grad_bias, index_t N, index_t C,
                         index_t S, float eps) {
  const auto kind = static_cast<BnStats>(stats);
  if (N * C * S <= 0) {
    for (index_t c = 0; c < C; ++c) {
      if (grad_weight) grad_weight[c] = 0.0f;
      if (grad_bias) grad_bias[c] = 0.0f;
    }
    return;
  }
  const bool training = kind != BnStats::running;
  // In eval the statistics are constants: grad_x = dy * weight * invstd, and the sums over the
  // batch are needed only for the affine gradients.
  const bool need = training || grad_weight != nullptr || grad_bias != nullptr;
  const Problem p{x, grad_out, grad_x, N, C, S, need, training ? Apply::backward : Apply::scale,
                  &batch_norm_kernels()};
  drive(p, [&](index_t c, const Moments* mo) {
    const double w = weight ? static_cast<double>(weight[c]) : 1.0;
    double mu, invstd;
    switch (kind) {
      case BnStats::batch:
        mu = mo->mean;
        invstd = 1.0 / std::sqrt(std::max(mo->m2, 0.0) / mo->n + static_cast<double>(eps));
        break;
      case BnStats::saved:
        mu = mean[c];
        invstd = var_or_invstd[c];
        break;
      default:
        mu = mean[c];
        invstd = 1.0 / std::sqrt(static_cast<double>(var_or_invstd[c]) + static_cast<double>(eps));
        break;
    }
    Coeff k;
    split_mean(mu, k);
    k.a = static_cast<float>(w * invstd);
    if (mo != nullptr) {
      const double sdy = mo->sdy;
      const double cxy = mo->cxy + (mo->mean - mu) * sdy;  // sum dy * (x - mu)
      if (grad_weight) grad_weight[c] = static_cast<float>(cxy * invstd);
      if (grad_bias) grad_bias[c] = static_cast<float>(sdy);
      if (training) {
        k.b = static_cast<float>(-w * invstd * invstd * invstd * cxy / mo->n);
        k.c = static_cast<float>(-w * invstd * sdy / mo->n);
      }
    }
    return k;
  });
}

void fold_batch_norm(const float* w, const float* b, const float* running_mean,
                     const float* running_var, const float* weight, const float* bias, float* w_out,
                     float* b_out, index_t K, index_t per_k, float eps) {
#pragma omp parallel for schedule(static) if (K * per_k > kParallelGrain)
  for (index_t k = 0; k < K; ++k) {
    const double s = (weight ? static_cast<double>(weight[k]) : 1.0) /
                     std::sqrt(static_cast<double>(running_var[k]) + static_cast<double>(eps));
    const double bk = b ? static_cast<double>(b[k]) : 0.0;
    b_out[k] = static_cast<float>((bk - running_mean[k]) * s + (bias ? static_cast<double>(bias[k]) : 0.0));
    const float sf = static_cast<float>(s);
    const float* wk = w + k * per_k;
    float* ok = w_out + k * per_k;
    for (index_t i = 0; i < per_k; ++i) ok[i] = wk[i] * sf;
  }
}

}  // namespace fastlayers::cpu
