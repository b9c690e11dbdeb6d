// Host emulation of the CUDA 3-D convolution and pooling kernels (conv3d_kernels.cuh with
// conv_kernels.cuh's implicit GEMM, pool3d_kernels.cuh) and of conv_transpose2d's bias kernel,
// against plain double-precision loops. See cuda_shim.h for what this proves and what it does not.
// Build and run: csrc/cuda/host_emulation/run.sh
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <random>
#include <vector>

#include "cuda_shim.h"
#include "cuda/conv3d_kernels.cuh"
#include "common/pool3d_geometry.h"
#include "cuda/pool3d_kernels.cuh"

using fastlayers::index_t;
namespace cd = fastlayers::cuda::conv3d_gemm;
namespace c3 = fastlayers::cuda::conv3d_detail;
namespace p3 = fastlayers::cuda::pool3d_detail;

// A 3-D grid of 1-D blocks, one block at a time (the shim's emulate_launch3).
template <class F>
void launch3(unsigned gx, unsigned gy, unsigned gz, unsigned block, F fn) {
  emulate_launch3(gx, gy, gz, block, fn);
}

struct Shape3 {
  index_t N, C, D, H, W, K, T, R, S, OD, P, Q, stride_d, stride_h, stride_w, pad_d, pad_h, pad_w, dil_d, dil_h, dil_w,
      groups;
};

index_t out_size(index_t n, index_t k, index_t s, index_t p, index_t d) { return (n + 2 * p - d * (k - 1) - 1) / s + 1; }

Shape3 make3(index_t N, index_t C, index_t D, index_t H, index_t W, index_t K, index_t T, index_t R, index_t S,
             index_t sd, index_t sh, index_t sw, index_t pd, index_t ph, index_t pw, index_t dd, index_t dh, index_t dw,
             index_t g) {
  return {N, C, D, H, W, K, T, R, S, out_size(D, T, sd, pd, dd), out_size(H, R, sh, ph, dh), out_size(W, S, sw, pw, dw),
          sd, sh, sw, pd, ph, pw, dd, dh, dw, g};
}

index_t cdiv(index_t a, index_t b) { return (a + b - 1) / b; }

int failures = 0;

void expect_close(const std::vector<float>& got, const std::vector<double>& want, double tol, const char* what) {
  double worst = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double d = std::fabs(got[i] - want[i]);
    if (!(d <= worst)) worst = d;  // NaN-safe
  }
  if (!(worst <= tol)) {
    ++failures;
    std::printf("FAIL %s: max err %g\n", what, worst);
  }
}

