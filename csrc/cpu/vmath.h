// Vectorisable float math for the elementwise kernels: exp, log1p on [0, 1], sigmoid, tanh.
//
// Plain scalar inline functions with no calls, no table look-ups and only selects as branches, so
// GCC vectorises a loop that calls them at -O3 (this needs -fno-trapping-math, set in
// CMakeLists.txt; no -ffast-math: NaN and inf go through the selects explicitly). The same source
// compiles to SSE2 in the baseline objects and to AVX2 / AVX-512 in the *_avx2 / *_avx512 objects.
//
// Accuracy (float32, against float64 math; measured by tests/ops/test_vmath_accuracy.py):
//   fast_exp     <= 2 ulp, exact 0 below -103.97 (and for -inf), +inf above 88.72, NaN -> NaN,
//                   correctly scaled into the denormal range (one rounding there).
//   fast_log1p01 <= 2 ulp for u in [0, 1] (the only range the losses need).
//   fast_sigmoid <= 3 ulp (relative, also deep in the negative tail where it is ~exp(x)).
//   fast_tanh    <= 3 ulp; odd-symmetric; exactly +-1 for |x| >= 9.02 and x itself for tiny x.
#pragma once

#include <cstdint>
#include <cstring>

// The loops vectorise only if these inline into them; with -flto GCC's unit-wide inlining budget
// can leave one out of line (a scalar call per element: measured 14 ns/element instead of 0.7 in a
// binary cross-entropy loop), so inlining is forced.
#define FL_VMATH_INLINE static inline __attribute__((always_inline))

namespace fastlayers::cpu::vmath {

FL_VMATH_INLINE float bits_to_float(std::int32_t i) {
  float f;
  std::memcpy(&f, &i, sizeof f);
  return f;
}

FL_VMATH_INLINE std::int32_t float_to_bits(float f) {
  std::int32_t i;
  std::memcpy(&i, &f, sizeof i);
  return i;
}

// exp(x) = 2^k * exp(r), k = round(x / ln 2), |r| <= ln2 / 2. exp(r) is Cephes' expf polynomial
// (1 + r + r^2 * p(r)); ln 2 is split in two so r = x - k ln2 is exact to float precision.
// 2^k is applied as two factors 2^(k/2) * 2^(k - k/2), each a normal float, so results down to the
// smallest denormal get a single rounding and k = 128 (x just below the overflow bound) works.
FL_VMATH_INLINE float fast_exp(float x) {
  // Clamp to where the result is already 0 or inf; NaN fails both tests and is kept.
  float xc = x > 89.0f ? 89.0f : x;
  xc = xc < -104.0f ? -104.0f : xc;
  xc = xc == xc ? xc : 0.0f;  // keep NaN out of the integer conversion below
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer (nearest-even)
  const float kf = (xc * kLog2e + kRound) - kRound;
  const float r = (xc - kf * 0.693359375f) - kf * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float er = (p * (r * r) + r) + 1.0f;
  const std::int32_t k = static_cast<std::int32_t>(kf);  // exact: kf is an integer in [-150, 129]
  const std::int32_t k1 = k >> 1, k2 = k - k1;             // both in [-75, 65]: normal powers of 2
  const float y = (er * bits_to_float((k1 + 127) << 23)) * bits_to_float((k2 + 127) << 23);
  return x == x ? y : x;
}

// log(1 + u) for u in [0, 1] (NaN -> NaN): 2 atanh(s) with s = u / (2 + u) in [0, 1/3], a series
// with no cancellation, so small u keep full relative accuracy. Terms up to s^15: the truncation
// error is below 1e-9 relative.
FL_VMATH_INLINE float fast_log1p01(float u) {
  const float s = u / (2.0f + u);
  const float s2 = s * s;
  float p = 1.0f / 15.0f;
  p = p * s2 + 1.0f / 13.0f;
  p = p * s2 + 1.0f / 11.0f;
  p = p * s2 + 1.0f / 9.0f;
  p = p * s2 + 1.0f / 7.0f;
  p = p * s2 + 1.0f / 5.0f;
  p = p * s2 + 1.0f / 3.0f;
  const float t = s + s;
  return t + t * (s2 * p);
}

// 1 / (1 + exp(-x)) via e = exp(-|x|) <= 1: no overflow, and for x < 0 the result e / (1 + e)
// keeps relative accuracy deep in the tail. NaN -> NaN.
FL_VMATH_INLINE float fast_sigmoid(float x) {
  const float ax = x < 0.0f ? -x : x;
  const float e = fast_exp(-ax);
  const float r = 1.0f / (1.0f + e);
  const float y = x < 0.0f ? e * r : r;
  return x == x ? y : x;
}

// tanh(x): for |x| < 0.625 Cephes' odd polynomial (x + x^3 q(x^2), relative error ~1 ulp, x itself
// for tiny x); above, 1 - 2 / (exp(2|x|) + 1), which has no cancellation there (tanh >= 0.55) and
// saturates to exactly 1 (exp overflows to inf for |x| > 44: 2 / inf = 0). Sign copied from x last.
FL_VMATH_INLINE float fast_tanh(float x) {
  const float ax = x < 0.0f ? -x : x;
  const float z = x * x;
  float q = -5.70498872745e-3f;
  q = q * z + 2.06390887954e-2f;
  q = q * z - 5.37397155531e-2f;
  q = q * z + 1.33314422036e-1f;
  q = q * z - 3.33332819422e-1f;
  const float small = ax + ax * (z * q);
  const float big = 1.0f - 2.0f / (fast_exp(ax + ax) + 1.0f);
  const float t = ax < 0.625f ? small : big;
  // copy the sign bit of x: exactly odd, and tanh(-0) = -0
  const float y = bits_to_float(float_to_bits(t) | (float_to_bits(x) & INT32_MIN));
  return x == x ? y : x;
}

// log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)) in float (NaN -> NaN via the comparisons).
FL_VMATH_INLINE float fast_softplus(float x) {
  const float ax = x < 0.0f ? -x : x;
  const float m = x > 0.0f ? x : 0.0f;
  const float y = m + fast_log1p01(fast_exp(-ax));
  return x == x ? y : x;
}

}  // namespace fastlayers::cpu::vmath

