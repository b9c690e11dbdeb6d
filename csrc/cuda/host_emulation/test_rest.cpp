// Host emulation of the elementwise map and loss kernels against plain loops (see cuda_shim.h;
// softmax: test_softmax.cpp, dense-layer bias: test_dense.cpp, activations and optimizers:
// test_elementwise.cpp). Build and run: csrc/cuda/host_emulation/run.sh
#include <cstdio>
#include <random>
#include <vector>

#include "cuda_shim.h"
#include "cuda/loss_kernels.cuh"
#include "cuda/map_kernels.cuh"

using fastlayers::index_t;
using namespace fastlayers::cuda::detail;

static int failures = 0;
static void expect(bool ok, const char* what, long a, long b, long c, double err) {
  if (!ok) {
    ++failures;
    std::printf("FAIL %s (%ld, %ld, %ld): err %g\n", what, a, b, c, err);
  }
}

struct Twice {
  float operator()(float v) const { return 2.0f * v; }
};
struct Sub {
  float operator()(float a, float b) const { return a - b; }
};

static std::vector<float> randn(index_t n, std::mt19937& rng) {
  std::normal_distribution<float> nd;
  std::vector<float> v(n + 8);
  for (auto& x : v) x = nd(rng);
  return v;
}

int main() {
  std::mt19937 rng(3);
  // map kernels: vec and scalar, tails of every length, grids smaller than the work.
  for (index_t n : {1, 3, 4, 5, 17, 1000, 1003})
    for (int vec = 0; vec < 2; ++vec)
      for (unsigned grid : {1u, 3u}) {
        auto a = randn(n, rng), b = randn(n, rng);
        std::vector<float> y(n + 8, -7.0f), z(n + 8, -7.0f);
        emulate_launch(grid, 32, [&] { map1_kernel(n, a.data(), y.data(), Twice{}, vec != 0); });
        emulate_launch(grid, 32, [&] { map2_kernel(n, a.data(), b.data(), z.data(), Sub{}, vec != 0); });
        bool ok = y[n] == -7.0f && z[n] == -7.0f;
        for (index_t i = 0; i < n; ++i) ok = ok && y[i] == 2.0f * a[i] && z[i] == a[i] - b[i];
        expect(ok, "map", n, vec, grid, 0);
      }

  // two-pass loss reduction: one block and several, then partials.
  for (index_t n : {0, 1, 255, 256, 257, 5000})
    for (unsigned blocks : {1u, 3u, 7u}) {
      auto p = randn(n, rng), t = randn(n, rng);
      std::vector<double> partial(blocks, -1.0);
      float loss = -1.0f;
      emulate_launch(blocks, kReduceThreads, [&] {
        sum_terms_kernel(n, MseTerm{p.data(), t.data()}, partial.data(), &loss, 0.5);
      });
      if (blocks > 1)
        emulate_launch(1, kReduceThreads, [&] { sum_partials_kernel(partial.data(), blocks, &loss, 0.5); });
      double want = 0;
      for (index_t i = 0; i < n; ++i) want += (double(p[i]) - t[i]) * (double(p[i]) - t[i]);
      want *= 0.5;
      expect(std::fabs(loss - want) <= 1e-6 * std::max(1.0, want), "loss reduce", n, blocks, 0, loss - want);
    }

  // softmax cross-entropy: the per-row term, and both backwards, against plain double loops.
  for (index_t n : {1, 5, 40})
    for (index_t c : {1, 3, 10}) {
      auto z = randn(n * c, rng), t = randn(n * c, rng);
      for (auto& v : t) v = std::fabs(v);
      std::vector<std::int64_t> lab(n);
      for (index_t i = 0; i < n; ++i) lab[i] = (i * 7 + 3) % c;
      std::vector<float> g1(n * c), g2(n * c);
      float l1 = -1, l2 = -1;
      const double scale = 1.0 / n;
      emulate_launch(1, kReduceThreads, [&] { sum_terms_kernel(n, SceTerm{z.data(), lab.data(), c}, nullptr, &l1, scale); });
      emulate_launch(1, kReduceThreads, [&] { sum_terms_kernel(n, SceProbTerm{z.data(), t.data(), c}, nullptr, &l2, scale); });
      emulate_launch(2, 16, [&] { sce_backward_kernel(z.data(), lab.data(), g1.data(), n, c, scale); });
      emulate_launch(2, 16, [&] { sce_prob_backward_kernel(z.data(), t.data(), g2.data(), n, c, scale); });
      double want1 = 0, want2 = 0, worst = 0;
      for (index_t i = 0; i < n; ++i) {
        double mx = -1e300, s = 0, ts = 0;
        for (index_t j = 0; j < c; ++j) mx = std::max(mx, double(z[i * c + j]));
        for (index_t j = 0; j < c; ++j) s += std::exp(z[i * c + j] - mx), ts += t[i * c + j];
        const double lse = mx + std::log(s);
        want1 += lse - z[i * c + lab[i]];
        for (index_t j = 0; j < c; ++j) {
          want2 += t[i * c + j] * (lse - z[i * c + j]);
          const double p = std::exp(z[i * c + j] - lse);
          worst = std::max(worst, std::fabs(g1[i * c + j] - scale * (p - (j == lab[i]))));
          worst = std::max(worst, std::fabs(g2[i * c + j] - scale * (p * ts - t[i * c + j])));
        }
      }
      worst = std::max({worst, std::fabs(l1 - want1 * scale), std::fabs(l2 - want2 * scale)});
      expect(worst < 1e-5, "softmax cross-entropy", n, c, 0, worst);
    }

  std::printf("%d failures\n", failures);
  return failures != 0;
}