template <class I>
void check_conv3d(const Shape3& s, index_t splits, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-1, 1);
  const index_t Cg = s.C / s.groups, Kg = s.K / s.groups, ctrs = Cg * s.T * s.R * s.S;
  const index_t odpq = s.OD * s.P * s.Q, dhw = s.D * s.H * s.W;
  std::vector<float> x(s.N * s.C * dhw), w(s.K * ctrs), b(s.K), go(s.N * s.K * odpq);
  for (auto* v : {&x, &w, &b, &go})
    for (auto& e : *v) e = u(rng);
  std::vector<double> y_ref(go.size(), 0), gx_ref(x.size(), 0), gw_ref(w.size(), 0), gb_ref(s.K, 0);
  for (index_t n = 0; n < s.N; ++n)
    for (index_t k = 0; k < s.K; ++k)
      for (index_t v = 0; v < odpq; ++v) {
        const index_t od = v / (s.P * s.Q), p = (v / s.Q) % s.P, q = v % s.Q, yi = (n * s.K + k) * odpq + v, g = k / Kg;
        double acc = b[k];
        gb_ref[k] += go[yi];
        for (index_t c = 0; c < Cg; ++c)
          for (index_t t = 0; t < s.T; ++t)
            for (index_t r = 0; r < s.R; ++r)
              for (index_t ss = 0; ss < s.S; ++ss) {
                const index_t id = od * s.stride_d - s.pad_d + t * s.dil_d, ih = p * s.stride_h - s.pad_h + r * s.dil_h,
                              iw = q * s.stride_w - s.pad_w + ss * s.dil_w;
                if (id < 0 || id >= s.D || ih < 0 || ih >= s.H || iw < 0 || iw >= s.W) continue;
                const index_t xi = (((n * s.C + g * Cg + c) * s.D + id) * s.H + ih) * s.W + iw;
                const index_t wi = (((k * Cg + c) * s.T + t) * s.R + r) * s.S + ss;
                acc += double(w[wi]) * x[xi];
                gx_ref[xi] += double(w[wi]) * go[yi];
                gw_ref[wi] += double(x[xi]) * go[yi];
              }
        y_ref[yi] = acc;
      }
  const c3::Dims3<I> d = c3::dims3_of<I>(s);
  const index_t G = s.groups;
  std::vector<float> y(go.size(), NAN);
  {
    const c3::ForwardOp3<I> op{x.data(), w.data(), b.data(), y.data(), d};
    const index_t ncol = s.N * odpq;
    launch3(cdiv(ncol, cd::kBN), cdiv(Kg, cd::kBM), G, cd::kGemmThreads,
            [&] { cd::implicit_gemm_kernel<c3::ForwardOp3<I>, I>(op, Kg, ncol, ctrs, G, 1, ctrs); });
  }
  expect_close(y, y_ref, 1e-4, "conv3d forward");
  std::vector<float> gx(x.size(), NAN);
  {
    const c3::BackwardDataOp3<I> op{go.data(), w.data(), gx.data(), d};
    const index_t ncol = s.N * dhw, kred = Kg * s.T * s.R * s.S;
    launch3(cdiv(ncol, cd::kBN), cdiv(Cg, cd::kBM), G, cd::kGemmThreads,
            [&] { cd::implicit_gemm_kernel<c3::BackwardDataOp3<I>, I>(op, Cg, ncol, kred, G, 1, kred); });
  }
  expect_close(gx, gx_ref, 1e-4, "conv3d backward_data");
  std::vector<float> gw(w.size(), NAN), ws(splits * w.size(), NAN), gb(s.K, NAN);
  {
    const index_t kred = s.N * odpq, k_chunk = std::max<index_t>(cd::kBK, cdiv(cdiv(kred, splits), cd::kBK) * cd::kBK);
    const c3::BackwardWeightOp3<I> op{go.data(), x.data(), splits > 1 ? ws.data() : gw.data(), d};
    launch3(cdiv(ctrs, cd::kBN), cdiv(Kg, cd::kBM), G * splits, cd::kGemmThreads,
            [&] { cd::implicit_gemm_kernel<c3::BackwardWeightOp3<I>, I>(op, Kg, ctrs, kred, G, splits, k_chunk); });
    if (splits > 1)
      emulate_launch(2, 32, [&] { cd::sum_splits_kernel<I>(ws.data(), gw.data(), I(w.size()), I(splits)); });
    emulate_launch(2, 256, [&] { cd::bias_grad_kernel<I>(go.data(), gb.data(), I(s.N), I(s.K), I(odpq)); });
  }
  expect_close(gw, gw_ref, 1e-3, "conv3d backward_weight");
  expect_close(gb, gb_ref, 1e-3, "conv3d grad_b");
}

// conv_transpose2d's bias pass.
template <class I>
void check_channel_bias(std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-1, 1);
  const index_t N = 3, C = 5, inner = 7;
  std::vector<float> y(N * C * inner), b(C);
  for (auto& e : y) e = u(rng);
  for (auto& e : b) e = u(rng);
  std::vector<double> want(y.size());
  for (index_t i = 0; i < N * C * inner; ++i) want[i] = double(y[i]) + b[(i / inner) % C];
  emulate_launch(2, 32, [&] { c3::add_channel_bias_kernel<I>(y.data(), b.data(), I(C), I(inner), I(N * C * inner)); });
  expect_close(y, want, 1e-6, "conv_transpose2d bias");
}

