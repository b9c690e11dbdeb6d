// The loops behind VmathKernels (vmath.h). Included only by vmath.cpp, vmath_avx2.cpp and
// vmath_avx512.cpp, each compiled with its own ISA flags. Everything here has internal linkage
// and calls nothing from the standard library, so no out-of-line copy built for a wider ISA can
// be shared with (and run by) a narrower one.
#pragma once

#include "common/philox.h"
#include "cpu/vmath.h"

namespace fastlayers::cpu {
namespace {

using namespace vmath;

void sigmoid_loop(const float* x, float* y, index_t n) {
#pragma omp simd
  for (index_t i = 0; i < n; ++i) y[i] = fast_sigmoid(x[i]);
}

void tanh_loop(const float* x, float* y, index_t n) {
#pragma omp simd
  for (index_t i = 0; i < n; ++i) y[i] = fast_tanh(x[i]);
}

float max_loop(const float* x, index_t n) {
  float m = x[0];
#pragma omp simd reduction(max : m)
  for (index_t i = 1; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

void scale_loop(float* y, index_t n, float a) {
#pragma omp simd
  for (index_t i = 0; i < n; ++i) y[i] *= a;
}

float exp_shift_store_sum_loop(const float* x, float* y, index_t n, float m) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (index_t i = 0; i < n; ++i) {
    const float e = fast_exp(x[i] - m);
    y[i] = e;
    s += e;
  }
  return s;
}

float exp_shift_sum_loop(const float* x, index_t n, float m) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (index_t i = 0; i < n; ++i) s += fast_exp(x[i] - m);
  return s;
}

void sub_exp_mul_loop(const float* g, const float* y, float* gx,
                      index_t n, float s) {
#pragma omp simd
  for (index_t i = 0; i < n; ++i) gx[i] = g[i] - fast_exp(y[i]) * s;
}

// softplus(z) - z*t = max(z, 0) - z*t + log1p(exp(-|z|)): the first two in double (z*t is exact
// there), so the cancellation between them for large z loses nothing; only the log1p term, at
// most log 2, carries float rounding.
double bce_sum_loop(const float* z, const float* t, index_t n) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (index_t i = 0; i < n; ++i) {
    const float zi = z[i];
    const float az = zi < 0.0f ? -zi : zi;
    const float l = fast_log1p01(fast_exp(-az));
    const double lin = static_cast<double>(zi > 0.0f ? zi : 0.0f) - static_cast<double>(zi) * t[i];
    s += lin + static_cast<double>(l);
  }
  return s;
}

void bce_grad_loop(const float* z, const float* t, float* g, index_t n,
                   float a) {
#pragma omp simd
  for (index_t i = 0; i < n; ++i) g[i] = a * (fast_sigmoid(z[i]) - t[i]);
}

double logistic_sum_loop(const float* sc, const float* y, index_t n) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (index_t i = 0; i < n; ++i) {
    const float u = -y[i] * sc[i];
    const float au = u < 0.0f ? -u : u;
    const float l = fast_log1p01(fast_exp(-au));
    // NaN u: max part 0 but l is NaN (exp and log1p pass NaN through).
    s += static_cast<double>(u > 0.0f ? u : 0.0f) + static_cast<double>(l);
  }
  return s;
}

void logistic_grad_loop(const float* sc, const float* y, float* g,
                        index_t n, float a) {
#pragma omp simd
  for (index_t i = 0; i < n; ++i) g[i] = -a * y[i] * fast_sigmoid(-y[i] * sc[i]);
}

// Binary cross-entropy with weight w and/or pos_weight pw (either may be null, the choice made
// once per call): (1 - t) z + lw softplus(-z), lw = 1 + (pw - 1) t, times w. The linear part
// (1 - t) z + lw max(-z, 0) in double (no loss to cancellation for large |z|), the log1p term in
// float, as bce_sum_loop.
template <bool kW, bool kPW>
double bce_w_sum_impl(const float* z, const float* t, const float* w, const float* pw, index_t n) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (index_t i = 0; i < n; ++i) {
    const float zi = z[i], ti = t[i];
    const float az = zi < 0.0f ? -zi : zi;
    const float l = fast_log1p01(fast_exp(-az));
    const double lw = kPW ? 1.0 + (static_cast<double>(pw[i]) - 1.0) * ti : 1.0;
    const double v = (1.0 - ti) * static_cast<double>(zi) + lw * (static_cast<double>(zi < 0.0f ? -zi : 0.0f) + l);
    s += kW ? v * w[i] : v;
  }
  return s;
}

