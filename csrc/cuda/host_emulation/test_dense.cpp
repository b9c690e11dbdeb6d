// Host emulation of the dense-layer bias dispatch and kernels (csrc/cuda/linear_launch.h,
// linear_kernels.cuh) against double loops: bias add, and the bias gradient in one row chunk and
// in several (with the planned workspace, with too little: one chunk), empty batches, column
// counts around the 32-lane block width. See cuda_shim.h for what the emulation proves.
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "cuda_shim.h"
#include "cuda/linear_launch.h"

using fastlayers::index_t;
namespace ld = fastlayers::cuda::linear_dispatch;

int main() {
  std::mt19937 rng(5);
  std::normal_distribution<float> nd;
  int failures = 0, cases = 0;
  for (index_t rows : {0, 1, 5, 33, 4097, 9000})
    for (index_t cols : {1, 3, 31, 32, 33, 70}) {
      if (rows > 5000 && cols > 33) continue;  // keep the emulation quick
      std::vector<float> g(rows * cols + 1), b(cols), y(rows * cols + 4, -9.0f);
      for (auto& v : g) v = nd(rng);
      for (auto& v : b) v = nd(rng);
      for (index_t i = 0; i < rows * cols; ++i) y[i] = g[i];
      EmulatedLaunch launch;
      ld::bias_add(launch, y.data(), b.data(), rows, cols);
      bool ok = y[rows * cols] == -9.0f;
      for (index_t i = 0; i < rows * cols; ++i) ok = ok && y[i] == g[i] + b[i % cols];
      std::vector<double> want(cols, 0.0);
      for (index_t r = 0; r < rows; ++r)
        for (index_t c = 0; c < cols; ++c) want[c] += g[r * cols + c];
      const index_t full = ld::bias_workspace_floats(rows, cols);
      for (index_t ws_floats : {full, full / 2}) {
        std::vector<float> gb(cols + 4, NAN), ws(ws_floats + 1, NAN);
        EmulatedLaunch l2;
        ld::bias_grad(l2, g.data(), gb.data(), rows, cols, ws_floats ? ws.data() : nullptr, ws_floats);
        double worst = std::isnan(gb[cols]) ? 0 : 1;
        for (index_t c = 0; c < cols; ++c) worst = std::isnan(gb[c]) ? 1e9 : std::max(worst, std::fabs(gb[c] - want[c]));
        const bool chunked = l2.launches.count("linear_backward (bias chunks)") > 0;
        const bool chunk_ok = chunked == (ws_floats == full && full > 0);
        ++cases;
        if (!ok || worst > 1e-4 * std::sqrt(double(rows) + 1) || !chunk_ok) {
          ++failures;
          std::printf("FAIL bias rows %ld cols %ld ws %ld: add %d grad err %g chunks %d\n", (long)rows, (long)cols,
                      (long)ws_floats, ok, worst, chunked);
        }
      }
    }
  // Grids smaller than the work: the bias add's running column wraps around several times per thread.
  for (index_t cols : {1, 5, 32, 97}) {
    const index_t rows = 13;
    std::vector<float> y(rows * cols), b(cols);
    for (auto& v : b) v = nd(rng);
    for (unsigned grid : {1u, 3u}) {
      std::fill(y.begin(), y.end(), 1.0f);
      emulate_launch(grid, 32, [&] { fastlayers::cuda::detail::bias_add_rows_kernel(y.data(), b.data(), rows, cols); });
      bool ok = true;
      for (index_t i = 0; i < rows * cols; ++i) ok = ok && y[i] == 1.0f + b[i % cols];
      ++cases;
      if (!ok) ++failures, std::printf("FAIL bias add, small grid %u, cols %ld\n", grid, (long)cols);
    }
  }
  std::printf("%d cases, %d failures\n", cases, failures);
  return failures != 0;
}
