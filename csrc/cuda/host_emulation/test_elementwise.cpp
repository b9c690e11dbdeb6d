// Host emulation of the activation functors (csrc/cuda/activation_kernels.cuh, run through the
// elementwise map of map_kernels.cuh) and the optimizer update kernels (optim_kernels.cuh)
// against double-precision formulas, NaN and infinities included. See cuda_shim.h.
#include <cmath>
#include <cstdio>
#include <functional>
#include <random>
#include <vector>

#include "cuda_shim.h"
#include "cuda/activation_kernels.cuh"
#include "cuda/map_kernels.cuh"
#include "cuda/optim_kernels.cuh"

using fastlayers::index_t;
using namespace fastlayers::cuda::detail;

static int failures = 0, cases = 0;

static void expect(bool ok, const char* what) {
  ++cases;
  if (!ok) ++failures, std::printf("FAIL %s\n", what);
}

static bool close(double got, double want, double tol) {
  if (std::isnan(want)) return std::isnan(got);
  if (std::isinf(want)) return got == want;
  return std::fabs(got - want) <= tol * (1 + std::fabs(want));
}

template <class F>
static void unary(const char* name, F f, std::function<double(double)> want, const std::vector<float>& x) {
  const index_t n = x.size();
  std::vector<float> y(n);
  emulate_launch(2, 32, [&] { map1_kernel(n, x.data(), y.data(), f, false); });
  bool ok = true;
  for (index_t i = 0; i < n; ++i) ok = ok && close(y[i], want(x[i]), 2e-6);
  expect(ok, name);
}
template <class F>
static void binary(const char* name, F f, std::function<double(double, double)> want, const std::vector<float>& g,
                   const std::vector<float>& x) {
  const index_t n = x.size();
  std::vector<float> y(n);
  emulate_launch(2, 32, [&] { map2_kernel(n, g.data(), x.data(), y.data(), f, true); });
  bool ok = true;
  for (index_t i = 0; i < n; ++i) ok = ok && close(y[i], want(g[i], x[i]), 2e-6);
  expect(ok, name);
}

int main() {
  std::mt19937 rng(11);
  std::normal_distribution<float> nd;
  std::vector<float> x(203), g(203), y01(203);
  for (auto& v : x) v = 4 * nd(rng);
  for (auto& v : g) v = nd(rng);
  for (auto& v : y01) v = std::fabs(std::tanh(nd(rng)));
  x[0] = 0.0f, x[1] = NAN, x[2] = INFINITY, x[3] = -INFINITY, x[4] = -0.0f, x[5] = 90.0f, x[6] = -90.0f;
  unary("relu", Relu{}, [](double v) { return v > 0 ? v : (std::isnan(v) ? v : 0.0); }, x);
  unary("leaky_relu", LeakyRelu{0.1f}, [](double v) { return v > 0 ? v : v * double(0.1f); }, x);
  unary("sigmoid", Sigmoid{}, [](double v) { return 1 / (1 + std::exp(-v)); }, x);
  unary("tanh", Tanh{}, [](double v) { return std::tanh(v); }, x);
  unary("sign", Sign{}, [](double v) { return v > 0 ? 1.0 : v < 0 ? -1.0 : v == 0 ? 0.0 : v; }, x);
  unary("heaviside", Heaviside{0.5f}, [](double v) { return v > 0 ? 1.0 : v < 0 ? 0.0 : v == 0 ? 0.5 : v; }, x);
  // PyTorch's threshold_backward mask: x <= 0 -> 0, so a NaN input (x[1]) passes the gradient on
  binary("relu_backward", ReluGrad{}, [](double gg, double v) { return v <= 0 ? 0.0 : gg; }, g, x);
  binary("leaky_relu_backward", LeakyReluGrad{0.1f}, [](double gg, double v) { return v > 0 ? gg : gg * double(0.1f); }, g, x);
  binary("sigmoid_backward", SigmoidGrad{}, [](double gg, double yy) { return gg * yy * (1 - yy); }, g, y01);
  binary("tanh_backward", TanhGrad{}, [](double gg, double yy) { return gg * (1 - yy * yy); }, g, y01);

  // Optimizers: one step against the same formulas in double (csrc/cpu/optim.cpp).
  const index_t n = 77;
  std::vector<float> p(n), gr(n), v(n), m(n), s(n);
  for (index_t i = 0; i < n; ++i) p[i] = nd(rng), gr[i] = nd(rng), v[i] = nd(rng), m[i] = nd(rng), s[i] = std::fabs(nd(rng));
  p[3] = 0.0f;
  for (int nesterov = 0; nesterov < 2; ++nesterov)
    for (float wd : {0.0f, 0.01f})
      for (float l1 : {0.0f, 0.001f}) {
        std::vector<float> p1 = p, v1 = v, p2 = p;
        emulate_launch(2, 32, [&] { sgd_momentum_kernel(p1.data(), gr.data(), v1.data(), n, 0.1f, 0.9f, wd, l1, nesterov != 0); });
        emulate_launch(2, 32, [&] { sgd_plain_kernel(p2.data(), gr.data(), n, 0.1f, wd, l1); });
        bool ok = true;
        for (index_t i = 0; i < n; ++i) {
          double gg = gr[i] + double(wd) * p[i] + double(l1) * ((p[i] > 0) - (p[i] < 0));
          const double vv = 0.9 * v[i] + gg;
          ok = ok && close(v1[i], vv, 1e-6) && close(p1[i], p[i] - 0.1 * (nesterov ? gg + 0.9 * vv : vv), 1e-6);
          ok = ok && close(p2[i], p[i] - 0.1 * gg, 1e-6);
        }
        expect(ok, "sgd_update");
      }
  {
    std::vector<float> p1 = p, m1 = m, s1 = s;
    const double b1 = 0.9, b2 = 0.999, step_size = 0.01 / (1 - std::pow(b1, 3)), isb = 1 / std::sqrt(1 - std::pow(b2, 3));
    emulate_launch(3, 32, [&] {
      adam_kernel(p1.data(), gr.data(), m1.data(), s1.data(), n, float(step_size), float(isb), 0.9f, 0.999f, 1 - 0.9f,
                  1 - 0.999f, 1e-8f, 0.01f);
    });
    bool ok = true;
    for (index_t i = 0; i < n; ++i) {
      const double gg = gr[i] + 0.01 * p[i], mm = b1 * m[i] + (1 - b1) * gg, vv = b2 * s[i] + (1 - b2) * gg * gg;
      ok = ok && close(m1[i], mm, 1e-5) && close(s1[i], vv, 1e-5) &&
           close(p1[i], p[i] - step_size * mm / (std::sqrt(vv) * isb + 1e-8), 1e-5);
    }
    expect(ok, "adam_update");
  }
  std::printf("%d cases, %d failures\n", cases, failures);
  return failures != 0;
}
