// Host emulation of the loss kernels (loss_kernels.cuh) and the broadcasting elementwise kernels
// (elementwise_kernels.cuh) against double-precision loops: every reduction (none / sum / mean,
// one pass-1 block and several), cross-entropy rows with a warp and with a block per row (float4
// and scalar loads), per-position cross-entropy (d > 1), class weights, ignore_index, label
// smoothing, probability targets, nll_loss, the upstream gradient, and the device label check
// (NaN and the status word). Build and run: csrc/cuda/host_emulation/run.sh
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "cuda_shim.h"
#include "cuda/elementwise_kernels.cuh"
#include "cuda/loss_kernels.cuh"

using fastlayers::index_t;
namespace loss = fastlayers::loss;
using namespace fastlayers::cuda::detail;

static int failures = 0;
static void expect(bool ok, const char* what, long a, long b, long c, double err) {
  if (!ok) {
    ++failures;
    std::printf("FAIL %s (%ld, %ld, %ld): err %g\n", what, a, b, c, err);
  }
}

static std::vector<float> randn(index_t n, std::mt19937& rng, float scale = 1.0f) {
  std::normal_distribution<float> nd;
  std::vector<float> v(n + 8);
  for (auto& x : v) x = scale * nd(rng);
  return v;
}

// relative error against max(1, |want|), NaN must match NaN
static double err(double got, double want) {
  if (std::isnan(want) || std::isnan(got)) return std::isnan(want) == std::isnan(got) ? 0.0 : 1e9;
  return std::fabs(got - want) / std::max(1.0, std::fabs(want));
}

// Runs a reduction the way loss.cu does: pass 1 on `blocks` blocks, then pass 2 if needed.
template <class Pass1>
static float reduced(unsigned blocks, unsigned threads, int reduction, double scale, bool by_weight,
                     bool warps, Pass1 pass1) {
  std::vector<double> ws(loss::kWorkspaceDoubles, -1.0);
  float out = -1.0f;
  const Finish fin{ws.data(), &out, reduction, scale, by_weight};
  (void)warps;  // warp teams need no launch of their own: cuda_shim.h runs warps in every block
  emulate_launch(blocks, threads, [&] { pass1(fin); });
  if (blocks > 1)
    emulate_launch(1, kReduceThreads, [&] { sum_partials_kernel(ws.data(), static_cast<int>(blocks), fin); });
  return out;
}

// ---------------------------------------------------------------------------- elementwise losses

template <class F>
static void check_elementwise(const char* name, F f, std::mt19937& rng) {
  for (index_t n : {5, 700})
    for (unsigned blocks : {1u, 3u}) {
      if (n < 256 && blocks > 1) continue;
      auto a = randn(n, rng, 2.0f), b = randn(n, rng, 2.0f);
      const PairTerm<F> term{a.data(), b.data(), f, nullptr, 0};
      double sum = 0, worst = 0;
      for (index_t i = 0; i < n; ++i) sum += f.value(a[i], b[i]);
      for (int red : {loss::kSum, loss::kMean}) {
        const double scale = red == loss::kMean ? 1.0 / n : 1.0;
        const float got = reduced(blocks, kReduceThreads, red, scale, false, false,
                                  [&](const Finish& fin) { elementwise_sum_kernel(n, term, fin); });
        worst = std::max(worst, err(got, sum * scale));
      }
      std::vector<float> none(n + 4, -3.0f), grad(n + 4, -3.0f), go = randn(n, rng);
      emulate_launch(blocks, 64, [&] { elementwise_none_kernel(n, term, none.data()); });
      emulate_launch(blocks, 64, [&] { elementwise_grad_kernel(n, term, go.data(), true, 0.5, grad.data()); });
      for (index_t i = 0; i < n; ++i) {
        worst = std::max(worst, err(none[i], f.value(a[i], b[i])));
        worst = std::max(worst, err(grad[i], 0.5 * go[i] * f.grad(a[i], b[i])));
      }
      expect(none[n] == -3.0f && grad[n] == -3.0f && worst < 2e-6, name, n, blocks, 0, worst);
    }
}

