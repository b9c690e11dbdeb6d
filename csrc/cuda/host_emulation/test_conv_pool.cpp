// Host emulation of the CUDA pooling kernels (csrc/cuda/pool_kernels.cuh) against plain
// double-precision loops (the convolution's are in test_conv.cpp). See cuda_shim.h for what this proves
// (index arithmetic, bounds guards, barrier placement) and what it does not (anything about a GPU).
// Build and run: csrc/cuda/host_emulation/run.sh
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "cuda_shim.h"
#include "cuda/pool_kernels.cuh"

using fastlayers::index_t;
namespace pd = fastlayers::cuda::pool_detail;

struct Shape {
  index_t N, C, H, W, K, R, S, P, Q, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups;
};

Shape make(index_t N, index_t C, index_t H, index_t W, index_t K, index_t R, index_t S, index_t sh, index_t sw,
           index_t ph, index_t pw, index_t dh, index_t dw, index_t g) {
  const index_t P = (H + 2 * ph - dh * (R - 1) - 1) / sh + 1, Q = (W + 2 * pw - dw * (S - 1) - 1) / sw + 1;
  return {N, C, H, W, K, R, S, P, Q, sh, sw, ph, pw, dh, dw, g};
}

index_t cdiv(index_t a, index_t b) { return (a + b - 1) / b; }

int failures = 0;

void expect_close(const std::vector<float>& got, const std::vector<double>& want, double tol, const char* what,
                  const Shape& s) {
  double worst = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double d = std::fabs(got[i] - want[i]);
    if (!(d <= worst)) worst = d;  // NaN-safe
  }
  if (!(worst <= tol)) {
    ++failures;
    std::printf("FAIL %s N%ld C%ld %ldx%ld K%ld %ldx%ld s%ld,%ld p%ld,%ld d%ld,%ld g%ld: max err %g\n", what,
                (long)s.N, (long)s.C, (long)s.H, (long)s.W, (long)s.K, (long)s.R, (long)s.S, (long)s.stride_h,
                (long)s.stride_w, (long)s.pad_h, (long)s.pad_w, (long)s.dil_h, (long)s.dil_w, (long)s.groups, worst);
  }
}

// ------------------------------------------------------------------------------------- pooling

struct PoolGeo {
  index_t planes, h, w, kh, kw, sh, sw, ph, pw;
  index_t oh() const { return (h + 2 * ph - kh) / sh + 1; }
  index_t ow() const { return (w + 2 * pw - kw) / sw + 1; }
};