struct Pool {
  index_t planes, d, h, w, k[3], s[3], p[3], dil[3];
  bool ceil_mode;
};

index_t pool_out(index_t n, index_t k, index_t s, index_t p, index_t d, bool ceil_mode) {
  const index_t span = n + 2 * p - d * (k - 1) - 1;
  index_t o = (span + (ceil_mode ? s - 1 : 0)) / s + 1;
  if (ceil_mode && (o - 1) * s >= n + p) --o;
  return o;
}

template <class I>
void check_pool3d(const Pool& pl, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-1, 1);
  const index_t n[3] = {pl.d, pl.h, pl.w};
  index_t o[3];
  for (int a = 0; a < 3; ++a) o[a] = pool_out(n[a], pl.k[a], pl.s[a], pl.p[a], pl.dil[a], pl.ceil_mode);
  fastlayers::Pool3dGeometry g{pl.planes, pl.d, pl.h, pl.w, pl.k[0], pl.k[1], pl.k[2], pl.s[0], pl.s[1], pl.s[2],
                               pl.p[0], pl.p[1], pl.p[2], pl.dil[0], pl.dil[1], pl.dil[2], o[0], o[1], o[2]};
  const index_t vin = pl.d * pl.h * pl.w, vout = o[0] * o[1] * o[2];
  std::vector<float> x(pl.planes * vin), go(pl.planes * vout);
  for (auto& e : x) e = std::round(u(rng) * 4) / 4;  // ties, so first-maximum order matters
  for (auto& e : go) e = u(rng);
  if (x.size() > 5) x[5] = NAN;  // a NaN wins its windows
  // Reference: per window, the real cells in (t, r, s) order.
  std::vector<double> ymax(go.size()), yavg(go.size()), yavg_ex(go.size()), gmax(x.size(), 0), gavg(x.size(), 0);
  std::vector<std::int64_t> imax(go.size());
  for (index_t pp = 0; pp < pl.planes; ++pp)
    for (index_t i = 0; i < o[0]; ++i)
      for (index_t j = 0; j < o[1]; ++j)
        for (index_t l = 0; l < o[2]; ++l) {
          const index_t oi = pp * vout + (i * o[1] + j) * o[2] + l, st[3] = {i, j, l};
          double best = -INFINITY, sum = 0;
          index_t at = -1, real = 0;
          double pool_size = 1;
          for (int a = 0; a < 3; ++a) {
            const index_t start = st[a] * pl.s[a] - pl.p[a];
            pool_size *= double(std::min(start + pl.k[a], n[a] + pl.p[a]) - start);
          }
          for (index_t t = 0; t < pl.k[0]; ++t)
            for (index_t r = 0; r < pl.k[1]; ++r)
              for (index_t c = 0; c < pl.k[2]; ++c) {
                const index_t zd = i * pl.s[0] - pl.p[0] + t * pl.dil[0], zh = j * pl.s[1] - pl.p[1] + r * pl.dil[1],
                              zw = l * pl.s[2] - pl.p[2] + c * pl.dil[2];
                if (zd < 0 || zd >= pl.d || zh < 0 || zh >= pl.h || zw < 0 || zw >= pl.w) continue;
                const index_t idx = (zd * pl.h + zh) * pl.w + zw;
                const float v = x[pp * vin + idx];
                if (at < 0 || v > best || std::isnan(v)) {
                  best = v;
                  at = idx;
                }
                sum += v;
                ++real;
              }
          ymax[oi] = best;
          imax[oi] = at;
          if (at >= 0) gmax[pp * vin + at] += go[oi];
          yavg[oi] = sum / pool_size;
          yavg_ex[oi] = sum / double(real);
        }
  // avg backward (dilation 1 geometry only)
  const bool dilated = pl.dil[0] != 1 || pl.dil[1] != 1 || pl.dil[2] != 1;
  const p3::Geo3<I> geo = p3::narrow3<I>(g);
  const index_t n_out = pl.planes * vout, n_in = pl.planes * vin;
  std::vector<float> y(go.size(), 0), gi(x.size(), 0);
  std::vector<std::int64_t> idx(go.size(), 99);
  emulate_launch(2, 32, [&] { p3::max3_forward_kernel<I>(x.data(), y.data(), idx.data(), geo, I(n_out)); });
  bool idx_ok = true;
  for (size_t e = 0; e < idx.size(); ++e) idx_ok = idx_ok && idx[e] == imax[e];
  if (!idx_ok) {
    ++failures;
    std::printf("FAIL max_pool3d indices\n");
  }
  std::vector<double> ymax_cmp(ymax);
  std::vector<float> y_cmp(y);
  for (size_t e = 0; e < y.size(); ++e)  // NaN and -inf compared by pattern
    if (std::isnan(ymax[e]) || std::isinf(ymax[e])) {
      if (!(std::isnan(y[e]) == std::isnan(ymax[e]) && (std::isnan(y[e]) || y[e] == ymax[e]))) {
        ++failures;
        std::printf("FAIL max_pool3d special value at %zu\n", e);
      }
      ymax_cmp[e] = 0, y_cmp[e] = 0;
    }
  expect_close(y_cmp, ymax_cmp, 0, "max_pool3d forward");
  emulate_launch(2, 32, [&] { p3::max3_backward_kernel<I>(go.data(), x.data(), gi.data(), geo, I(n_in)); });
  expect_close(gi, gmax, 1e-5, "max_pool3d backward");
  std::vector<float> gi_idx(x.size(), -1);  // from the forward's indices: the same gradient
  emulate_launch(2, 32, [&] {
    p3::max3_backward_indices_kernel<I>(go.data(), idx.data(), gi_idx.data(), geo, I(n_in));
  });
  expect_close(gi_idx, gmax, 1e-5, "max_pool3d backward from indices");
  if (dilated) return;
  // Avg with NaN-free input.
  for (auto& e : x)
    if (std::isnan(e)) e = 0.5f;
  for (index_t pp = 0; pp < pl.planes; ++pp)  // recompute the two averages without the NaN
    for (index_t oi = pp * vout; oi < (pp + 1) * vout; ++oi) {
      const index_t r = oi - pp * vout, i = r / (o[1] * o[2]), j = (r / o[2]) % o[1], l = r % o[2], st[3] = {i, j, l};
      double sum = 0, pool_size = 1, real = 1;
      index_t lo[3], hi[3];
      for (int a = 0; a < 3; ++a) {
        const index_t start = st[a] * pl.s[a] - pl.p[a];
        pool_size *= double(std::min(start + pl.k[a], n[a] + pl.p[a]) - start);
        lo[a] = std::max<index_t>(start, 0), hi[a] = std::min(start + pl.k[a], n[a]);
        real *= double(hi[a] - lo[a]);
      }
      for (index_t zd = lo[0]; zd < hi[0]; ++zd)
        for (index_t zh = lo[1]; zh < hi[1]; ++zh)
          for (index_t zw = lo[2]; zw < hi[2]; ++zw) sum += x[pp * vin + (zd * pl.h + zh) * pl.w + zw];
      yavg[oi] = sum / pool_size;
      yavg_ex[oi] = sum / real;
      for (index_t zd = lo[0]; zd < hi[0]; ++zd)
        for (index_t zh = lo[1]; zh < hi[1]; ++zh)
          for (index_t zw = lo[2]; zw < hi[2]; ++zw) gavg[pp * vin + (zd * pl.h + zh) * pl.w + zw] += go[oi] / pool_size;
    }
  emulate_launch(2, 32, [&] { p3::avg3_forward_kernel<I>(x.data(), y.data(), geo, I(n_out), true, 0); });
  expect_close(y, yavg, 1e-5, "avg_pool3d forward (count_include_pad)");
  emulate_launch(2, 32, [&] { p3::avg3_forward_kernel<I>(x.data(), y.data(), geo, I(n_out), false, 0); });
  expect_close(y, yavg_ex, 1e-5, "avg_pool3d forward (exclude pad)");
  emulate_launch(2, 32, [&] { p3::avg3_backward_kernel<I>(go.data(), gi.data(), geo, I(n_in), true, 0); });
  expect_close(gi, gavg, 1e-5, "avg_pool3d backward");
  emulate_launch(2, 32, [&] { p3::avg3_forward_kernel<I>(x.data(), y.data(), geo, I(n_out), true, 3); });
  std::vector<double> ydiv(yavg);
  for (index_t oi = 0; oi < n_out; ++oi) {
    const index_t r = oi % vout, i = r / (o[1] * o[2]), j = (r / o[2]) % o[1], l = r % o[2], st[3] = {i, j, l};
    double pool_size = 1;
    for (int a = 0; a < 3; ++a) {
      const index_t start = st[a] * pl.s[a] - pl.p[a];
      pool_size *= double(std::min(start + pl.k[a], n[a] + pl.p[a]) - start);
    }
    ydiv[oi] = yavg[oi] * pool_size / 3.0;
  }
  expect_close(y, ydiv, 1e-5, "avg_pool3d forward (divisor_override)");
}

