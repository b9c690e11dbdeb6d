// The channels-in-lanes Winograd convolution (conv_winograd_c16.h): where it applies, its sizes,
// the filter transform (in double, once per plan) and the dispatch to its AVX-512 kernels.
#include "cpu/conv_winograd_c16.h"

#include <algorithm>
#include <cstdlib>

#include "cpu/cpu_features.h"

namespace fastlayers::cpu {

#if defined(__x86_64__) || defined(_M_X64)
void winograd_c16_forward_image_avx512(const Conv2dShape& s, const WinoC16Geom& g, const float* x, const float* U,
                                       const float* w, const float* bias, const float* res, bool relu, float* y,
                                       float* ws, int t, int team);
#endif

namespace {

constexpr int kA = 6;

index_t round16(index_t n) { return (n + 15) / 16 * 16; }

// G (6 x r) of F(4x4, 3x3) and F(2x2, 5x5) for the points 0, +-1, +-2, inf (B^T is the same for
// both; A^T is in the kernels).
constexpr double kG3[kA][3] = {{1.0 / 4, 0, 0},
                               {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                               {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                               {1.0 / 24, 1.0 / 12, 1.0 / 6},
                               {1.0 / 24, -1.0 / 12, 1.0 / 6},
                               {0, 0, 1}};
constexpr double kG5[kA][5] = {{1.0 / 4, 0, 0, 0, 0},
                               {-1.0 / 6, -1.0 / 6, -1.0 / 6, -1.0 / 6, -1.0 / 6},
                               {-1.0 / 6, 1.0 / 6, -1.0 / 6, 1.0 / 6, -1.0 / 6},
                               {1.0 / 24, 1.0 / 12, 1.0 / 6, 1.0 / 3, 2.0 / 3},
                               {1.0 / 24, -1.0 / 12, 1.0 / 6, -1.0 / 3, 2.0 / 3},
                               {0, 0, 0, 0, 1}};

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

// U[a*6 + b][c][k] = (G w[k][c] G^T)[a][b].
void winograd_c16_prepare(const Conv2dShape& s, const float* w, float* U) {
  const index_t C = s.C, K = s.K, r = s.R;
  auto G = [&](int a, index_t i) { return r == 3 ? kG3[a][i] : kG5[a][i]; };
  for (index_t k = 0; k < K; ++k)
    for (index_t c = 0; c < C; ++c) {
      const float* g = w + (k * C + c) * r * r;
      double tmp[kA][5];  // G g
      for (int a = 0; a < kA; ++a)
        for (index_t j = 0; j < r; ++j) {
          double v = 0;
          for (index_t i = 0; i < r; ++i) v += G(a, i) * g[i * r + j];
          tmp[a][j] = v;
        }
      for (int a = 0; a < kA; ++a)
        for (int b = 0; b < kA; ++b) {
          double v = 0;
          for (index_t j = 0; j < r; ++j) v += tmp[a][j] * G(b, j);
          U[((a * kA + b) * C + c) * K + k] = static_cast<float>(v);
        }
    }
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

}  // namespace fastlayers::cpu