static void check_pm1_status(std::mt19937& rng) {
  const index_t n = 40;
  auto s = randn(n, rng);
  std::vector<float> y(n, 1.0f);
  y[7] = -1.0f;
  y[23] = 0.5f;  // bad
  std::vector<std::int64_t> status(loss::kStatusWords, 0);
  const PairTerm<loss::SoftMargin> term{s.data(), y.data(), {}, status.data(), loss::kStatusLogisticLabel};
  const float got = reduced(2, kReduceThreads, loss::kSum, 1.0, false, false,
                            [&](const Finish& fin) { elementwise_sum_kernel(n, term, fin); });
  std::vector<float> grad(n);
  emulate_launch(1, 64, [&] { elementwise_grad_kernel(n, term, nullptr, false, 1.0, grad.data()); });
  float bad;
  const std::uint32_t bits = static_cast<std::uint32_t>(status[1]);
  std::memcpy(&bad, &bits, sizeof bad);
  expect(std::isnan(got) && std::isnan(grad[23]) && !std::isnan(grad[22]) &&
             status[0] == loss::kStatusLogisticLabel && bad == 0.5f,
         "logistic label status", status[0], status[1], 0, got);
}

// ---------------------------------------------------------------------------- cross-entropy

struct CeCase {
  index_t n, c, d;
  bool weighted;
  std::int64_t ignore;
  float eps;
};

struct CeData {
  std::vector<float> z, t, w, go;
  std::vector<std::int64_t> y;
};

static CeData make_ce(const CeCase& k, std::mt19937& rng) {
  CeData D;
  D.z = randn(k.n * k.c * k.d, rng, 3.0f);
  D.t = randn(k.n * k.c * k.d, rng);
  for (auto& v : D.t) v = std::fabs(v);
  D.w = randn(k.c, rng);
  for (auto& v : D.w) v = 0.2f + std::fabs(v);
  D.go = randn(k.n * k.d, rng);
  D.y.resize(k.n * k.d);
  std::uniform_int_distribution<int> cls(0, static_cast<int>(k.c) - 1);
  for (auto& v : D.y) v = cls(rng);
  if (k.ignore >= 0 && k.ignore < k.c) {
    // some positions ignored (the ignore value is a class that also occurs otherwise)
  } else if (k.ignore != -100) {
    for (index_t p = 0; p < k.n * k.d; p += 3) D.y[p] = k.ignore;
  }
  return D;
}

// Reference per position p: loss, target weight, and the gradient row (times the upstream u).
struct CeRef {
  std::vector<double> loss, wy, grad;  // grad: (n, c, d) without upstream
};

static CeRef ce_reference(const CeCase& k, const CeData& D, bool probs) {
  const index_t P = k.n * k.d;
  CeRef R{std::vector<double>(P), std::vector<double>(P), std::vector<double>(k.n * k.c * k.d)};
  double wsum = 0;
  for (index_t j = 0; j < k.c; ++j) wsum += k.weighted ? D.w[j] : 1.0;
  for (index_t p = 0; p < P; ++p) {
    const index_t s = p / k.d, q = p % k.d;
    auto at = [&](index_t j) { return s * k.c * k.d + j * k.d + q; };
    auto w = [&](index_t j) { return k.weighted ? double(D.w[j]) : 1.0; };
    double mx = -1e300, se = 0;
    for (index_t j = 0; j < k.c; ++j) mx = std::max(mx, double(D.z[at(j)]));
    for (index_t j = 0; j < k.c; ++j) se += std::exp(D.z[at(j)] - mx);
    const double lse = mx + std::log(se);
    auto prob = [&](index_t j) { return std::exp(D.z[at(j)] - lse); };
    if (probs) {
      double v = 0, tsum = 0;
      auto tw = [&](index_t j) { return w(j) * ((1 - k.eps) * D.t[at(j)] + k.eps / k.c); };
      for (index_t j = 0; j < k.c; ++j) v += tw(j) * (lse - D.z[at(j)]), tsum += tw(j);
      R.loss[p] = v;
      R.wy[p] = 1;
      for (index_t j = 0; j < k.c; ++j) R.grad[at(j)] = prob(j) * tsum - tw(j);
      continue;
    }
    const std::int64_t y = D.y[p];
    if (y == k.ignore) continue;  // zeros
    const double wy = w(y);
    double smooth = 0;
    for (index_t j = 0; j < k.c; ++j) smooth += w(j) * (lse - D.z[at(j)]);
    R.loss[p] = (1 - k.eps) * wy * (lse - D.z[at(y)]) + k.eps / k.c * smooth;
    R.wy[p] = wy;
    for (index_t j = 0; j < k.c; ++j)
      R.grad[at(j)] = prob(j) * ((1 - k.eps) * wy + k.eps / k.c * wsum) - (j == y) * (1 - k.eps) * wy -
                      k.eps / k.c * w(j);
  }
  return R;
}