template <bool kW, bool kPW>
void bce_w_terms_impl(const float* z, const float* t, const float* w, const float* pw, float* out, index_t n) {
#pragma omp simd
  for (index_t i = 0; i < n; ++i) {
    const float zi = z[i], ti = t[i];
    const float az = zi < 0.0f ? -zi : zi;
    const float l = fast_log1p01(fast_exp(-az));
    const double lw = kPW ? 1.0 + (static_cast<double>(pw[i]) - 1.0) * ti : 1.0;
    const double v = (1.0 - ti) * static_cast<double>(zi) + lw * (static_cast<double>(zi < 0.0f ? -zi : 0.0f) + l);
    out[i] = static_cast<float>(kW ? v * w[i] : v);
  }
}

// a * g[i] * ((1 - t) - lw sigmoid(-z)) (times w); g may be null (1). Without pw: sigmoid(z) - t.
template <bool kW, bool kPW, bool kG>
void bce_w_grad_impl(const float* z, const float* t, const float* w, const float* pw, const float* g,
                     float* out, index_t n, float a) {
#pragma omp simd
  for (index_t i = 0; i < n; ++i) {
    float d = kPW ? (1.0f - t[i]) - (1.0f + (pw[i] - 1.0f) * t[i]) * fast_sigmoid(-z[i]) : fast_sigmoid(z[i]) - t[i];
    if constexpr (kW) d *= w[i];
    if constexpr (kG) d *= g[i];
    out[i] = a * d;
  }
}

double bce_w_sum_loop(const float* z, const float* t, const float* w, const float* pw, index_t n) {
  if (w && pw) return bce_w_sum_impl<true, true>(z, t, w, pw, n);
  if (w) return bce_w_sum_impl<true, false>(z, t, w, pw, n);
  if (pw) return bce_w_sum_impl<false, true>(z, t, w, pw, n);
  return bce_w_sum_impl<false, false>(z, t, w, pw, n);
}

void bce_w_terms_loop(const float* z, const float* t, const float* w, const float* pw, float* out, index_t n) {
  if (w && pw) bce_w_terms_impl<true, true>(z, t, w, pw, out, n);
  else if (w) bce_w_terms_impl<true, false>(z, t, w, pw, out, n);
  else if (pw) bce_w_terms_impl<false, true>(z, t, w, pw, out, n);
  else bce_w_terms_impl<false, false>(z, t, w, pw, out, n);
}

template <bool kG>
void bce_w_grad_g(const float* z, const float* t, const float* w, const float* pw, const float* g,
                  float* out, index_t n, float a) {
  if (w && pw) bce_w_grad_impl<true, true, kG>(z, t, w, pw, g, out, n, a);
  else if (w) bce_w_grad_impl<true, false, kG>(z, t, w, pw, g, out, n, a);
  else if (pw) bce_w_grad_impl<false, true, kG>(z, t, w, pw, g, out, n, a);
  else bce_w_grad_impl<false, false, kG>(z, t, w, pw, g, out, n, a);
}

void bce_w_grad_loop(const float* z, const float* t, const float* w, const float* pw, const float* g,
                     float* out, index_t n, float a) {
  if (g) bce_w_grad_g<true>(z, t, w, pw, g, out, n, a);
  else bce_w_grad_g<false>(z, t, w, pw, g, out, n, a);
}

// out[i] = softplus(-y s) (the per-element logistic / soft-margin loss)
void logistic_terms_loop(const float* sc, const float* y, float* out, index_t n) {
#pragma omp simd
  for (index_t i = 0; i < n; ++i) {
    const float u = -y[i] * sc[i];
    const float au = u < 0.0f ? -u : u;
    out[i] = (u > 0.0f ? u : 0.0f) + fast_log1p01(fast_exp(-au));
  }
}

// out[i] = -a * g[i] * y sigmoid(-y s) (g per element)
void logistic_grad_g_loop(const float* sc, const float* y, const float* g, float* out, index_t n, float a) {
#pragma omp simd
  for (index_t i = 0; i < n; ++i) out[i] = -a * g[i] * y[i] * fast_sigmoid(-y[i] * sc[i]);
}