template <class I>
void check_pool(const PoolGeo& pg, std::mt19937& rng) {
  const index_t oh = pg.oh(), ow = pg.ow(), n_in = pg.planes * pg.h * pg.w, n_out = pg.planes * oh * ow;
  std::uniform_int_distribution<int> small(-2, 2);  // ties on purpose
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> x(n_in), go(n_out);
  for (auto& e : x) e = float(small(rng));
  for (auto& e : go) e = u(rng);
  std::vector<double> ymax(n_out), yavg(n_out), yavg_n(n_out), ylp(n_out), gmax(n_in, 0), gavg(n_in, 0),
      gavg_n(n_in, 0), glp(n_in, 0);
  const double p = 3.0;
  for (index_t pl = 0; pl < pg.planes; ++pl)
    for (index_t i = 0; i < oh; ++i)
      for (index_t j = 0; j < ow; ++j) {
        const index_t oi = (pl * oh + i) * ow + j;
        double best = -INFINITY, sum = 0, lp = 0;
        index_t at = -1, cells = 0;
        for (index_t r = i * pg.sh - pg.ph; r < i * pg.sh - pg.ph + pg.kh; ++r)
          for (index_t c = j * pg.sw - pg.pw; c < j * pg.sw - pg.pw + pg.kw; ++c) {
            if (r < 0 || r >= pg.h || c < 0 || c >= pg.w) continue;
            const index_t xi = (pl * pg.h + r) * pg.w + c;
            if (x[xi] > best) best = x[xi], at = xi;  // first maximum wins
            sum += x[xi], lp += std::pow(std::fabs(x[xi]), p), ++cells;
          }
        ymax[oi] = best, yavg[oi] = sum / double(pg.kh * pg.kw), yavg_n[oi] = sum / double(cells);
        ylp[oi] = std::pow(lp, 1 / p);
        gmax[at] += go[oi];
        for (index_t r = i * pg.sh - pg.ph; r < i * pg.sh - pg.ph + pg.kh; ++r)
          for (index_t c = j * pg.sw - pg.pw; c < j * pg.sw - pg.pw + pg.kw; ++c) {
            if (r < 0 || r >= pg.h || c < 0 || c >= pg.w) continue;
            const index_t xi = (pl * pg.h + r) * pg.w + c;
            gavg[xi] += go[oi] / double(pg.kh * pg.kw), gavg_n[xi] += go[oi] / double(cells);
            if (x[xi] != 0 && ylp[oi] != 0)
              glp[xi] += go[oi] * (x[xi] > 0 ? 1 : -1) * std::pow(std::fabs(x[xi]) / ylp[oi], p - 1);
          }
      }
  const auto g = pd::narrow<I>(pg);
  const float full = float(pg.kh * pg.kw);
  Shape s{pg.planes, 1, pg.h, pg.w, 1, pg.kh, pg.kw, oh, ow, pg.sh, pg.sw, pg.ph, pg.pw, 1, 1, 1};  // for messages
  std::vector<float> out(n_out, NAN), gin(n_in, NAN);
  emulate_launch(2, 32, [&] { pd::max_forward_kernel<I>(x.data(), out.data(), g, I(n_out)); });
  expect_close(out, ymax, 0, "max_pool", s);
  emulate_launch(2, 32, [&] { pd::max_backward_kernel<I>(go.data(), x.data(), gin.data(), g, I(n_in)); });
  expect_close(gin, gmax, 1e-5, "max_pool_backward", s);
  emulate_launch(2, 32, [&] { pd::avg_forward_kernel<I>(x.data(), out.data(), g, I(n_out), full, true); });
  expect_close(out, yavg, 1e-5, "avg_pool", s);
  emulate_launch(2, 32, [&] { pd::avg_forward_kernel<I>(x.data(), out.data(), g, I(n_out), full, false); });
  expect_close(out, yavg_n, 1e-5, "avg_pool (exclude pad)", s);
  emulate_launch(2, 32, [&] { pd::avg_backward_kernel<I>(go.data(), gin.data(), g, I(n_in), full, true); });
  expect_close(gin, gavg, 1e-5, "avg_pool_backward", s);
  emulate_launch(2, 32, [&] { pd::avg_backward_kernel<I>(go.data(), gin.data(), g, I(n_in), full, false); });
  expect_close(gin, gavg_n, 1e-5, "avg_pool_backward (exclude pad)", s);
  emulate_launch(2, 32, [&] { pd::lp_forward_kernel<I>(x.data(), out.data(), g, I(n_out), p); });
  expect_close(out, ylp, 1e-5, "lp_pool", s);
  emulate_launch(2, 32, [&] { pd::lp_backward_kernel<I>(go.data(), x.data(), gin.data(), g, I(n_in), p); });
  expect_close(gin, glp, 1e-4, "lp_pool_backward", s);
  // global average backward over the same planes
  std::vector<float> gg(pg.planes);
  std::vector<double> gg_ref(n_in);
  for (index_t i = 0; i < pg.planes; ++i) gg[i] = u(rng);
  for (index_t i = 0; i < n_in; ++i) gg_ref[i] = gg[i / (pg.h * pg.w)] / double(pg.h * pg.w);
  emulate_launch(2, 32, [&] { pd::global_avg_backward_kernel<I>(gg.data(), gin.data(), I(pg.h * pg.w), I(n_in)); });
  expect_close(gin, gg_ref, 1e-6, "global_avg_pool_backward", s);
}

int main() {
  std::mt19937 rng(7);
  const PoolGeo pools[] = {
      {2, 8, 8, 2, 2, 2, 2, 0, 0},  {1, 7, 9, 2, 2, 2, 2, 0, 0}, {2, 9, 9, 3, 3, 2, 2, 1, 1},
      {1, 10, 11, 3, 3, 3, 3, 0, 0}, {2, 7, 7, 3, 3, 1, 1, 1, 1}, {1, 6, 9, 2, 3, 1, 2, 1, 1},
      {2, 11, 5, 3, 2, 2, 3, 1, 0},  {1, 9, 8, 2, 2, 3, 3, 0, 0}, {1, 5, 13, 5, 4, 2, 4, 2, 2},
      {3, 1, 1, 1, 1, 1, 1, 0, 0},
  };
  for (const PoolGeo& g : pools) {
    check_pool<std::int32_t>(g, rng);
    check_pool<std::int64_t>(g, rng);
  }
  std::printf("%d failures\n", failures);
  return failures != 0;
}
