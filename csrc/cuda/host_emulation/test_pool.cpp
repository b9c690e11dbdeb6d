// Host emulation of the CUDA pooling kernels (csrc/cuda/pool_kernels.cuh) against plain
// double-precision loops written from the definitions (PyTorch's output size, divisor and window
// rules), launched as csrc/cuda/pool.cu launches them. See cuda_shim.h for what this proves.
// Build and run: csrc/cuda/host_emulation/run.sh
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "cuda_shim.h"
#include "common/pool_geometry.h"
#include "cuda/pool_kernels.cuh"

using fastlayers::index_t;
using fastlayers::AdaptivePool2dGeometry;
using fastlayers::Pool2dGeometry;
namespace pd = fastlayers::cuda::pool_detail;

static int failures = 0;

static void expect_close(const std::vector<float>& got, const std::vector<double>& want, double tol,
                         const char* what, const char* geo) {
  double worst = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const bool both_nan = std::isnan(got[i]) && std::isnan(want[i]);
    const bool same_inf = std::isinf(want[i]) && got[i] == want[i];
    const double d = both_nan || same_inf ? 0.0 : std::fabs(got[i] - want[i]);
    if (!(d <= worst)) worst = d;  // NaN-safe
  }
  if (!(worst <= tol)) {
    ++failures;
    std::printf("FAIL %s [%s]: max err %g\n", what, geo, worst);
  }
}

static void expect_equal(const std::vector<std::int64_t>& got, const std::vector<std::int64_t>& want,
                         const char* what, const char* geo) {
  if (got != want) {
    ++failures;
    std::printf("FAIL %s [%s]\n", what, geo);
  }
}

// PyTorch's pooling_output_shape.
static index_t out_size(index_t n, index_t k, index_t s, index_t p, index_t d, bool ceil_mode) {
  const index_t span = n + 2 * p - d * (k - 1) - 1;
  if (!ceil_mode) return span / s + 1;
  index_t o = (span + s - 1) / s + 1;
  if ((o - 1) * s >= n + p) --o;
  return o;
}

struct Case {
  index_t planes, h, w, kh, kw, sh, sw, ph, pw, dh, dw;
  bool ceil_mode;
};

