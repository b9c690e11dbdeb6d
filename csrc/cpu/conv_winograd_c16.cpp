// The channels-in-lanes Winograd convolution (conv_winograd_c16.h): where it applies, its sizes,
// the per-call drivers and the dispatch to its AVX-512 or AVX2 kernels (filter transforms, forward,
// backward-data, backward-weight).
#include "cpu/conv_winograd_c16.h"

#include <algorithm>
#include <cstdlib>

#include <omp.h>

#include "cpu/align.h"
#include "cpu/cpu_features.h"
#include "cpu/parallel.h"

namespace fastlayers::cpu {

#if defined(__x86_64__) || defined(_M_X64)
// The same kernels for 16 lanes (AVX-512) and 8 (AVX2 + FMA): conv_winograd_c16_kernels.h.
#define FL_WINO16_DECLARE(isa)                                                                                     \
  void winograd_c16_forward_image_##isa(const Conv2dShape& s, const WinoC16Geom& g, const float* x, const float* U, \
                                        const float* w, const float* bias, const float* res, bool relu, float* y,  \
                                        float* ws, int t, int team, ImageIo io);                                   \
  void winograd_c16_prepare_##isa(const Conv2dShape& s, int alpha, const float* w, float* U);                     \
  void winograd_c16_prepare_transposed_##isa(const Conv2dShape& s, int alpha, const float* w, float* Ut);          \
  void winograd_c16_backward_data_image_##isa(const Conv2dShape& s, const WinoC16Geom& g, const float* grad_out,   \
                                              const float* Ut, float* grad_x, float* ws);                          \
  void winograd_c16_weight_grad_transform_##isa(const Conv2dShape& s, int alpha, const float* Mw, float* grad_w,   \
                                                index_t k0, index_t k1);                                           \
  void winograd_c16_backward_weight_images_##isa(const Conv2dShape& s, const WinoC16Geom& g, const float* x,       \
                                                 const float* grad_out, index_t n0, index_t n1, float* Mw, float* ws);
FL_WINO16_DECLARE(avx512)
FL_WINO16_DECLARE(avx2)
#undef FL_WINO16_DECLARE
#endif

namespace {


// The patch side for s's filters: 6 for 3x3 (F(4x4, 3x3)); for 5x5 8, F(4x4, 5x5), which replaced
// F(2x2, 5x5) (6x6 patches): 64 products per 16 outputs against 36 per 4. F(2x2, 5x5) / F(4x4, 5x5), paired
// medians of 11, AVX-512 (Zen 4), 1 thread: the course CNN's conv2 (batch 100) forward 2.86 / 1.46
// ms, backward-data 3.05 / 1.58, backward-weight 3.74 / 2.68; 16 -> 32 on 28x28 "same", batch 64,
// 1.98x / 1.80x / 1.74x; 64 -> 64 on 14x14, batch 8, 1.51x / 1.50x / 0.95x. The CNN's training
// step 1.33x (1 thread) and 1.27x (2), its inference plan at batch 64 and 100 1.37-1.40x. Rounding
// error against float64, max |error| / max |y|: forward 5.2e-6 (F(2x2, 5x5) 3.9e-6), the tests'
// tolerance for these layers 2.7e-5.
int alpha_for(const Conv2dShape& s) { return s.R == 3 ? 6 : 8; }

}  // namespace

bool winograd_c16_possible(const Conv2dShape& s) {
#if defined(__x86_64__) || defined(_M_X64)
  if (active_isa() != Isa::avx512 && active_isa() != Isa::avx2) return false;
  const bool taps = (s.R == 3 && s.S == 3) || (s.R == 5 && s.S == 5);
  return taps && s.groups == 1 && s.stride_h == 1 && s.stride_w == 1 && s.dil_h == 1 && s.dil_w == 1 &&
         s.C % 16 == 0 && s.K % 16 == 0 && s.C > 0 && s.K > 0 && s.P > 0 && s.Q > 0;
#else
  (void)s;
  return false;
#endif
}