static void check_ce(const CeCase& k, bool probs, std::mt19937& rng) {
  const CeData D = make_ce(k, rng);
  const CeRef R = ce_reference(k, D, probs);
  const index_t P = k.n * k.d;
  std::vector<double> ws(loss::kWorkspaceDoubles, 0.0);
  double wsum = 0;
  for (index_t j = 0; j < k.c; ++j) wsum += D.w[j];
  ws[kWorkspaceWsum] = wsum;
  const float* weight = k.weighted ? D.w.data() : nullptr;
  const ClassArgs A{D.z.data(), D.y.data(), weight, k.n, k.c, k.d, k.ignore, k.eps,
                    k.weighted && k.eps > 0 ? &ws[kWorkspaceWsum] : nullptr, 0, nullptr,
                    loss::kStatusCrossEntropyLabel};
  const ProbArgs B{D.z.data(), D.t.data(), weight, k.n, k.c, k.d, k.eps, 0};
  const bool rows = k.d == 1;
  double worst = 0;
  double lsum = 0, wtot = 0;
  for (index_t p = 0; p < P; ++p) lsum += R.loss[p], wtot += R.wy[p];
  // forward: none, sum, mean with 1 and 3 pass-1 blocks; a thread per position (team 0: d > 1, and
  // rows of at most kThreadRowMax classes, as the launcher), warp teams and block teams for rows
  for (int team : {0, 32, kTeamBlock}) {
    if (team == 0 && rows && k.c > kThreadRowMax) continue;
    if (team == 32 && !rows) continue;
    if (team == kTeamBlock && !(rows && k.c > 64)) continue;  // block teams: the widest rows (slow here)
    auto pass1 = [&](const Finish& fin, float* none) {
      if (team == 0) {
        if (probs) ce_prob_positions_forward_kernel(B, fin, none);
        else ce_positions_forward_kernel(A, fin, none);
      } else if (team == 32) {
        if (probs) ce_prob_rows_forward_kernel<32>(B, fin, none);
        else ce_rows_forward_kernel<32>(A, fin, none);
      } else {
        if (probs) ce_prob_rows_forward_kernel<kTeamBlock>(B, fin, none);
        else ce_rows_forward_kernel<kTeamBlock>(A, fin, none);
      }
    };
    // warp teams run here with 2 warps per block (the launcher uses 8): fewer emulated threads
    const unsigned threads = team == 32 ? 64 : kTeamBlock;
    for (unsigned blocks : {1u, 3u}) {
      for (int red : {loss::kSum, loss::kMean}) {
        const float got = reduced(blocks, threads, red, 1.0 / P, !probs, true,
                                  [&](const Finish& fin) { pass1(fin, nullptr); });
        const double want = red == loss::kSum ? lsum : (probs ? lsum / P : lsum / wtot);
        worst = std::max(worst, err(got, want));
      }
      std::vector<float> none(P + 4, -3.0f);
      emulate_launch(blocks, threads, [&] { pass1(Finish{}, none.data()); });
      for (index_t p = 0; p < P; ++p) worst = std::max(worst, err(none[p], R.loss[p]));
      worst = std::max(worst, none[P] == -3.0f ? 0.0 : 1.0);
    }
    // backward: "none" with a per-sample upstream, "mean" through the weight pass
    for (int red : {loss::kNone, loss::kMean}) {
      Upstream up{red == loss::kNone ? D.go.data() : nullptr, nullptr, red == loss::kNone, 1.0};
      double u_mean = 1.0;
      if (red == loss::kMean) {
        if (probs) {
          up.scale = u_mean = 1.0 / P;
        } else {
          const unsigned wb = 2;
          emulate_launch(wb, kReduceThreads, [&] { target_weight_kernel(A, ws.data()); });
          emulate_launch(1, kReduceThreads, [&] { inverse_weight_kernel(ws.data(), wb, &ws[kWorkspaceWeight]); });
          up.inv_weight = &ws[kWorkspaceWeight];
          u_mean = 1.0 / wtot;
          worst = std::max(worst, err(ws[kWorkspaceWeight], u_mean));
        }
      }
      std::vector<float> g(k.n * k.c * k.d + 4, -3.0f);
      emulate_launch(2, threads, [&] {
        if (team == 0) {
          if (probs) ce_prob_positions_backward_kernel(B, up, g.data());
          else ce_positions_backward_kernel(A, up, g.data());
        } else if (team == 32) {
          if (probs) ce_prob_rows_backward_kernel<32>(B, up, g.data());
          else ce_rows_backward_kernel<32>(A, up, g.data());
        } else {
          if (probs) ce_prob_rows_backward_kernel<kTeamBlock>(B, up, g.data());
          else ce_rows_backward_kernel<kTeamBlock>(A, up, g.data());
        }
      });
      for (index_t e = 0; e < k.n * k.c * k.d; ++e) {
        const index_t p = (e / (k.c * k.d)) * k.d + e % k.d;
        const double u = red == loss::kNone ? D.go[p] : u_mean;
        worst = std::max(worst, err(g[e], u * R.grad[e]));
      }
      worst = std::max(worst, g[k.n * k.c * k.d] == -3.0f ? 0.0 : 1.0);
    }
  }
  expect(worst < 3e-5, probs ? "cross-entropy probabilities" : "cross-entropy classes",
         k.n * 1000 + k.c, k.d, static_cast<long>(k.ignore) * 10 + (k.weighted ? 1 : 0) + (k.eps > 0 ? 2 : 0),
         worst);
}