template <class I>
static void check_pool(const Case& cs, std::mt19937& rng) {
  const Pool2dGeometry g{cs.planes, cs.h, cs.w, cs.kh, cs.kw, cs.sh, cs.sw, cs.ph, cs.pw, cs.dh, cs.dw,
                         out_size(cs.h, cs.kh, cs.sh, cs.ph, cs.dh, cs.ceil_mode),
                         out_size(cs.w, cs.kw, cs.sw, cs.pw, cs.dw, cs.ceil_mode)};
  char geo[160];
  std::snprintf(geo, sizeof geo, "P%ld %ldx%ld k%ldx%ld s%ld,%ld p%ld,%ld d%ld,%ld ceil%d int%zu", (long)g.planes,
                (long)g.h, (long)g.w, (long)g.kh, (long)g.kw, (long)g.sh, (long)g.sw, (long)g.ph, (long)g.pw,
                (long)g.dh, (long)g.dw, int(cs.ceil_mode), sizeof(I) * 8);
  const index_t oh = g.oh, ow = g.ow, hw = g.h * g.w, n_in = g.planes * hw, n_out = g.planes * oh * ow;
  std::uniform_int_distribution<int> small(-2, 2);  // ties on purpose
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> x(n_in), xf(n_in), go(n_out);
  for (auto& e : x) e = float(small(rng));
  for (index_t k = 0; k < n_in; k += 11) x[k] = NAN;  // NaN windows: NaN out, index of the last NaN
  for (auto& e : xf) e = u(rng);
  for (auto& e : go) e = u(rng);
  const double p = 3.0, div_override = -3.0;
  std::vector<double> ymax(n_out), yavg(n_out), yavg_n(n_out), yavg_d(n_out), ylp(n_out), gmax(n_in, 0),
      gavg(n_in, 0), gavg_n(n_in, 0), gavg_d(n_in, 0), glp(n_in, 0);
  std::vector<std::int64_t> imax(n_out);
  for (index_t pl = 0; pl < g.planes; ++pl)
    for (index_t i = 0; i < oh; ++i)
      for (index_t j = 0; j < ow; ++j) {
        const index_t o = (pl * oh + i) * ow + j, hs = i * g.sh - g.ph, ws = j * g.sw - g.pw;
        double best = -INFINITY;
        index_t at = -1;
        for (index_t a = 0; a < g.kh; ++a)
          for (index_t b = 0; b < g.kw; ++b) {
            const index_t r = hs + a * g.dh, c = ws + b * g.dw;
            if (r < 0 || r >= g.h || c < 0 || c >= g.w) continue;
            const float v = x[pl * hw + r * g.w + c];
            if (at < 0 || v > best || std::isnan(v)) best = v, at = r * g.w + c;
          }
        ymax[o] = best, imax[o] = at;
        if (at >= 0) gmax[pl * hw + at] += go[o];
        // avg / lp: undilated windows of the same kernel, stride, padding
        double sum = 0, lp = 0;
        index_t cells = 0;
        for (index_t r = std::max<index_t>(hs, 0); r < std::min(hs + g.kh, g.h); ++r)
          for (index_t c = std::max<index_t>(ws, 0); c < std::min(ws + g.kw, g.w); ++c)
            sum += xf[pl * hw + r * g.w + c], lp += std::pow(std::fabs(xf[pl * hw + r * g.w + c]), p), ++cells;
        const double pool = double(std::min(hs + g.kh, g.h + g.ph) - hs) * double(std::min(ws + g.kw, g.w + g.pw) - ws);
        const double f = double(g.kh * g.kw) / pool;
        yavg[o] = sum / pool, yavg_n[o] = sum / double(cells), yavg_d[o] = sum / div_override;
        ylp[o] = std::pow(f * lp, 1 / p);
        for (index_t r = std::max<index_t>(hs, 0); r < std::min(hs + g.kh, g.h); ++r)
          for (index_t c = std::max<index_t>(ws, 0); c < std::min(ws + g.kw, g.w); ++c) {
            const index_t xi = pl * hw + r * g.w + c;
            gavg[xi] += go[o] / pool, gavg_n[xi] += go[o] / double(cells), gavg_d[xi] += go[o] / div_override;
            if (xf[xi] != 0 && ylp[o] != 0)
              glp[xi] += go[o] * f * (xf[xi] > 0 ? 1 : -1) * std::pow(std::fabs(xf[xi]) / ylp[o], p - 1);
          }
      }
  const auto ge = pd::narrow<I>(g);
  std::vector<float> out(n_out, -7), gin(n_in, -7);
  std::vector<std::int64_t> ind(n_out, -7);
  // The dilated geometry is only for max; avg and lp run the same kernel, stride, padding undilated.
  Pool2dGeometry gu = g;
  gu.dh = gu.dw = 1;
  gu.oh = out_size(g.h, g.kh, g.sh, g.ph, 1, cs.ceil_mode), gu.ow = out_size(g.w, g.kw, g.sw, g.pw, 1, cs.ceil_mode);
  const bool same_undilated = gu.oh == oh && gu.ow == ow;

  emulate_launch(2, 32, [&] { pd::max_forward_kernel<I>(x.data(), out.data(), ind.data(), ge, I(n_out)); });
  expect_close(out, ymax, 0, "max_pool", geo);
  expect_equal(ind, imax, "max_pool indices", geo);
  std::fill(out.begin(), out.end(), -7.0f);
  emulate_launch(2, 32, [&] { pd::max_forward_kernel<I>(x.data(), out.data(), nullptr, ge, I(n_out)); });
  expect_close(out, ymax, 0, "max_pool (no indices)", geo);
  emulate_launch(2, 32, [&] { pd::max_backward_indices_kernel<I>(go.data(), ind.data(), gin.data(), ge, I(n_in)); });
  expect_close(gin, gmax, 1e-5, "max_pool_backward (indices)", geo);
  if (g.tiled()) {
    std::fill(gin.begin(), gin.end(), -7.0f);
    emulate_launch(2, 32, [&] { pd::max_backward_tiled_kernel<I>(go.data(), x.data(), gin.data(), ge, I(n_out)); });
    expect_close(gin, gmax, 1e-5, "max_pool_backward (tiled)", geo);
  }
  if (!same_undilated || g.dh != 1 || g.dw != 1) return;  // avg/lp need the undilated geometry's output size
  const bool cip[] = {true, false};
  for (bool include : cip) {
    emulate_launch(2, 32, [&] { pd::avg_forward_kernel<I>(xf.data(), out.data(), ge, I(n_out), include, 0.0f); });
    expect_close(out, include ? yavg : yavg_n, 1e-5, include ? "avg_pool" : "avg_pool (exclude pad)", geo);
    emulate_launch(2, 32, [&] { pd::avg_backward_kernel<I>(go.data(), gin.data(), ge, I(n_in), include, 0.0f); });
    expect_close(gin, include ? gavg : gavg_n, 1e-5, include ? "avg_pool_backward" : "avg_pool_backward (exclude)", geo);
  }
  emulate_launch(2, 32, [&] { pd::avg_forward_kernel<I>(xf.data(), out.data(), ge, I(n_out), true, float(div_override)); });
  expect_close(out, yavg_d, 1e-5, "avg_pool (divisor_override)", geo);
  emulate_launch(2, 32, [&] { pd::avg_backward_kernel<I>(go.data(), gin.data(), ge, I(n_in), false, float(div_override)); });
  expect_close(gin, gavg_d, 1e-5, "avg_pool_backward (divisor_override)", geo);
  emulate_launch(2, 32, [&] { pd::lp_forward_kernel<I>(xf.data(), out.data(), ge, I(n_out), p); });
  expect_close(out, ylp, 1e-5, "lp_pool", geo);
  emulate_launch(2, 32, [&] { pd::lp_backward_kernel<I>(go.data(), xf.data(), gin.data(), ge, I(n_in), p); });
  expect_close(gin, glp, 1e-4, "lp_pool_backward", geo);
}

