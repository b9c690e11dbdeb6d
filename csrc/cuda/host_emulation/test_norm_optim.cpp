// Host emulation of the batch-norm kernels (batch_norm_kernels.cuh) and of the RMSprop / Adagrad
// updates (optim_kernels.cuh) against double-precision loops (see cuda_shim.h). Build and run:
// csrc/cuda/host_emulation/run.sh
#include <algorithm>
#include <cstdio>
#include <random>
#include <vector>

#include "cuda_shim.h"
#include "cuda/batch_norm_kernels.cuh"
#include "cuda/optim_kernels.cuh"

using fastlayers::index_t;
using namespace fastlayers::cuda::detail;

static int failures = 0;
static void expect(bool ok, const char* what, long a, long b, long c, double err) {
  if (!ok) {
    ++failures;
    std::printf("FAIL %s (%ld, %ld, %ld): err %g\n", what, a, b, c, err);
  }
}

static std::vector<float> randn(index_t n, std::mt19937& rng, float mean = 0.0f, float scale = 1.0f) {
  std::normal_distribution<float> nd;
  std::vector<float> v(n + 4);
  for (auto& x : v) x = mean + scale * nd(rng);
  return v;
}

// Per-channel double statistics of x (N, C, S): mean and biased variance.
static void stats(const std::vector<float>& x, index_t N, index_t C, index_t S, std::vector<double>& mean,
                  std::vector<double>& var) {
  mean.assign(C, 0.0);
  var.assign(C, 0.0);
  const double M = double(N * S);
  for (index_t c = 0; c < C; ++c) {
    for (index_t n = 0; n < N; ++n)
      for (index_t s = 0; s < S; ++s) mean[c] += x[(n * C + c) * S + s];
    mean[c] /= M;
    for (index_t n = 0; n < N; ++n)
      for (index_t s = 0; s < S; ++s) {
        const double d = x[(n * C + c) * S + s] - mean[c];
        var[c] += d * d;
      }
    var[c] /= M;
  }
}

// The launcher's three stages (batch_norm.cu: reduce_and_apply) with an explicit split count.
static void reduce_and_apply(const float* x, const float* dy, float* out, int mode, int apply, const float* w,
                             const float* b, float* rm, float* rv, const float* mean_in, const float* var_in,
                             float* gw, float* gb, index_t N, index_t C, index_t S, float momentum, float eps,
                             index_t splits, unsigned grid, unsigned block) {
  std::vector<BnMoments> part(C * splits);
  std::vector<float> coef(4 * C);
  emulate_launch(grid, block, [&] { bn_partial_kernel(x, dy, N, C, S, splits, part.data()); });
  emulate_launch(grid, block, [&] {
    bn_finalize_kernel(part.data(), splits, C, mode, w, b, rm, rv, mean_in, var_in, gw, gb, momentum, eps,
                       coef.data());
  });
  emulate_launch(grid, block, [&] { bn_apply_kernel(apply, x, dy, out, coef.data(), N, C, S); });
}

