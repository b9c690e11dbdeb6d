// The pixels-in-lanes direct convolution (conv_pixels.h): where it applies and the dispatch to its
// AVX-512 or AVX2 kernels.
#include "cpu/conv_pixels.h"

#include <cstdlib>

#include <omp.h>

#include <algorithm>

#include "cpu/align.h"
#include "cpu/cpu_features.h"
#include "cpu/parallel.h"

namespace fastlayers::cpu {

#if defined(__x86_64__) || defined(_M_X64)
// The same kernels for 16 lanes (AVX-512) and 8 (AVX2 + FMA): conv_pixels_kernels.h.
#define FL_PIXCONV_DECLARE(isa)                                                                               \
  void pixconv_forward_image_##isa(const Conv2dShape& s, const float* x, const float* w, const float* bias,    \
                                   const float* res, bool relu, float* y, float* ws, int t, int team);        \
  void pixconv_backward_weight_images_##isa(const Conv2dShape& s, const float* x, const float* grad_out,      \
                                            index_t n0, index_t n1, float* acc, float* ws);
FL_PIXCONV_DECLARE(avx512)
FL_PIXCONV_DECLARE(avx2)
#undef FL_PIXCONV_DECLARE
#endif

namespace {
index_t acc_floats(const Conv2dShape& s) { return s.K * s.C * s.R * s.S * 16; }
// Floats of the padded copy (0 when x is read in place).
index_t padded_floats(const Conv2dShape& s, bool slack) {
  const PixconvPadded g = pixconv_padded(s, slack);
  return g.copy ? s.C * g.plane : 0;
}
index_t bw_padded_floats(const Conv2dShape& s) { return padded_floats(s, true); }
}  // namespace

bool pixconv_possible(const Conv2dShape& s) {
#if defined(__x86_64__) || defined(_M_X64)
  if (active_isa() != Isa::avx512 && active_isa() != Isa::avx2) return false;
  const bool stride = s.stride_h == s.stride_w && (s.stride_h == 1 || s.stride_h == 2);
  const index_t taps = s.C * s.R * s.S;
  return stride && s.groups == 1 && s.dil_h == 1 && s.dil_w == 1 && s.K > 0 && s.P > 0 && s.Q > 0 &&
         (taps <= kPixconvMaxTaps || pixconv_blocked_rows(s));
#else
  (void)s;
  return false;
#endif
}

// rows (all the taps' input vectors once per segment, then every channel) reads the least, as long
// as those vectors stay in registers: up to ~11 taps on AVX2's 16 (beside four sums and a
// broadcast), all 25 on AVX-512's 32. Past that, on AVX2, they spill and rows_blocked wins: 1
// thread, one image at a time over 64 images, best of 50 x 200 calls, rows / rows_blocked: LeNet-5's
// conv1 (1 -> 6 5x5 p2 on 28x28) 10.7 / 4.9 us, the CNN's conv1 (1 -> 32 5x5 on 28x28) 18.5 / 15.2
// us (61 GF/s), 16 -> 16 1x1 on 14x14 3.0 / 2.45 us; with 9 taps about even (1 -> 16 3x3 p1 on
// 28x28 6.57 / 6.79 us, 1 -> 32 12.6 / 13.2, 1 -> 8 3.98 / 3.81). At stride 2 rows (rows_blocked
// would redo the even-lane shuffles for every channel block), but for 1x1 layers: their even pixels
// are copied once (PixconvPadded::subsampled), then read as a stride-1 image, up to 64 channels.
// The small ResNet's projections in the plan, batch 64, 1 thread, median of 30 interleaved, GEMM /
// this: 16 -> 32 0.86 / 0.66 ms, 32 -> 64 0.43 / 0.41 ms. AVX-512 keeps rows everywhere (measured
// there in session 25; rows_blocked is not compiled for it).
bool pixconv_blocked_rows(const Conv2dShape& s) {
#if defined(__x86_64__) || defined(_M_X64)
  const index_t taps = s.C * s.R * s.S;
  const bool one_by_one_s2 = s.R == 1 && s.S == 1 && s.stride_h == 2 && s.stride_w == 2 && s.pad_h == 0 && s.pad_w == 0;
  const bool stride1 = s.stride_h == 1 && s.stride_w == 1;
  return active_isa() == Isa::avx2 && s.groups == 1 && s.dil_h == 1 && s.dil_w == 1 && taps > 11 &&
         ((stride1 && taps <= kPixconvMaxTaps) || (one_by_one_s2 && taps <= kPixconvMaxBlockedTaps));
#else
  (void)s;
  return false;
#endif
}