WinoC16Geom winograd_c16_geom(const Conv2dShape& s, bool blocks_across_images) {
  WinoC16Geom g;
  g.r = static_cast<int>(s.R);
  g.alpha = alpha_for(s);
  g.m = g.alpha - g.r + 1;
  const index_t AA = g.alpha * g.alpha;
  g.tiles_h = (s.P + g.m - 1) / g.m;
  g.tiles_w = (s.Q + g.m - 1) / g.m;
  g.tiles = g.tiles_h * g.tiles_w;
  g.Pp = g.tiles_h * g.m;
  g.Qp = g.tiles_w * g.m;
  g.Hp = g.Pp + g.r - 1;
  g.Wp = g.Qp + g.r - 1;
  // Tiles per block: V and M of a block within ~384 KiB (L2), and at most the image's tiles.
  const index_t cap = std::max<index_t>(6, 98304 / (AA * (s.C + s.K)));
  g.TB = blocks_across_images ? cap : std::min(g.tiles, cap);
  // The transforms read or write one vector at each of the 36 positions: position strides that
  // are multiples of 1 KiB put those lines in a few L1 sets (8 ways each), and they evicted one
  // another (the CNN's conv2, 16 tiles x 64 channels = 4 KiB: all 36 in one set). A 64-byte pad
  // spreads them.
  auto position_stride = [](index_t floats) {
    const index_t r = round16(floats);
    return r % 256 == 0 ? r + 16 : r;
  };
  g.v_stride = position_stride(g.TB * s.C);
  g.m_stride = position_stride(g.TB * s.K);
  g.xin_off = 0;
  g.yout_off = round16(g.Hp * g.Wp * s.C);
  g.v_off = g.yout_off + round16(g.Pp * g.Qp * s.K);
  g.m_off = g.v_off + AA * g.v_stride;
  g.flag_off = g.m_off + AA * g.m_stride;
  g.pool_off = g.flag_off + 16;
  g.slice = g.pool_off + round16((g.Pp / 2) * (g.Qp / 2) * s.K);
  return g;
}

index_t winograd_c16_filter_floats(const Conv2dShape& s) {
  const index_t a = alpha_for(s);
  return a * a * s.C * s.K;
}

index_t winograd_c16_slice_floats(const Conv2dShape& s) { return winograd_c16_geom(s).slice; }

void winograd_c16_prepare(const Conv2dShape& s, const float* w, float* U) {
#if defined(__x86_64__) || defined(_M_X64)
  if (active_isa() == Isa::avx512)
    winograd_c16_prepare_avx512(s, alpha_for(s), w, U);
  else
    winograd_c16_prepare_avx2(s, alpha_for(s), w, U);
#else
  (void)s, (void)w, (void)U;
  std::abort();  // winograd_c16_possible is false here
#endif
}

void winograd_c16_forward_image(const Conv2dShape& s, const float* x, const float* U, const float* w,
                                const float* bias, const float* res, bool relu, float* y, float* ws, int t, int team,
                                ImageIo io) {
#if defined(__x86_64__) || defined(_M_X64)
  if (active_isa() == Isa::avx512)
    winograd_c16_forward_image_avx512(s, winograd_c16_geom(s), x, U, w, bias, res, relu, y, ws, t, team, io);
  else
    winograd_c16_forward_image_avx2(s, winograd_c16_geom(s), x, U, w, bias, res, relu, y, ws, t, team, io);
#else
  (void)s, (void)x, (void)U, (void)w, (void)bias, (void)res, (void)relu, (void)y, (void)ws, (void)t, (void)team,
      (void)io;
  std::abort();  // winograd_c16_possible is false here
#endif
}

index_t winograd_c16_call_floats(const Conv2dShape& s, int threads) {
  return round16(winograd_c16_filter_floats(s)) + std::max(threads, 1) * winograd_c16_slice_floats(s);
}

bool winograd_c16_forward_call(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y,
                               float* workspace, index_t workspace_floats) {
  const int T =
      threads_that_fit(kernel_threads(), workspace_floats, [&](int t) { return winograd_c16_call_floats(s, t); });
  if (T == 0) return false;
  float* U = workspace;
  float* slices = workspace + round16(winograd_c16_filter_floats(s));
  const index_t slice = winograd_c16_slice_floats(s), in_img = s.C * s.H * s.W, out_img = s.K * s.P * s.Q;
  winograd_c16_prepare(s, w, U);
  for_each_image(s.N, T, slices, slice, [&](index_t n, float* ws, int t, int team) {
    winograd_c16_forward_image(s, x + n * in_img, U, w, bias, nullptr, false, y + n * out_img, ws, t, team);
  });
  return true;
}

