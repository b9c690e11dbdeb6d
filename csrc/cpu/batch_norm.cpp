// Batch normalisation driver: splits (N, C, S) into pieces, merges their moments in double, and
// applies the per-channel affine maps with the loops of batch_norm_loops.h (one table per ISA).
#include "cpu/batch_norm.h"

#include <algorithm>
#include <cmath>
#include <memory>
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
constexpr index_t kColBlock = 32768;  // floats per row block of a column group (128 KiB: L2)

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

// What the apply pass does with a channel: forward y = (x - m)*a + b; training backward
// dx = a*dy + b*(x - m) + c; eval backward dx = a*dy. m is the mean rounded to float; the rounding
// error e = mean - m (tiny next to m) is folded into the constant term in double (b - e*a, c - e*b),
// so x - m cancels a large mean exactly and nothing is lost.
struct Coeff {
  float m = 0, a = 0, b = 0, c = 0;
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

// One contiguous run [off, off + len) of one channel.
inline void apply_run(const Problem& p, index_t off, index_t len, const Coeff& k) {
  switch (p.apply) {
    case Apply::normalise: p.k->normalise_run(p.x + off, p.out + off, len, k.m, k.a, k.b); break;
    case Apply::backward: p.k->backward_run(p.dy + off, p.x + off, p.out + off, len, k.a, k.b, k.m, k.c); break;
    case Apply::scale: p.k->scale_run(p.dy + off, p.out + off, len, k.a); break;
  }
}

// ---- the column path (S < kLongRun): a group of channels [c0, c1) (at most kColWidth columns)
// over one block of rows [r0, r1): each row holds the group's (c1 - c0) * S values contiguously.
// Every column gets its piece's moments from two passes over the block (in L1 / L2), then each
// channel merges its S columns into out[c - c0].
void col_moments(const Problem& p, index_t c0, index_t c1, index_t r0, index_t r1, Moments* out) {
  const index_t S = p.S, ld = p.C * S, W = (c1 - c0) * S, rows = r1 - r0;
  float m[kColWidth], d1[kColWidth], d2[kColWidth], sdy[kColWidth], sdyx[kColWidth];
  const float* xb = p.x + r0 * ld + c0 * S;
  const float* gb = p.dy ? p.dy + r0 * ld + c0 * S : nullptr;
  p.k->col_sums(xb, rows, ld, W, m);
  const float inv = 1.0f / static_cast<float>(rows);
  for (index_t j = 0; j < W; ++j) m[j] *= inv;
  p.k->col_moments(xb, gb, rows, ld, W, m, d1, d2, sdy, sdyx);
  for (index_t ch = 0; ch < c1 - c0; ++ch) {
    Moments acc;
    for (index_t j = ch * S; j < (ch + 1) * S; ++j)
      merge(acc, from_piece(PieceSums{m[j], d1[j], d2[j], sdy[j], sdyx[j]}, rows));
    out[ch] = acc;
  }
}

void col_apply(const Problem& p, index_t c0, index_t c1, index_t n0, index_t n1, const Coeff* k) {
  const index_t S = p.S, ld = p.C * S, W = (c1 - c0) * S;
  float m[kColWidth], a[kColWidth], b[kColWidth], c[kColWidth];
  for (index_t j = 0; j < W; ++j) {
    const Coeff& kc = k[j / S];
    m[j] = kc.m, a[j] = kc.a, b[j] = kc.b, c[j] = kc.c;
  }
  const ColCoeffs cc{m, a, b, c};
  for (index_t n = n0; n < n1; ++n) {
    const index_t off = n * ld + c0 * S;
    switch (p.apply) {
      case Apply::normalise: p.k->normalise_cols(p.x + off, p.out + off, W, &cc); break;
      case Apply::backward: p.k->backward_cols(p.dy + off, p.x + off, p.out + off, W, &cc); break;
      case Apply::scale: p.k->scale_cols(p.dy + off, p.out + off, W, &cc); break;
    }
  }
}

// Runs the moments (when needed), the per-channel coefficients coeff(c, moments or null, write)
// and the apply pass. Both passes stream through memory in order, each thread over a contiguous
// share (this measured 20-35% faster per thread than reducing whole channels per thread and
// re-reading them from L2: a channel's runs are N strided pieces, which the prefetchers follow less
// well). The moments are kept per piece (a run of at most kPiece values, or a block of rows of a
// group of channels) and merged per channel in a fixed order, so the results do not depend on the
// thread count. It is one parallel region with one barrier (after the moments) when the merge is
// small: then every thread merges every channel itself (the same numbers) and only thread 0 writes
// the per-channel outputs (write = true: running statistics, affine gradients); a thread held up by
// a busy machine then stalls the others once, not at every phase.
template <class CoeffFn>
void drive(const Problem& p, CoeffFn coeff) {
  const index_t N = p.N, C = p.C, S = p.S;
  int T = get_num_threads();
  if (N * C * S <= kParallelGrain) T = 1;
  const bool cols = S < kLongRun;
  const index_t G = cols ? std::max<index_t>(1, kColWidth / S) : 1;  // channels per column group
  const index_t groups = (C + G - 1) / G;
  // Pieces: the runs path cuts each plane (n, c) of S values, at (n*C + c)*S, into q pieces; the
  // column path cuts the rows into nb blocks of R (a group's block fits in L2 for its second pass;
  // at most 4096 rows, so no float column sum runs longer) and keeps moments per (block, channel).
  const index_t q = (S + kPiece - 1) / kPiece, P = N * C;
  const index_t R = std::clamp<index_t>(kColBlock / std::min(C * S, G * S), 8, 4096), nb = (N + R - 1) / R;
  const index_t items = !p.need_moments ? 0 : cols ? nb * C : P * q;  // merge inputs
  std::unique_ptr<PieceSums[]> ps(p.need_moments && !cols ? new PieceSums[static_cast<size_t>(items)] : nullptr);
  std::unique_ptr<Moments[]> mo(p.need_moments && cols ? new Moments[static_cast<size_t>(items)] : nullptr);
  const bool shared_merge = items > 4096;  // else every thread merges (one barrier less)
  std::vector<Coeff> k(static_cast<size_t>(shared_merge || !p.need_moments ? C : T * C));
  if (!p.need_moments)
    for (index_t c = 0; c < C; ++c) k[c] = coeff(c, nullptr, true);

  auto channel_moments = [&](index_t c) {
    Moments acc;
    if (cols) {
      for (index_t blk = 0; blk < nb; ++blk) merge(acc, mo[blk * C + c]);
    } else {
      for (index_t n = 0; n < N; ++n)
        for (index_t i = 0; i < q; ++i) merge(acc, from_piece(ps[(n * C + c) * q + i], S * (i + 1) / q - S * i / q));
    }
    return acc;
  };

#pragma omp parallel num_threads(T) if (T > 1)
  {
    const index_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    const Coeff* kt = k.data();
    if (p.need_moments) {
      if (!cols) {
#pragma omp for schedule(static)
        for (index_t u = 0; u < P * q; ++u) {
          const index_t plane = u / q, i = u - plane * q, lo = S * i / q, hi = S * (i + 1) / q;
          const index_t off = plane * S + lo;
          p.k->run_moments(p.x + off, p.dy ? p.dy + off : nullptr, hi - lo, &ps[u]);
        }
      } else {
#pragma omp for schedule(static)
        for (index_t blk = 0; blk < nb; ++blk)
          for (index_t g = 0; g < groups; ++g) {
            const index_t c0 = g * G, c1 = std::min(C, c0 + G);
            col_moments(p, c0, c1, blk * R, std::min(N, (blk + 1) * R), &mo[blk * C + c0]);
          }
      }
      if (shared_merge) {
#pragma omp for schedule(static)
        for (index_t c = 0; c < C; ++c) {
          const Moments acc = channel_moments(c);
          k[c] = coeff(c, &acc, true);
        }
      } else {
        Coeff* own = &k[t * C];
        for (index_t c = 0; c < C; ++c) {
          const Moments acc = channel_moments(c);
          own[c] = coeff(c, &acc, t == 0);
        }
        kt = own;
      }
    }
    if (!cols) {
#pragma omp for schedule(static) nowait
      for (index_t plane = 0; plane < P; ++plane) apply_run(p, plane * S, S, kt[plane % C]);
    } else {
      for (index_t g = 0; g < groups; ++g) {
        const index_t c0 = g * G, c1 = std::min(C, c0 + G);
        col_apply(p, c0, c1, N * t / nt, N * (t + 1) / nt, &kt[c0]);
      }
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
  drive(p, [&](index_t c, const Moments* mo, bool write) {
    double mean, var;
    if (training) {
      mean = mo->mean;
      var = std::max(mo->m2, 0.0) / mo->n;  // biased: the batch is normalised with it
      if (running_mean != nullptr && write) {
        const double unbiased = mo->n > 1 ? var * (mo->n / (mo->n - 1)) : var;
        running_mean[c] = static_cast<float>((1.0 - mom) * running_mean[c] + mom * mean);
        running_var[c] = static_cast<float>((1.0 - mom) * running_var[c] + mom * unbiased);
      }
    } else {
      mean = running_mean[c];
      var = running_var[c];
    }
    const double invstd = 1.0 / std::sqrt(var + static_cast<double>(eps));
    const double a = (weight ? static_cast<double>(weight[c]) : 1.0) * invstd;
    Coeff k;
    k.m = static_cast<float>(mean);
    k.a = static_cast<float>(a);
    k.b = static_cast<float>((bias ? static_cast<double>(bias[c]) : 0.0) - (mean - k.m) * a);
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
  drive(p, [&](index_t c, const Moments* mo, bool write) {
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
    k.m = static_cast<float>(mu);
    k.a = static_cast<float>(w * invstd);
    if (mo != nullptr) {
      const double sdy = mo->sdy;
      const double cxy = mo->cxy + (mo->mean - mu) * sdy;  // sum dy * (x - mu)
      if (grad_weight && write) grad_weight[c] = static_cast<float>(cxy * invstd);
      if (grad_bias && write) grad_bias[c] = static_cast<float>(sdy);
      if (training) {
        const double b = -w * invstd * invstd * invstd * cxy / mo->n;
        k.b = static_cast<float>(b);
        k.c = static_cast<float>(-w * invstd * sdy / mo->n - (mu - k.m) * b);
      }
    }
    return k;
  });
}

void fold_batch_norm(const float* w, const float* b, const float* running_mean,
                     const float* running_var, const float* weight, const float* bias, float* w_out,
                     float* b_out, index_t K, index_t per_k, float eps) {
#pragma omp parallel for schedule(static) if (K * per_k > kParallelGrain) num_threads(max_threads())
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