template <class I>
static void check_adaptive(index_t planes, index_t h, index_t w, index_t oh, index_t ow, std::mt19937& rng) {
  const AdaptivePool2dGeometry g{planes, h, w, oh, ow};
  char geo[96];
  std::snprintf(geo, sizeof geo, "P%ld %ldx%ld -> %ldx%ld int%zu", (long)planes, (long)h, (long)w, (long)oh,
                (long)ow, sizeof(I) * 8);
  const index_t hw = h * w, n_in = planes * hw, n_out = planes * oh * ow;
  std::uniform_int_distribution<int> small(-2, 2);
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> x(n_in), go(n_out);
  for (auto& e : x) e = float(small(rng));
  for (index_t k = 0; k < n_in; k += 13) x[k] = NAN;
  for (auto& e : go) e = u(rng);
  std::vector<double> ymax(n_out), yavg(n_out), gmax(n_in, 0), gavg(n_in, 0);
  std::vector<std::int64_t> imax(n_out);
  for (index_t pl = 0; pl < planes; ++pl)
    for (index_t i = 0; i < oh; ++i)
      for (index_t j = 0; j < ow; ++j) {
        const index_t o = (pl * oh + i) * ow + j;
        const index_t r0 = i * h / oh, r1 = ((i + 1) * h + oh - 1) / oh, c0 = j * w / ow, c1 = ((j + 1) * w + ow - 1) / ow;
        double best = -INFINITY, sum = 0;
        index_t at = -1;
        for (index_t r = r0; r < r1; ++r)
          for (index_t c = c0; c < c1; ++c) {
            const float v = x[pl * hw + r * w + c];
            if (at < 0 || v > best || std::isnan(v)) best = v, at = r * w + c;
            sum += v;
          }
        ymax[o] = best, imax[o] = at, yavg[o] = sum / double((r1 - r0) * (c1 - c0));
        gmax[pl * hw + at] += go[o];
        for (index_t r = r0; r < r1; ++r)
          for (index_t c = c0; c < c1; ++c) gavg[pl * hw + r * w + c] += go[o] / double((r1 - r0) * (c1 - c0));
      }
  const auto ge = pd::narrow_adaptive<I>(g);
  std::vector<float> out(n_out, -7), gin(n_in, -7);
  std::vector<std::int64_t> ind(n_out, -7);
  emulate_launch(2, 32, [&] { pd::adaptive_max_forward_kernel<I>(x.data(), out.data(), ind.data(), ge, I(n_out)); });
  expect_close(out, ymax, 0, "adaptive_max_pool", geo);
  expect_equal(ind, imax, "adaptive_max_pool indices", geo);
  emulate_launch(2, 32, [&] { pd::adaptive_max_backward_indices_kernel<I>(go.data(), ind.data(), gin.data(), ge, I(n_in)); });
  expect_close(gin, gmax, 1e-5, "adaptive_max_pool_backward", geo);
  emulate_launch(2, 32, [&] { pd::adaptive_avg_forward_kernel<I>(x.data(), out.data(), ge, I(n_out)); });
  expect_close(out, yavg, 1e-5, "adaptive_avg_pool", geo);
  emulate_launch(2, 32, [&] { pd::adaptive_avg_backward_kernel<I>(go.data(), gin.data(), ge, I(n_in)); });
  expect_close(gin, gavg, 1e-5, "adaptive_avg_pool_backward", geo);
}