// ---- loops over contiguous chunks, compiled once per ISA (vmath.cpp, vmath_avx2.cpp,
// vmath_avx512.cpp from vmath_loops.h); callers split the work across threads and take the table
// for active_isa() once per call. No OpenMP inside: each call runs on the calling thread.
#include "common/types.h"

namespace fastlayers::cpu {

struct VmathKernels {
  // max of x[0..n), n >= 1; NaN is skipped (callers let it poison a following sum instead).
  float (*max)(const float* x, index_t n);
  // y[i] *= a
  void (*scale)(float* y, index_t n, float a);
  void (*sigmoid)(const float* x, float* y, index_t n);
  void (*tanh)(const float* x, float* y, index_t n);
  // y[i] = exp(x[i] - m) (y may alias x); returns the float sum of the y[i].
  float (*exp_shift_store_sum)(const float* x, float* y, index_t n, float m);
  // sum of exp(x[i] - m), nothing stored.
  float (*exp_shift_sum)(const float* x, index_t n, float m);
  // gx[i] = g[i] - exp(y[i]) * s   (log_softmax backward)
  void (*sub_exp_mul)(const float* g, const float* y, float* gx, index_t n, float s);
  // sum over i of softplus(z) - z*t (binary cross-entropy with logits), accumulated in double.
  double (*bce_sum)(const float* z, const float* t, index_t n);
  // g[i] = a * (sigmoid(z[i]) - t[i])
  void (*bce_grad)(const float* z, const float* t, float* g, index_t n, float a);
  // sum over i of softplus(-y*s), accumulated in double.
  double (*logistic_sum)(const float* s, const float* y, index_t n);
  // g[i] = -a * y[i] * sigmoid(-y[i] * s[i])
  void (*logistic_grad)(const float* s, const float* y, float* g, index_t n, float a);
  // Binary cross-entropy with weight w and/or pos_weight pw (each may be null; see
  // common/loss_terms.h): the double sum of the terms, the terms, and a * g[i] * the derivative
  // (g may be null: 1).
  double (*bce_w_sum)(const float* z, const float* t, const float* w, const float* pw, index_t n);
  void (*bce_w_terms)(const float* z, const float* t, const float* w, const float* pw, float* out, index_t n);
  void (*bce_w_grad)(const float* z, const float* t, const float* w, const float* pw, const float* g,
                     float* out, index_t n, float a);
  // out[i] = softplus(-y[i] s[i]); out[i] = -a g[i] y[i] sigmoid(-y[i] s[i])
  void (*logistic_terms)(const float* s, const float* y, float* out, index_t n);
  void (*logistic_grad_g)(const float* s, const float* y, const float* g, float* out, index_t n, float a);
  // Softmax over classes at stride d for w <= 64 neighbouring positions (per-pixel cross-entropy):
  // mx[i] = max_j z[j*d+i], sum[i] = sum_j exp(z[j*d+i] - mx[i]); and its gradient form
  // g[j*d+i] = coef[i] exp(z[j*d+i] - mx[i]) - smooth[i] weight[j] (weight may be null: 1).
  void (*lanes_max_expsum)(const float* z, index_t c, index_t d, index_t w, float* mx, float* sum);
  void (*lanes_exp_grad)(const float* z, float* g, index_t c, index_t d, index_t w, const float* mx,
                         const float* coef, const float* smooth, const float* weight);
  // Dropout over whole Philox blocks b0 .. b0+nb-1 (elements 4*b0 .. 4*(b0+nb)-1):
  // y[i] = x[i] * (keep(i) ? on : 0); with x == nullptr, y[i] = keep(i) ? on : 0 (the mask).
  void (*dropout_blocks)(const float* x, float* y, index_t b0, index_t nb, std::uint64_t seed,
                         std::uint32_t threshold, float on);
};

const VmathKernels& vmath_kernels();  // for active_isa()
const VmathKernels& vmath_kernels_generic();
const VmathKernels& vmath_kernels_avx2();
const VmathKernels& vmath_kernels_avx512();

}  // namespace fastlayers::cpu