// Per-position softmax over classes at stride d (cross-entropy on (N, C, d1, ...) logits): w <= 64
// neighbouring positions walked together, every access a contiguous run of w floats.
// mx[i] = max_j z[j*d + i] (NaN skipped), sum[i] = sum_j exp(z[j*d + i] - mx[i]) (NaN poisons it).
void lanes_max_expsum_loop(const float* z, index_t c, index_t d, index_t w, float* mx, float* sum) {
  for (index_t i = 0; i < w; ++i) {
    mx[i] = -__builtin_inff();
    sum[i] = 0.0f;
  }
  for (index_t j = 0; j < c; ++j) {
    const float* r = z + j * d;
#pragma omp simd
    for (index_t i = 0; i < w; ++i) mx[i] = r[i] > mx[i] ? r[i] : mx[i];
  }
  for (index_t j = 0; j < c; ++j) {
    const float* r = z + j * d;
#pragma omp simd
    for (index_t i = 0; i < w; ++i) sum[i] += fast_exp(r[i] - mx[i]);
  }
}

// g[j*d + i] = coef[i] * exp(z[j*d + i] - mx[i]) - smooth[i] * weight[j] (weight null: 1)
void lanes_exp_grad_loop(const float* z, float* g, index_t c, index_t d, index_t w, const float* mx,
                         const float* coef, const float* smooth, const float* weight) {
  for (index_t j = 0; j < c; ++j) {
    const float* r = z + j * d;
    float* gr = g + j * d;
    const float wj = weight ? weight[j] : 1.0f;
#pragma omp simd
    for (index_t i = 0; i < w; ++i) gr[i] = coef[i] * fast_exp(r[i] - mx[i]) - smooth[i] * wj;
  }
}

// Philox is evaluated for many blocks side by side (the block loop vectorises: 32x32->64-bit
// multiplies on every lane). The philox.h helpers must inline here (they do: the simd loop would
// not vectorise otherwise), so no ISA-flagged out-of-line copy of them exists.
template <bool kHasX>
void dropout_blocks_impl(const float* x, float* y, index_t b0, index_t nb, std::uint64_t seed,
                         std::uint32_t threshold, float on) {
  const std::uint32_t k0 = static_cast<std::uint32_t>(seed), k1 = static_cast<std::uint32_t>(seed >> 32);
#pragma omp simd
  for (index_t j = 0; j < nb; ++j) {
    const std::uint64_t b = static_cast<std::uint64_t>(b0 + j);
    std::uint32_t c0 = static_cast<std::uint32_t>(b), c1 = static_cast<std::uint32_t>(b >> 32), c2 = 0, c3 = 0;
    philox::philox4x32_10(c0, c1, c2, c3, k0, k1);
    const index_t i = 4 * (b0 + j);
    const float f0 = philox::keep(c0, threshold) ? on : 0.0f, f1 = philox::keep(c1, threshold) ? on : 0.0f;
    const float f2 = philox::keep(c2, threshold) ? on : 0.0f, f3 = philox::keep(c3, threshold) ? on : 0.0f;
    if constexpr (kHasX) {  // x * 0 keeps NaN / inf -> NaN, as the scalar path did
      y[i] = x[i] * f0;
      y[i + 1] = x[i + 1] * f1;
      y[i + 2] = x[i + 2] * f2;
      y[i + 3] = x[i + 3] * f3;
    } else {
      y[i] = f0;
      y[i + 1] = f1;
      y[i + 2] = f2;
      y[i + 3] = f3;
    }
  }
}

void dropout_blocks_loop(const float* x, float* y, index_t b0, index_t nb, std::uint64_t seed,
                         std::uint32_t threshold, float on) {
  if (x != nullptr)
    dropout_blocks_impl<true>(x, y, b0, nb, seed, threshold, on);
  else
    dropout_blocks_impl<false>(x, y, b0, nb, seed, threshold, on);
}

VmathKernels make_vmath_kernels() {
  VmathKernels k;
  k.max = max_loop;
  k.scale = scale_loop;
  k.sigmoid = sigmoid_loop;
  k.tanh = tanh_loop;
  k.exp_shift_store_sum = exp_shift_store_sum_loop;
  k.exp_shift_sum = exp_shift_sum_loop;
  k.sub_exp_mul = sub_exp_mul_loop;
  k.bce_sum = bce_sum_loop;
  k.bce_grad = bce_grad_loop;
  k.logistic_sum = logistic_sum_loop;
  k.logistic_grad = logistic_grad_loop;
  k.bce_w_sum = bce_w_sum_loop;
  k.bce_w_terms = bce_w_terms_loop;
  k.bce_w_grad = bce_w_grad_loop;
  k.logistic_terms = logistic_terms_loop;
  k.logistic_grad_g = logistic_grad_g_loop;
  k.lanes_max_expsum = lanes_max_expsum_loop;
  k.lanes_exp_grad = lanes_exp_grad_loop;
  k.dropout_blocks = dropout_blocks_loop;
  return k;
}

}  // namespace
}  // namespace fastlayers::cpu