int main() {
  std::mt19937 rng(7);
  const float eps = 1e-5f, momentum = 0.1f;
  // (N, C, S, mean of x, scale of x): S below and above blockDim, one value per row, several
  // channels per block (grid < C), channels split over several blocks, a large mean with a small
  // spread. bn_splits (the launcher's choice) is checked separately below.
  const struct {
    index_t N, C, S;
    float mean, scale;
  } cases[] = {{2, 3, 1, 0.0f, 1.0f}, {5, 2, 7, 1.0f, 2.0f}, {3, 5, 40, -2.0f, 0.5f}, {2, 3, 70, 0.0f, 1.0f},
               {1, 2, 33, 0.0f, 1.0f}, {4, 2, 9, 1e4f, 0.01f}, {37, 1, 1, 3.0f, 1.0f}};
  for (const auto& k : cases)
    for (unsigned grid : {1u, 2u})
      for (unsigned block : {32u, 64u}) {
        const index_t splits = grid == 1 ? 1 : std::min<index_t>(block == 32 ? 3 : 7, k.N * k.S);
        const index_t N = k.N, C = k.C, S = k.S, total = N * C * S;
        auto x = randn(total, rng, k.mean, k.scale), g = randn(total, rng), w = randn(C, rng), b = randn(C, rng);
        std::vector<float> rm(C), rv(C), y(total + 4, -7.0f), ye(total + 4, -7.0f);
        for (index_t c = 0; c < C; ++c) rm[c] = 0.3f * c, rv[c] = 1.0f + 0.5f * c;
        const auto rm0 = rm, rv0 = rv;
        reduce_and_apply(x.data(), nullptr, y.data(), kBnForward, 0, w.data(), b.data(), rm.data(), rv.data(),
                         nullptr, nullptr, nullptr, nullptr, N, C, S, momentum, eps, splits, grid, block);
        emulate_launch(grid, block, [&] {
          bn_forward_eval_kernel(x.data(), ye.data(), w.data(), b.data(), rm0.data(), rv0.data(), N, C, S, eps);
        });
        std::vector<double> mean, var;
        stats(x, N, C, S, mean, var);
        const double M = double(N * S);
        double worst = (y[total] == -7.0f && ye[total] == -7.0f) ? 0.0 : 1.0;
        for (index_t c = 0; c < C; ++c) {
          const double inv = 1.0 / std::sqrt(var[c] + eps), inv_r = 1.0 / std::sqrt(double(rv0[c]) + eps);
          worst = std::max(worst, std::fabs(rm[c] - ((1 - momentum) * rm0[c] + momentum * mean[c])) /
                                      std::max(1.0, std::fabs(mean[c])));
          worst = std::max(worst, std::fabs(rv[c] - ((1 - momentum) * rv0[c] + momentum * var[c] * M / (M - 1))));
          for (index_t n = 0; n < N; ++n)
            for (index_t s = 0; s < S; ++s) {
              const index_t i = (n * C + c) * S + s;
              worst = std::max(worst, std::fabs(y[i] - ((x[i] - mean[c]) * inv * w[c] + b[c])));
              worst = std::max(worst, std::fabs(ye[i] - ((x[i] - rm0[c]) * inv_r * w[c] + b[c])) /
                                          std::max(1.0, std::fabs(double(x[i]) * inv_r * w[c])));
            }
        }
        expect(worst < 2e-4, "batch_norm forward", N * 100 + C, S, grid * 1000 + block, worst);

        // Backward: recomputed, saved and running statistics; with and without the affine gradients.
        for (int st = 0; st < 3; ++st)
          for (int affine = 0; affine < 2; ++affine) {
            std::vector<float> gx(total + 4, -7.0f), gw(C + 1, -7.0f), gb(C + 1, -7.0f), smean(C), sinv(C);
            for (index_t c = 0; c < C; ++c)
              smean[c] = float(mean[c]), sinv[c] = float(1.0 / std::sqrt(var[c] + eps));
            const float* mptr = st == 0 ? nullptr : st == 1 ? smean.data() : rm0.data();
            const float* vptr = st == 0 ? nullptr : st == 1 ? sinv.data() : rv0.data();
            const float* wptr = affine ? w.data() : nullptr;
            if (st == 2 && !affine)
              emulate_launch(grid, block, [&] {
                bn_backward_scale_kernel(g.data(), wptr, rv0.data(), gx.data(), N, C, S, eps);
              });
            else
              reduce_and_apply(x.data(), g.data(), gx.data(), st, st == 2 ? 2 : 1, wptr, nullptr, nullptr, nullptr,
                               mptr, vptr, affine ? gw.data() : nullptr, affine ? gb.data() : nullptr, N, C, S,
                               0.0f, eps, splits, grid, block);
            double bw = (gx[total] == -7.0f && gw[C] == -7.0f && gb[C] == -7.0f) ? 0.0 : 1.0;
            if (!affine) bw = std::max(bw, gw[0] == -7.0f && gb[0] == -7.0f ? 0.0 : 1.0);
            for (index_t c = 0; c < C; ++c) {
              // (saved statistics are floats: the kernel must use them as given)
              const double mu = st == 2 ? rm0[c] : st == 1 ? smean[c] : mean[c];
              const double inv = st == 2 ? 1.0 / std::sqrt(double(rv0[c]) + eps)
                                         : st == 1 ? sinv[c] : 1.0 / std::sqrt(var[c] + eps);
              const double wc = affine ? w[c] : 1.0;
              double sg = 0, sgx = 0;
              for (index_t n = 0; n < N; ++n)
                for (index_t s = 0; s < S; ++s) {
                  const index_t i = (n * C + c) * S + s;
                  sg += g[i];
                  sgx += g[i] * (x[i] - mu) * inv;
                }
              if (affine) {
                bw = std::max(bw, std::fabs(gw[c] - sgx) / std::max(1.0, std::fabs(sgx)));
                bw = std::max(bw, std::fabs(gb[c] - sg) / std::max(1.0, std::fabs(sg)));
              }
              for (index_t n = 0; n < N; ++n)
                for (index_t s = 0; s < S; ++s) {
                  const index_t i = (n * C + c) * S + s;
                  const double want = st == 2 ? g[i] * wc * inv
                                              : wc * inv * (g[i] - sg / M - (x[i] - mu) * inv * sgx / M);
                  bw = std::max(bw, std::fabs(gx[i] - want) / std::max(1.0, std::fabs(wc * inv)));
                }
            }
            expect(bw < 5e-4, "batch_norm backward", N * 100 + C, S * 10 + st,
                   affine * 10000 + grid * 1000 + block, bw);
          }
      }

  // The launcher's split count: every channel gets at least one block, no split under 2048 values
  // unless the channel is shorter, about 1024 blocks in all when channels are long.
  expect(bn_splits(2, 3, 1) == 1 && bn_splits(32, 64, 3136) == 16 && bn_splits(1, 1, 1 << 24) == 1024 &&
             bn_splits(1, 5000, 10) == 1,
         "bn_splits", 0, 0, 0, 0);

  // fold_batch_norm: with and without the optional vectors, per_k = 0 included.
  for (index_t K : {1, 3, 70})
    for (index_t per_k : {0, 1, 9})
      for (int opt = 0; opt < 2; ++opt) {
        auto w = randn(K * per_k, rng), cb = randn(K, rng), rm = randn(K, rng), bw = randn(K, rng), bb = randn(K, rng);
        std::vector<float> rv(K), wo(K * per_k + 4, -7.0f), bo(K + 4, -7.0f);
        for (index_t k = 0; k < K; ++k) rv[k] = 0.5f + 0.01f * k;
        emulate_launch(2, 32, [&] {
          fold_batch_norm_kernel(w.data(), opt ? cb.data() : nullptr, rm.data(), rv.data(), opt ? bw.data() : nullptr,
                                 opt ? bb.data() : nullptr, wo.data(), bo.data(), K, per_k, eps);
        });
        double worst = (wo[K * per_k] == -7.0f && bo[K] == -7.0f) ? 0.0 : 1.0;
        for (index_t k = 0; k < K; ++k) {
          const double s = (opt ? bw[k] : 1.0) / std::sqrt(double(rv[k]) + eps);
          worst = std::max(worst, std::fabs(bo[k] - (((opt ? cb[k] : 0.0) - rm[k]) * s + (opt ? bb[k] : 0.0))));
          for (index_t i = 0; i < per_k; ++i)
            worst = std::max(worst, std::fabs(wo[k * per_k + i] - w[k * per_k + i] * s));
        }
        expect(worst < 1e-5, "fold_batch_norm", K, per_k, opt, worst);
      }

  // RMSprop (every option) and Adagrad, a few steps, against double loops.
  for (index_t n : {1, 5, 300})
    for (int cfg = 0; cfg < 8; ++cfg) {
      const bool centered = cfg & 1;
      const float mom = (cfg & 2) ? 0.9f : 0.0f, wd = (cfg & 4) ? 0.01f : 0.0f, lr = 0.01f, alpha = 0.9f, e = 1e-6f;
      auto p = randn(n, rng);
      std::vector<float> sa(n, 0.0f), buf(n, 0.0f), ga(n, 0.0f);
      std::vector<double> p64(p.begin(), p.begin() + n), sa64(n, 0.0), buf64(n, 0.0), ga64(n, 0.0);
      for (int step = 0; step < 4; ++step) {
        auto g = randn(n, rng);
        emulate_launch(2, 32, [&] {
          rmsprop_kernel(p.data(), g.data(), sa.data(), mom > 0 ? buf.data() : nullptr,
                         centered ? ga.data() : nullptr, n,
                         lr, alpha, e, wd, mom, centered);
        });
        for (index_t i = 0; i < n; ++i) {
          const double gi = g[i] + wd * p64[i];
          sa64[i] = alpha * sa64[i] + (1 - alpha) * gi * gi;
          double avg;
          if (centered) {
            ga64[i] = alpha * ga64[i] + (1 - alpha) * gi;
            avg = std::sqrt(sa64[i] - ga64[i] * ga64[i]) + e;
          } else {
            avg = std::sqrt(sa64[i]) + e;
          }
          if (mom > 0) {
            buf64[i] = mom * buf64[i] + gi / avg;
            p64[i] -= lr * buf64[i];
          } else {
            p64[i] -= lr * gi / avg;
          }
        }
      }
      double worst = 0;
      for (index_t i = 0; i < n; ++i) worst = std::max({worst, std::fabs(p[i] - p64[i]), std::fabs(sa[i] - sa64[i])});
      expect(worst < 1e-4, "rmsprop", n, cfg, 0, worst);

      auto q = randn(n, rng);
      std::vector<float> ss(n, 0.1f);
      std::vector<double> q64(q.begin(), q.begin() + n), ss64(n, 0.1);
      const float lr_decay = (cfg & 1) ? 0.05f : 0.0f;
      for (int step = 1; step <= 4; ++step) {
        auto g = randn(n, rng);
        const float clr = float(double(lr) / (1.0 + (step - 1) * double(lr_decay)));
        emulate_launch(2, 32, [&] { adagrad_kernel(q.data(), g.data(), ss.data(), n, clr, wd, e); });
        for (index_t i = 0; i < n; ++i) {
          const double gi = g[i] + wd * q64[i];
          ss64[i] += gi * gi;
          q64[i] -= lr / (1.0 + (step - 1) * lr_decay) * gi / (std::sqrt(ss64[i]) + e);
        }
      }
      worst = 0;
      for (index_t i = 0; i < n; ++i) worst = std::max({worst, std::fabs(q[i] - q64[i]), std::fabs(ss[i] - ss64[i])});
      expect(worst < 1e-5, "adagrad", n, cfg, 0, worst);
    }

  std::printf("%d failures\n", failures);
  return failures != 0;
}
