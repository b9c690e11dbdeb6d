// Host emulation of the elementwise map kernels against plain loops (see cuda_shim.h; softmax:
// test_softmax.cpp, dense-layer bias: test_dense.cpp, activations and optimizers:
// test_elementwise.cpp, losses: test_loss.cpp). Build and run: csrc/cuda/host_emulation/run.sh
#include <cstdio>
#include <random>
#include <vector>

#include "cuda_shim.h"
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

  std::printf("%d failures\n", failures);
  return failures != 0;
}