template <class I>
static void check_unpool(std::mt19937& rng) {
  const index_t planes = 3, in_hw = 7, out_hw = 12, n = planes * in_hw;
  std::uniform_real_distribution<float> u(-1, 1);
  std::uniform_int_distribution<int> pos(-2, int(out_hw) + 1);  // some out of range: skipped
  std::vector<float> x(n), go(planes * out_hw), y(planes * out_hw, 0.0f), gx(n, -7);
  std::vector<std::int64_t> ind(n);
  std::vector<double> y_ref(planes * out_hw, 0.0), gx_ref(n, 0.0);
  for (auto& e : x) e = u(rng);
  for (auto& e : go) e = u(rng);
  for (index_t p = 0; p < planes; ++p)
    for (index_t k = 0; k < in_hw; ++k) {  // distinct in-range targets per plane (no write order to depend on)
      const std::int64_t at = k % 3 == 2 ? pos(rng) : std::int64_t(k * 5 % out_hw);
      ind[p * in_hw + k] = at;
      if (at >= 0 && at < out_hw) y_ref[p * out_hw + at] = x[p * in_hw + k], gx_ref[p * in_hw + k] = go[p * out_hw + at];
    }
  for (index_t k = 0; k < n; ++k)  // duplicates of the distinct ones make the result order-dependent: drop them
    for (index_t m = 0; m < k; ++m)
      if (m / in_hw == k / in_hw && ind[m] == ind[k]) ind[k] = -1, gx_ref[k] = 0;
  for (index_t p = 0; p < planes; ++p) {
    std::fill(y_ref.begin() + p * out_hw, y_ref.begin() + (p + 1) * out_hw, 0.0);
    for (index_t k = 0; k < in_hw; ++k) {
      const std::int64_t at = ind[p * in_hw + k];
      if (at >= 0 && at < out_hw) y_ref[p * out_hw + at] = x[p * in_hw + k];
    }
  }
  emulate_launch(2, 8, [&] { pd::max_unpool_forward_kernel<I>(x.data(), ind.data(), y.data(), I(in_hw), I(out_hw), I(n)); });
  expect_close(y, y_ref, 0, "max_unpool", sizeof(I) == 4 ? "int32" : "int64");
  emulate_launch(2, 8, [&] { pd::max_unpool_backward_kernel<I>(go.data(), ind.data(), gx.data(), I(in_hw), I(out_hw), I(n)); });
  expect_close(gx, gx_ref, 0, "max_unpool_backward", sizeof(I) == 4 ? "int32" : "int64");
}

int main() {
  std::mt19937 rng(7);
  // planes, h, w, kh, kw, sh, sw, ph, pw, dh, dw, ceil_mode
  const Case cases[] = {
      {2, 8, 8, 2, 2, 2, 2, 0, 0, 1, 1, false},  {1, 7, 9, 2, 2, 2, 2, 0, 0, 1, 1, false},
      {1, 7, 9, 2, 2, 2, 2, 0, 0, 1, 1, true},   // tiled, ceil: last row/column of windows cut short
      {2, 9, 9, 3, 3, 2, 2, 1, 1, 1, 1, false},  {2, 10, 9, 3, 3, 2, 2, 1, 1, 1, 1, true},
      {1, 10, 11, 3, 3, 3, 3, 0, 0, 1, 1, false}, {1, 10, 11, 3, 3, 3, 3, 0, 0, 1, 1, true},
      {2, 7, 7, 3, 3, 1, 1, 1, 1, 1, 1, false},  {1, 6, 9, 2, 3, 1, 2, 1, 1, 1, 1, true},
      {2, 11, 5, 3, 2, 2, 3, 1, 0, 1, 1, true},  {1, 9, 8, 2, 2, 3, 3, 0, 0, 1, 1, true},
      {1, 5, 13, 5, 4, 2, 4, 2, 2, 1, 1, false}, {3, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, false},
      {1, 6, 6, 4, 4, 3, 3, 2, 2, 1, 1, true},   // ceil window starting in the right padding is dropped
      {1, 5, 5, 2, 2, 2, 2, 1, 1, 1, 1, true},   // ceil window running past the padded input
      {2, 9, 10, 3, 3, 1, 2, 1, 1, 2, 2, false}, // dilation
      {1, 8, 9, 3, 2, 2, 1, 1, 1, 3, 2, true},   // dilation, ceil
      {1, 1, 3, 2, 2, 2, 2, 1, 1, 2, 2, true},   // dilation stepping over the input: empty windows
  };
  for (const Case& c : cases) {
    check_pool<std::int32_t>(c, rng);
    check_pool<std::int64_t>(c, rng);
  }
  const index_t adaptive[][5] = {{2, 13, 13, 6, 6}, {1, 7, 5, 3, 4}, {1, 4, 4, 7, 9}, {3, 5, 8, 1, 1}, {1, 6, 6, 3, 2}};
  for (auto& a : adaptive) {
    check_adaptive<std::int32_t>(a[0], a[1], a[2], a[3], a[4], rng);
    check_adaptive<std::int64_t>(a[0], a[1], a[2], a[3], a[4], rng);
  }
  check_unpool<std::int32_t>(rng);
  check_unpool<std::int64_t>(rng);
  std::printf("%d failures\n", failures);
  return failures != 0;
}