static void check_nll(std::mt19937& rng) {
  for (index_t d : {1, 5})
    for (bool weighted : {false, true}) {
      const CeCase k{6, 4, d, weighted, 2, 0.0f};
      CeData D = make_ce(k, rng);
      const index_t P = k.n * k.d;
      std::vector<double> ws(loss::kWorkspaceDoubles, 0.0);
      const ClassArgs A{D.z.data(), D.y.data(), weighted ? D.w.data() : nullptr, k.n, k.c, k.d, k.ignore,
                        0.0f, nullptr, 0, nullptr, loss::kStatusNllLabel};
      double lsum = 0, wtot = 0, worst = 0;
      std::vector<double> want(P, 0.0), wy(P, 0.0);
      for (index_t p = 0; p < P; ++p) {
        const std::int64_t y = D.y[p];
        if (y == k.ignore) continue;
        wy[p] = weighted ? D.w[y] : 1.0;
        want[p] = -wy[p] * D.z[(p / d) * k.c * d + y * d + p % d];
        lsum += want[p];
        wtot += wy[p];
      }
      const float mean = reduced(3, kReduceThreads, loss::kMean, 1.0, true, false,
                                 [&](const Finish& fin) { nll_forward_kernel(A, fin, nullptr); });
      worst = std::max(worst, err(mean, lsum / wtot));
      std::vector<float> none(P);
      emulate_launch(2, kReduceThreads, [&] { nll_forward_kernel(A, Finish{}, none.data()); });
      for (index_t p = 0; p < P; ++p) worst = std::max(worst, err(none[p], want[p]));
      emulate_launch(2, kReduceThreads, [&] { target_weight_kernel(A, ws.data()); });
      emulate_launch(1, kReduceThreads, [&] { inverse_weight_kernel(ws.data(), 2, &ws[kWorkspaceWeight]); });
      const Upstream up{nullptr, &ws[kWorkspaceWeight], false, 1.0};
      std::vector<float> g(k.n * k.c * d, -3.0f);
      emulate_launch(3, 64, [&] { nll_backward_kernel(A, up, g.data()); });
      for (index_t e = 0; e < k.n * k.c * d; ++e) {
        const index_t p = (e / (k.c * d)) * d + e % d, j = (e / d) % k.c;
        const double w = D.y[p] == j && D.y[p] != k.ignore ? -wy[p] / wtot : 0.0;
        worst = std::max(worst, err(g[e], w));
      }
      expect(worst < 1e-6, "nll_loss", d, weighted, 0, worst);
    }
}

