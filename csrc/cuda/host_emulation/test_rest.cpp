// Host emulation of the elementwise map, softmax and bias kernels against plain loops (see
// cuda_shim.h; the loss kernels are in test_loss.cpp). Build and run: csrc/cuda/host_emulation/run.sh
#include <cstdio>
#include <random>
#include <vector>

#include "cuda_shim.h"
#include "cuda/linear_kernels.cuh"
#include "cuda/map_kernels.cuh"
#include "cuda/softmax_kernels.cuh"

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

  // softmax (outer, dim, inner), both kernels, forward and backward, log and plain.
  const index_t shapes[][3] = {{1, 1, 1}, {3, 5, 1}, {2, 40, 1}, {4, 300, 1}, {2, 7, 3}, {3, 33, 5}, {1, 2, 70}};
  for (auto& s : shapes)
    for (int log = 0; log < 2; ++log)
      for (int blk = 0; blk < 2; ++blk) {
        const index_t outer = s[0], dim = s[1], inner = s[2], n = outer * dim * inner;
        if (blk && inner != 1) continue;
        auto x = randn(n, rng), g = randn(n, rng);
        std::vector<float> y(n), gx(n);
        const unsigned threads = dim <= 128 ? 32 : 128;
        if (blk) {
          emulate_launch(2, threads, [&] {
            if (log) softmax_forward_rows_block<true>(x.data(), y.data(), outer, dim);
            else softmax_forward_rows_block<false>(x.data(), y.data(), outer, dim);
          });
          emulate_launch(2, threads, [&] {
            if (log) softmax_backward_rows_block<true>(g.data(), y.data(), gx.data(), outer, dim);
            else softmax_backward_rows_block<false>(g.data(), y.data(), gx.data(), outer, dim);
          });
        } else {
          emulate_launch(2, 16, [&] {
            if (log) softmax_forward_rows_thread<true>(x.data(), y.data(), outer, dim, inner);
            else softmax_forward_rows_thread<false>(x.data(), y.data(), outer, dim, inner);
          });
          emulate_launch(2, 16, [&] {
            if (log) softmax_backward_rows_thread<true>(g.data(), y.data(), gx.data(), outer, dim, inner);
            else softmax_backward_rows_thread<false>(g.data(), y.data(), gx.data(), outer, dim, inner);
          });
        }
        double worst = 0;
        for (index_t o = 0; o < outer; ++o)
          for (index_t i = 0; i < inner; ++i) {
            auto at = [&](index_t d) { return (o * dim + d) * inner + i; };
            double mx = -1e300, sum = 0, gs = 0;
            for (index_t d = 0; d < dim; ++d) mx = std::max(mx, double(x[at(d)]));
            for (index_t d = 0; d < dim; ++d) sum += std::exp(x[at(d)] - mx);
            for (index_t d = 0; d < dim; ++d) {
              const double p = std::exp(x[at(d)] - mx) / sum;
              const double want = log ? std::log(p) : p;
              worst = std::max(worst, std::fabs(y[at(d)] - want));
              gs += log ? g[at(d)] : g[at(d)] * double(y[at(d)]);
            }
            for (index_t d = 0; d < dim; ++d) {
              const double yy = y[at(d)];
              const double want = log ? g[at(d)] - std::exp(yy) * gs : yy * (g[at(d)] - gs);
              worst = std::max(worst, std::fabs(gx[at(d)] - want));
            }
          }
        expect(worst < 1e-5, blk ? "softmax block" : "softmax thread", outer * 10 + log, dim, inner, worst);
      }

  // bias kernels.
  for (index_t rows : {0, 1, 5, 33})
    for (index_t cols : {1, 3, 70}) {
      auto y = randn(rows * cols, rng), b = randn(cols, rng);
      auto y0 = y;
      std::vector<float> gb(cols + 4, -9.0f);
      emulate_launch(2, 32, [&] { bias_add_rows_kernel(y.data(), b.data(), rows, cols); });
      emulate_launch(2, 32, [&] { bias_grad_rows_kernel(y0.data(), gb.data(), rows, cols); });
      double worst = gb[cols] == -9.0f ? 0 : 1;
      for (index_t c = 0; c < cols; ++c) {
        double s = 0;
        for (index_t r = 0; r < rows; ++r) {
          s += y0[r * cols + c];
          worst = std::max(worst, double(std::fabs(y[r * cols + c] - (y0[r * cols + c] + b[c]))));
        }
        worst = std::max(worst, std::fabs(gb[c] - s));
      }
      expect(worst < 1e-4, "bias", rows, cols, 0, worst);
    }

  std::printf("%d failures\n", failures);
  return failures != 0;
}