PixconvPadded pixconv_padded(const Conv2dShape& s, bool slack) {
  PixconvPadded g;
  if (!slack && s.stride_h == 2 && pixconv_blocked_rows(s)) {  // 1x1 stride 2: the even pixels
    g.copy = g.subsampled = true;
    g.Hp = s.P;
    g.Wp = s.Q;
    g.plane = s.P * s.Q;
    return g;
  }
  g.copy = slack || s.pad_h != 0 || s.pad_w != 0;
  g.Hp = s.H + 2 * s.pad_h;
  g.Wp = g.copy ? (s.W + 2 * s.pad_w + (slack ? 32 : 0) + 15) / 16 * 16 : s.W;
  g.plane = g.Hp * g.Wp;
  return g;
}

index_t pixconv_slice_floats(const Conv2dShape& s) { return padded_floats(s, false); }

void pixconv_forward_image(const Conv2dShape& s, const float* x, const float* w, const float* bias, const float* res,
                           bool relu, float* y, float* ws, int t, int team) {
#if defined(__x86_64__) || defined(_M_X64)
  if (active_isa() == Isa::avx512)
    pixconv_forward_image_avx512(s, x, w, bias, res, relu, y, ws, t, team);
  else
    pixconv_forward_image_avx2(s, x, w, bias, res, relu, y, ws, t, team);
#else
  (void)s, (void)x, (void)w, (void)bias, (void)res, (void)relu, (void)y, (void)ws, (void)t, (void)team;
  std::abort();  // pixconv_possible is false here
#endif
}

index_t pixconv_call_floats(const Conv2dShape& s, ConvPass pass, int threads) {
  const index_t T = std::max(threads, 1);
  if (pass == ConvPass::backward_weight) return T * (round16(acc_floats(s)) + bw_padded_floats(s));
  return T * pixconv_slice_floats(s);
}

bool pixconv_forward_call(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y,
                          float* workspace, index_t workspace_floats) {
  const int T = threads_that_fit(kernel_threads(), workspace_floats,
                                 [&](int t) { return pixconv_call_floats(s, ConvPass::forward, t); });
  if (T == 0) return false;
  const index_t slice = pixconv_slice_floats(s), in_img = s.C * s.H * s.W, out_img = s.K * s.P * s.Q;
  for_each_image(s.N, T, workspace, slice, [&](index_t n, float* ws, int t, int team) {
    pixconv_forward_image(s, x + n * in_img, w, bias, nullptr, false, y + n * out_img, ws, t, team);
  });
  return true;
}

bool pixconv_backward_weight_call(const Conv2dShape& s, const float* grad_out, const float* x, float* grad_w,
                                  float* workspace, index_t workspace_floats) {
#if defined(__x86_64__) || defined(_M_X64)
  const int T = threads_that_fit(kernel_threads(s.N), workspace_floats,
                                 [&](int t) { return pixconv_call_floats(s, ConvPass::backward_weight, t); });
  if (T == 0) return false;
  const index_t per_thread = round16(acc_floats(s)) + bw_padded_floats(s), n_acc = acc_floats(s);
  auto body = [&](int t, int nt) {
    float* acc = workspace + t * per_thread;
    std::fill(acc, acc + n_acc, 0.0f);
    const index_t n0 = s.N * t / nt, n1 = s.N * (t + 1) / nt;
    if (active_isa() == Isa::avx512)
      pixconv_backward_weight_images_avx512(s, x, grad_out, n0, n1, acc, acc + round16(n_acc));
    else
      pixconv_backward_weight_images_avx2(s, x, grad_out, n0, n1, acc, acc + round16(n_acc));
  };
  run_on_team(T, body);
  // grad_w[k][tap] = the lanes of every thread's acc[k][tap], thread after thread (an 8-lane ISA
  // leaves the last 8 of each 16 at their zeros).
  const index_t cells = s.K * s.C * s.R * s.S;
  for (index_t i = 0; i < cells; ++i) {
    double v = 0;
    for (int t = 0; t < T; ++t) {
      const float* a = workspace + t * per_thread + i * 16;
      for (int l = 0; l < 16; ++l) v += a[l];
    }
    grad_w[i] = static_cast<float>(v);
  }
  return true;
#else
  (void)s, (void)grad_out, (void)x, (void)grad_w, (void)workspace, (void)workspace_floats;
  return false;
#endif
}

}  // namespace fastlayers::cpu