static void check_bad_class_label(std::mt19937& rng) {
  for (index_t d : {1, 3}) {
    const CeCase k{5, 6, d, false, -100, 0.0f};
    CeData D = make_ce(k, rng);
    D.y[2] = 99;
    std::vector<std::int64_t> status(loss::kStatusWords, 0);
    const ClassArgs A{D.z.data(), D.y.data(), nullptr, k.n, k.c, k.d, k.ignore, 0.0f, nullptr, 0,
                      status.data(), loss::kStatusCrossEntropyLabel};
    const float got = reduced(1, 64, loss::kMean, 1.0, true, true, [&](const Finish& fin) {
      if (d == 1) ce_rows_forward_kernel<32>(A, fin, nullptr);
      else ce_positions_forward_kernel(A, fin, nullptr);
    });
    std::vector<float> g(k.n * k.c * d);
    // "mean": the bad label adds nothing to the divisor, so the other samples' gradients stay finite
    std::vector<double> ws(loss::kWorkspaceDoubles, 0.0);
    emulate_launch(1, kReduceThreads, [&] { target_weight_kernel(A, ws.data()); });
    emulate_launch(1, kReduceThreads, [&] { inverse_weight_kernel(ws.data(), 1, &ws[kWorkspaceWeight]); });
    const Upstream up{nullptr, &ws[kWorkspaceWeight], false, 1.0};
    emulate_launch(1, 64, [&] {
      if (d == 1) ce_rows_backward_kernel<32>(A, up, g.data());
      else ce_positions_backward_kernel(A, up, g.data());
    });
    // position 2 (sample 2 / d, position 2 % d) has NaN gradients; another position does not
    const index_t s = 2 / d, q = 2 % d;
    const bool nan_row = std::isnan(g[s * k.c * d + q]) && std::isnan(g[s * k.c * d + (k.c - 1) * d + q]);
    const bool clean = !std::isnan(g[(k.n - 1) * k.c * d]);
    expect(std::isnan(got) && nan_row && clean && status[0] == loss::kStatusCrossEntropyLabel &&
               status[1] == 99 && status[2] == k.c,
           "bad class label", d, status[0], status[1], got);
  }
}

// ---------------------------------------------------------------------------- broadcasting

