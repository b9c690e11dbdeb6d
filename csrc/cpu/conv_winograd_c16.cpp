// The channels-in-lanes Winograd convolution (conv_winograd_c16.h): where it applies, its sizes,
// the filter transform (in double, once per plan) and the dispatch to its AVX-512 kernels.
#include "cpu/conv_winograd_c16.h"

#include <algorithm>
#include <cstdlib>

#include <omp.h>

#include "cpu/cpu_features.h"
#include "cpu/parallel.h"

namespace fastlayers::cpu {

#if defined(__x86_64__) || defined(_M_X64)
void winograd_c16_forward_image_avx512(const Conv2dShape& s, const WinoC16Geom& g, const float* x, const float* U,
                                       const float* w, const float* bias, const float* res, bool relu, float* y,
                                       float* ws, int t, int team);
void winograd_c16_prepare_avx512(const Conv2dShape& s, const float* w, float* U);
#endif

namespace {

constexpr int kA = 6;

index_t round16(index_t n) { return (n + 15) / 16 * 16; }

}  // namespace

bool winograd_c16_possible(const Conv2dShape& s) {
#if defined(__x86_64__) || defined(_M_X64)
  if (active_isa() != Isa::avx512) return false;
  const bool taps = (s.R == 3 && s.S == 3) || (s.R == 5 && s.S == 5);
  return taps && s.groups == 1 && s.stride_h == 1 && s.stride_w == 1 && s.dil_h == 1 && s.dil_w == 1 &&
         s.C % 16 == 0 && s.K % 16 == 0 && s.C > 0 && s.K > 0 && s.P > 0 && s.Q > 0;
#else
  (void)s;
  return false;
#endif
}

WinoC16Geom winograd_c16_geom(const Conv2dShape& s) {
  WinoC16Geom g;
  g.r = static_cast<int>(s.R);
  g.m = kA - g.r + 1;
  g.tiles_h = (s.P + g.m - 1) / g.m;
  g.tiles_w = (s.Q + g.m - 1) / g.m;
  g.tiles = g.tiles_h * g.tiles_w;
  g.Pp = g.tiles_h * g.m;
  g.Qp = g.tiles_w * g.m;
  g.Hp = g.Pp + g.r - 1;
  g.Wp = g.Qp + g.r - 1;
  // Tiles per block: V and M of a block within ~384 KiB (L2), and at most the image's tiles.
  const index_t cap = std::max<index_t>(6, 98304 / (kA * kA * (s.C + s.K)));
  g.TB = std::min(g.tiles, cap);
  g.xin_off = 0;
  g.yout_off = round16(g.Hp * g.Wp * s.C);
  g.v_off = g.yout_off + round16(g.Pp * g.Qp * s.K);
  g.m_off = g.v_off + round16(kA * kA * g.TB * s.C);
  g.flag_off = g.m_off + round16(kA * kA * g.TB * s.K);
  g.slice = g.flag_off + 16;
  return g;
}

index_t winograd_c16_filter_floats(const Conv2dShape& s) { return kA * kA * s.C * s.K; }

index_t winograd_c16_slice_floats(const Conv2dShape& s) { return winograd_c16_geom(s).slice; }

void winograd_c16_prepare(const Conv2dShape& s, const float* w, float* U) {
#if defined(__x86_64__) || defined(_M_X64)
  winograd_c16_prepare_avx512(s, w, U);
#else
  (void)s, (void)w, (void)U;
  std::abort();  // winograd_c16_possible is false here
#endif
}

void winograd_c16_forward_image(const Conv2dShape& s, const float* x, const float* U, const float* w,
                                const float* bias, const float* res, bool relu, float* y, float* ws, int t, int team) {
#if defined(__x86_64__) || defined(_M_X64)
  winograd_c16_forward_image_avx512(s, winograd_c16_geom(s), x, U, w, bias, res, relu, y, ws, t, team);
#else
  (void)s, (void)x, (void)U, (void)w, (void)bias, (void)res, (void)relu, (void)y, (void)ws, (void)t, (void)team;
  std::abort();  // winograd_c16_possible is false here
#endif
}

index_t winograd_c16_call_floats(const Conv2dShape& s, int threads) {
  return round16(winograd_c16_filter_floats(s)) + std::max(threads, 1) * winograd_c16_slice_floats(s);
}

bool winograd_c16_forward_call(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y,
                               float* workspace, index_t workspace_floats) {
  int T = omp_in_parallel() ? 1 : max_threads();
  while (T > 1 && winograd_c16_call_floats(s, T) > workspace_floats) --T;
  if (winograd_c16_call_floats(s, T) > workspace_floats) return false;
  float* U = workspace;
  float* slices = workspace + round16(winograd_c16_filter_floats(s));
  const index_t slice = winograd_c16_slice_floats(s), in_img = s.C * s.H * s.W, out_img = s.K * s.P * s.Q;
  winograd_c16_prepare(s, w, U);
  if (T > 1 && s.N >= T) {
#pragma omp parallel num_threads(T)
    {
      const int t = omp_get_thread_num(), nt = omp_get_num_threads();
      for (index_t n = s.N * t / nt; n < s.N * (t + 1) / nt; ++n)
        winograd_c16_forward_image(s, x + n * in_img, U, w, bias, nullptr, false, y + n * out_img, slices + t * slice,
                                   0, 1);
    }
    return true;
  }
  for (index_t n = 0; n < s.N; ++n) {
    if (T > 1) {
#pragma omp parallel num_threads(T)
      winograd_c16_forward_image(s, x + n * in_img, U, w, bias, nullptr, false, y + n * out_img, slices,
                                 omp_get_thread_num(), omp_get_num_threads());
    } else {
      winograd_c16_forward_image(s, x + n * in_img, U, w, bias, nullptr, false, y + n * out_img, slices, 0, 1);
    }
  }
  return true;
}

}  // namespace fastlayers::cpu