// The forward's room: the (transposed) filters and one image's slice per thread.
index_t winograd_c16_backward_data_floats(const Conv2dShape& s, int threads) {
  return winograd_c16_call_floats(s, threads);
}

bool winograd_c16_backward_data_call(const Conv2dShape& s, const float* grad_out, const float* w, float* grad_x,
                                     float* workspace, index_t workspace_floats) {
#if defined(__x86_64__) || defined(_M_X64)
  // Whole images per thread: an image's patches overlap, so its tiles are not split over a team.
  const int T = threads_that_fit(kernel_threads(s.N), workspace_floats,
                                 [&](int t) { return winograd_c16_backward_data_floats(s, t); });
  if (T == 0) return false;
  const WinoC16Geom g = winograd_c16_geom(s);
  float* Ut = workspace;
  float* slices = workspace + round16(winograd_c16_filter_floats(s));
  const index_t in_img = s.C * s.H * s.W, out_img = s.K * s.P * s.Q;
  const bool avx512 = active_isa() == Isa::avx512;
  if (avx512)
    winograd_c16_prepare_transposed_avx512(s, g.alpha, w, Ut);
  else
    winograd_c16_prepare_transposed_avx2(s, g.alpha, w, Ut);
  auto body = [&](int t, int nt) {
    float* ws = slices + t * g.slice;
    for (index_t n = s.N * t / nt; n < s.N * (t + 1) / nt; ++n) {
      if (avx512)
        winograd_c16_backward_data_image_avx512(s, g, grad_out + n * out_img, Ut, grad_x + n * in_img, ws);
      else
        winograd_c16_backward_data_image_avx2(s, g, grad_out + n * out_img, Ut, grad_x + n * in_img, ws);
    }
  };
  run_on_team(T, body);
  return true;
#else
  (void)s, (void)grad_out, (void)w, (void)grad_x, (void)workspace, (void)workspace_floats;
  return false;
#endif
}

index_t winograd_c16_backward_weight_floats(const Conv2dShape& s, int threads) {
  return std::max(threads, 1) * (round16(winograd_c16_filter_floats(s)) + winograd_c16_geom(s, true).slice);
}

bool winograd_c16_backward_weight_call(const Conv2dShape& s, const float* grad_out, const float* x, float* grad_w,
                                       float* workspace, index_t workspace_floats) {
#if defined(__x86_64__) || defined(_M_X64)
  const int T = threads_that_fit(kernel_threads(s.N), workspace_floats,
                                 [&](int t) { return winograd_c16_backward_weight_floats(s, t); });
  if (T == 0) return false;
  const WinoC16Geom g = winograd_c16_geom(s, true);
  const index_t mw = round16(winograd_c16_filter_floats(s)), per_thread = mw + g.slice;
  auto body = [&](int t, int nt) {
    float* Mw = workspace + t * per_thread;
    std::fill(Mw, Mw + winograd_c16_filter_floats(s), 0.0f);
    const index_t n0 = s.N * t / nt, n1 = s.N * (t + 1) / nt;
    if (active_isa() == Isa::avx512)
      winograd_c16_backward_weight_images_avx512(s, g, x, grad_out, n0, n1, Mw, Mw + mw);
    else
      winograd_c16_backward_weight_images_avx2(s, g, x, grad_out, n0, n1, Mw, Mw + mw);
  };
  run_on_team(T, body);
  // dL/dU of all threads into the first one's, in thread order; then grad_w = G^T (dL/dU) G.
  float* Mw = workspace;
  const index_t n_u = winograd_c16_filter_floats(s);
  for (int t = 1; t < T; ++t) {
    const float* other = workspace + t * per_thread;
    for (index_t i = 0; i < n_u; ++i) Mw[i] += other[i];
  }
  parallel_ranges(s.K, 1, [&](index_t k0, index_t k1) {
    if (active_isa() == Isa::avx512)
      winograd_c16_weight_grad_transform_avx512(s, g.alpha, Mw, grad_w, k0, k1);
    else
      winograd_c16_weight_grad_transform_avx2(s, g.alpha, Mw, grad_w, k0, k1);
  });
  return true;
#else
  (void)s, (void)grad_out, (void)x, (void)grad_w, (void)workspace, (void)workspace_floats;
  return false;
#endif
}

}  // namespace fastlayers::cpu