static void check_broadcast(std::mt19937& rng) {
  // (shape, a strides, b strides): same shape, scalar b, row bias, column, (N, C, HW) channel bias
  struct Case {
    int nd;
    index_t shape[3], sa[3], sb[3];
  } cases[] = {{1, {37}, {1}, {1}},          {1, {37}, {1}, {0}},          {2, {5, 9}, {9, 1}, {0, 1}},
               {2, {5, 9}, {9, 1}, {1, 0}},   {3, {3, 4, 5}, {20, 5, 1}, {0, 1, 0}},
               {3, {3, 4, 5}, {0, 5, 1}, {4, 1, 0}}};
  for (const Case& c : cases)
    for (int op : {kBinaryAdd, kBinaryMul}) {
      index_t n = 1;
      for (int k = 0; k < c.nd; ++k) n *= c.shape[k];
      auto a = randn(n, rng), b = randn(n, rng);
      std::vector<float> y1(n), y2(n);
      BroadcastGeom g{};
      g.ndim = c.nd;
      for (int k = 0; k < c.nd; ++k) g.shape[k] = c.shape[k], g.sa[k] = c.sa[k], g.sb[k] = c.sb[k];
      emulate_launch(2, 32, [&] {
        if (op == kBinaryAdd) broadcast_kernel<kBinaryAdd>(n, g, a.data(), b.data(), y1.data(), 2.0f);
        else broadcast_kernel<kBinaryMul>(n, g, a.data(), b.data(), y1.data(), 2.0f);
      });
      emulate_launch(2, 32, [&] {
        if (c.nd == 1) {
          if (op == kBinaryAdd) broadcast1_kernel<kBinaryAdd>(n, a.data(), c.sa[0], b.data(), c.sb[0], y2.data(), 2.0f);
          else broadcast1_kernel<kBinaryMul>(n, a.data(), c.sa[0], b.data(), c.sb[0], y2.data(), 2.0f);
        } else if (c.nd == 2) {
          if (op == kBinaryAdd)
            broadcast2_kernel<kBinaryAdd>(n, c.shape[1], a.data(), c.sa[0], c.sa[1], b.data(), c.sb[0], c.sb[1], y2.data(), 2.0f);
          else
            broadcast2_kernel<kBinaryMul>(n, c.shape[1], a.data(), c.sa[0], c.sa[1], b.data(), c.sb[0], c.sb[1], y2.data(), 2.0f);
        } else {
          y2 = y1;
        }
      });
      double worst = 0;
      for (index_t i = 0; i < n; ++i) {
        index_t rest = i, oa = 0, ob = 0;
        for (int k = c.nd - 1; k >= 0; --k) {
          const index_t v = rest % c.shape[k];
          rest /= c.shape[k];
          oa += v * c.sa[k];
          ob += v * c.sb[k];
        }
        const double want = op == kBinaryAdd ? a[oa] + 2.0 * b[ob] : double(a[oa]) * b[ob];
        worst = std::max({worst, std::fabs(y1[i] - want), std::fabs(y2[i] - want)});
      }
      expect(worst < 1e-5, "broadcast", c.nd, op, c.sb[0], worst);
    }
}

// sum_broadcast's split (as elementwise.cu builds it) for g of `shape` and output strides `so`.
static SumGeom sum_geom(int nd, const index_t* shape, const index_t* so) {
  SumGeom s{};
  index_t gstride[8], acc = 1;
  for (int k = nd - 1; k >= 0; --k) gstride[k] = acc, acc *= shape[k];
  s.kept_count = s.reduced_count = 1;
  for (int k = 0; k < nd - 1; ++k) {
    if (so[k]) {
      s.ksize[s.nk] = shape[k], s.kg[s.nk] = gstride[k], s.ko[s.nk] = so[k], s.kept_count *= shape[k], ++s.nk;
    } else {
      s.rsize[s.nr] = shape[k], s.rg[s.nr] = gstride[k], s.reduced_count *= shape[k], ++s.nr;
    }
  }
  s.inner = shape[nd - 1];
  return s;
}