int main() {
  std::mt19937 rng(7);
  // N, C, D, H, W, K, T, R, S, strides, pads, dilations, groups
  const Shape3 convs[] = {
      make3(2, 3, 4, 5, 4, 4, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1),  // 3x3x3 pad 1
      make3(1, 4, 5, 4, 6, 6, 2, 3, 2, 2, 1, 3, 1, 0, 2, 1, 1, 1, 2),  // strides, asymmetric, groups 2
      make3(1, 2, 7, 5, 5, 3, 2, 2, 3, 1, 2, 1, 2, 1, 0, 3, 2, 1, 1),  // dilation, padding past the taps
      make3(2, 5, 3, 3, 3, 7, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1),  // 1x1x1
      make3(1, 70, 2, 2, 2, 66, 1, 2, 2, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1),  // several M and reduction tiles
  };
  for (const Shape3& s : convs) {
    check_conv3d<std::int32_t>(s, 1, rng);
    check_conv3d<std::int64_t>(s, 1, rng);
    if (s.N * s.OD * s.P * s.Q > 32) check_conv3d<std::int32_t>(s, 3, rng);
  }
  check_channel_bias<std::int32_t>(rng);
  check_channel_bias<std::int64_t>(rng);
  // planes, d, h, w, kernel, stride, padding, dilation, ceil_mode
  const Pool pools[] = {
      {2, 4, 4, 4, {2, 2, 2}, {2, 2, 2}, {0, 0, 0}, {1, 1, 1}, false},
      {1, 5, 6, 7, {3, 3, 3}, {2, 2, 2}, {1, 1, 1}, {1, 1, 1}, false},
      {2, 5, 6, 7, {3, 2, 3}, {2, 3, 1}, {1, 1, 0}, {1, 1, 1}, true},
      {1, 6, 5, 7, {3, 2, 2}, {2, 1, 2}, {1, 0, 1}, {1, 2, 2}, false},  // dilation (max only)
      {1, 7, 5, 5, {2, 2, 2}, {3, 3, 3}, {0, 0, 0}, {1, 1, 1}, true},   // ceil mode, gaps between windows
      {1, 2, 2, 2, {2, 2, 2}, {1, 1, 1}, {1, 1, 1}, {3, 3, 3}, false},  // all-padding windows: -inf, -1
  };
  for (const Pool& p : pools) {
    check_pool3d<std::int32_t>(p, rng);
    check_pool3d<std::int64_t>(p, rng);
  }
  std::printf("%d failures\n", failures);
  return failures != 0;
}
