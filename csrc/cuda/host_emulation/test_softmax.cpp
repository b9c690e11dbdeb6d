// Host emulation of the softmax / log-softmax dispatch and kernels (csrc/cuda/softmax_launch.h,
// softmax_kernels.cuh) against double-precision loops: the warp kernel at every values-per-lane
// count with and without float4 (aligned rows of length % 4, misaligned ones), the block kernel
// (rows past 1024) both ways, the strided kernel (inner > 1), grids smaller than the rows; and
// the special values: -inf entries, an all -inf row (NaN out, as the two-pass formula gives), a
// NaN (poisons its row only), +inf. See cuda_shim.h for what the emulation proves.
#include <cmath>
#include <cstdio>
#include <random>
#include <array>
#include <vector>

#include "cuda_shim.h"
#include "cuda/softmax_launch.h"

using fastlayers::index_t;
namespace sd = fastlayers::cuda::softmax_dispatch;

static int failures = 0, cases = 0;

// Reference softmax of one row (double; NaN and inf as the two-pass float formula).
static void ref_row(const float* x, index_t dim, index_t stride, bool log, std::vector<double>& out) {
  double mx = -INFINITY;
  for (index_t d = 0; d < dim; ++d)
    if (!std::isnan(x[d * stride])) mx = std::max(mx, double(x[d * stride]));
  double s = 0;
  for (index_t d = 0; d < dim; ++d) s += std::exp(double(x[d * stride]) - mx);
  out.resize(dim);
  for (index_t d = 0; d < dim; ++d) {
    const double z = double(x[d * stride]) - mx;
    out[d] = log ? z - std::log(s) : std::exp(z) / s;
  }
}

static bool same(double got, double want, double tol) {
  if (std::isnan(want)) return std::isnan(got);
  if (std::isinf(want)) return got == want;
  return std::fabs(got - want) <= tol;
}

// offset: floats between the 16-byte aligned allocation and the data (1: no float4 path).
static void check(index_t outer, index_t dim, index_t inner, int offset, bool special, std::mt19937& rng) {
  std::normal_distribution<float> nd;
  const index_t n = outer * dim * inner;
  std::vector<float> xs(n + 8), gs(n + 8), ys(n + 8, NAN), gxs(n + 8, NAN);
  float *x = xs.data() + offset, *g = gs.data() + offset, *y = ys.data() + offset, *gx = gxs.data() + offset;
  for (index_t i = 0; i < n; ++i) x[i] = 3 * nd(rng), g[i] = nd(rng);
  if (special && dim > 2) {  // row 0: a -inf and a +inf-free NaN-free row; row 1: all -inf; row 2: a NaN
    for (index_t i = 0; i < inner; ++i) x[i] = -INFINITY;
    if (outer > 1)
      for (index_t d = 0; d < dim; ++d)
        for (index_t i = 0; i < inner; ++i) x[(dim + d) * inner + i] = -INFINITY;
    if (outer > 2) x[(2 * dim + 1) * inner] = NAN;
    if (outer > 3) x[(3 * dim + 2) * inner] = INFINITY;
  }
  for (int log = 0; log < 2; ++log) {
    EmulatedLaunch launch;
    if (log) sd::forward<true>(launch, x, y, outer, dim, inner, "log_softmax");
    else sd::forward<false>(launch, x, y, outer, dim, inner, "softmax");
    if (log) sd::backward<true>(launch, g, y, gx, outer, dim, inner, "log_softmax_backward");
    else sd::backward<false>(launch, g, y, gx, outer, dim, inner, "softmax_backward");
    double worst = 0;
    bool ok = true;
    std::vector<double> want;
    for (index_t o = 0; o < outer; ++o)
      for (index_t i = 0; i < inner; ++i) {
        const index_t base = o * dim * inner + i;
        ref_row(x + base, dim, inner, log, want);
        double gs_ = 0;
        for (index_t d = 0; d < dim; ++d) {
          const double got = y[base + d * inner];
          if (!same(got, want[d], 2e-5 * (1 + std::fabs(want[d])))) ok = false;
          if (!std::isnan(want[d])) worst = std::max(worst, std::fabs(got - want[d]));
          gs_ += log ? double(g[base + d * inner]) : double(g[base + d * inner]) * got;
        }
        for (index_t d = 0; d < dim; ++d) {  // backward from the kernel's own y
          const double yy = y[base + d * inner], gg = g[base + d * inner];
          const double w = log ? gg - std::exp(yy) * gs_ : yy * (gg - gs_);
          if (!same(gx[base + d * inner], w, 2e-5 * (1 + std::fabs(w)) * std::sqrt(double(dim)))) ok = false;
        }
      }
    // Nothing written past the array.
    for (int k = 0; k < 8 - offset; ++k)
      if (!std::isnan(ys[n + offset + k]) || !std::isnan(gxs[n + offset + k])) ok = false;
    ++cases;
    if (!ok) {
      ++failures;
      std::printf("FAIL %s outer %ld dim %ld inner %ld offset %d special %d (worst finite err %g)\n",
                  log ? "log_softmax" : "softmax", (long)outer, (long)dim, (long)inner, offset, special, worst);
    }
  }
}

int main() {
  std::mt19937 rng(3);
  // Warp kernel: every values-per-lane count (dims up to 1024), % 4 and not, aligned and not.
  // Dims up to 16 take the staged thread-per-row kernel, 17 is the first warp-kernel dim.
  for (index_t dim : {1, 3, 5, 9, 16, 17, 32, 33, 40, 64, 100, 128, 129, 252, 256, 300, 512, 1000, 1024})
    for (int offset : {0, 1}) check(dim > 500 ? 5 : 11, dim, 1, offset, dim > 4 && offset == 0, rng);
  // More rows than one grid-stride pass covers is exercised by the capped grid on the GPU only;
  // here rows > warps per block: several blocks.
  check(9, 7, 1, 0, true, rng);
  // Staged short rows: several blocks of 128 rows, the last partial; odd and even dims (tile stride).
  check(300, 10, 1, 0, true, rng);
  check(260, 16, 1, 1, false, rng);
  check(129, 7, 1, 0, true, rng);
  // Block kernel: rows past 1024, % 4 (float4) and not.
  for (index_t dim : {1025, 1028, 2053, 4096})
    for (int offset : {0, 1}) check(3, dim, 1, offset, offset == 0, rng);
  // Strided: inner > 1; dims 16 and 33 end on a full and a partial batch of its kStridedLoads loads.
  for (auto s : std::vector<std::array<index_t, 3>>{{1, 2, 70}, {2, 7, 3}, {3, 33, 5}, {5, 4, 2}, {2, 1, 9},
                                                    {3, 16, 4}})
    check(s[0], s[1], s[2], 0, s[1] > 2, rng);
  std::printf("%d cases, %d failures\n", cases, failures);
  return failures != 0;
}