static void check_sum_broadcast(std::mt19937& rng) {
  struct Case {
    int nd;
    index_t shape[4], so[4];
  } cases[] = {
      {2, {7, 9}, {0, 1}},            // bias over rows -> (9,)
      {2, {7, 9}, {1, 0}},            // per-row -> (7, 1)
      {3, {3, 4, 5}, {0, 1, 0}},      // channel bias of (N, C, HW) -> (C,)
      {3, {3, 4, 5}, {4, 1, 0}},      // -> (3, 4, 1)
      {4, {2, 3, 4, 5}, {0, 5, 0, 1}},  // kept and reduced interleaved
      {1, {300}, {0}},                // everything -> scalar
      {1, {11}, {1}},                 // a scaled copy
  };
  for (const Case& c : cases) {
    index_t n = 1, outs = 1;
    for (int k = 0; k < c.nd; ++k) {
      n *= c.shape[k];
      if (c.so[k]) outs *= c.shape[k];
    }
    auto g = randn(n, rng);
    std::vector<double> want(outs, 0.0);
    for (index_t i = 0; i < n; ++i) {
      index_t rest = i, o = 0;
      for (int k = c.nd - 1; k >= 0; --k) {
        o += (rest % c.shape[k]) * c.so[k];
        rest /= c.shape[k];
      }
      want[o] += 0.5 * g[i];
    }
    const SumGeom s = sum_geom(c.nd, c.shape, c.so);
    std::vector<float> out(outs + 2, -3.0f);
    if (c.so[c.nd - 1]) emulate_launch(2, 32, [&] { sum_kept_inner_kernel(s, g.data(), out.data(), 0.5f); });
    else emulate_launch(2, kSumThreads, [&] { sum_reduced_inner_kernel(s, g.data(), out.data(), 0.5f); });
    double worst = out[outs] == -3.0f ? 0.0 : 1.0;
    for (index_t o = 0; o < outs; ++o) worst = std::max(worst, std::fabs(out[o] - want[o]));
    expect(worst < 1e-5, "sum_broadcast", c.nd, c.shape[0], c.so[0], worst);
  }
}

int main() {
  std::mt19937 rng(7);
  check_elementwise("mse", loss::Mse{}, rng);
  check_elementwise("l1", loss::L1{}, rng);
  check_elementwise("smooth_l1", loss::SmoothL1{0.7}, rng);
  check_elementwise("huber", loss::Huber{0.7}, rng);
  check_elementwise("soft_margin", loss::SoftMargin{}, rng);
  check_elementwise("hinge_embedding", loss::HingeEmbedding{-0.5}, rng);
  check_pm1_status(rng);
  {  // binary cross-entropy with weight and pos_weight
    const index_t n = 300;
    auto x = randn(n, rng, 3.0f), t = randn(n, rng), w = randn(n, rng), pw = randn(n, rng);
    for (auto& v : t) v = std::fabs(v) / (1 + std::fabs(v));
    for (auto& v : pw) v = std::fabs(v);
    const BceTerm term{x.data(), t.data(), w.data(), pw.data()};
    double sum = 0, worst = 0;
    for (index_t i = 0; i < n; ++i) sum += w[i] * loss::bce_value(x[i], t[i], pw[i]);
    const float got = reduced(3, kReduceThreads, loss::kMean, 1.0 / n, false, false,
                              [&](const Finish& fin) { elementwise_sum_kernel(n, term, fin); });
    worst = err(got, sum / n);
    std::vector<float> g(n);
    emulate_launch(2, 64, [&] { elementwise_grad_kernel(n, term, nullptr, false, 1.0, g.data()); });
    for (index_t i = 0; i < n; ++i) worst = std::max(worst, err(g[i], w[i] * loss::bce_grad(x[i], t[i], pw[i])));
    expect(worst < 2e-6, "bce weights", n, 0, 0, worst);
  }
  // cross-entropy: rows (a thread, warp or block team; c % 4 == 0 takes float4 loads), positions
  const CeCase cases[] = {
      {5, 1, 1, false, -100, 0.0f},  {9, 3, 1, false, -100, 0.0f},  {9, 4, 1, true, 1, 0.0f},
      {11, 10, 1, false, 2, 0.3f},   {7, 37, 1, true, -1, 0.2f},    {3, 260, 1, true, 5, 0.1f},
      {6, 16, 1, true, -100, 0.1f},  {6, 17, 1, false, -100, 0.0f},  // either side of kThreadRowMax
      {4, 3, 5, false, -100, 0.0f},  {3, 5, 7, true, 0, 0.25f},     {2, 4, 33, false, -7, 0.0f},
  };
  for (const CeCase& k : cases) {
    check_ce(k, false, rng);
    if (k.ignore < 0) check_ce(k, true, rng);
  }
  check_nll(rng);
  check_bad_class_label(rng);
  check_broadcast(rng);
  check_sum_broadcast(rng);
  std::printf("%d failures\n", failures);
  return failures != 0;
}
