// The HWC direct convolution (conv_hwc.h): where it applies, its sizes, the filter packing and the
// dispatch to its AVX-512 or AVX2 kernels.
#include "cpu/conv_hwc.h"

#include <algorithm>
#include <cstdlib>

#include <omp.h>

#include "cpu/align.h"
#include "cpu/cpu_features.h"
#include "cpu/parallel.h"

namespace fastlayers::cpu {

#if defined(__x86_64__) || defined(_M_X64)
void hwc_forward_image_avx512(const Conv2dShape& s, const float* x, const float* Wk, const float* bias,
                              const float* res, bool relu, float* y, float* ws, int t, int team, ImageIo io);
void hwc_forward_image_avx2(const Conv2dShape& s, const float* x, const float* Wk, const float* bias, const float* res,
                            bool relu, float* y, float* ws, int t, int team, ImageIo io);
void hwc_backward_weight_image_avx512(const Conv2dShape& s, const float* x, const float* grad_out, float* Wt,
                                      float* ws);
void hwc_backward_weight_image_avx2(const Conv2dShape& s, const float* x, const float* grad_out, float* Wt, float* ws);
void hwc_backward_data_image_avx512(const Conv2dShape& s, const HwcBdGeom& g, const float* grad_out, const float* Wp,
                                    float* grad_x, float* ws);
void hwc_backward_data_image_avx2(const Conv2dShape& s, const HwcBdGeom& g, const float* grad_out, const float* Wp,
                                  float* grad_x, float* ws);
#endif

namespace {
}  // namespace

bool hwc_possible(const Conv2dShape& s) {
#if defined(__x86_64__) || defined(_M_X64)
  if (active_isa() != Isa::avx512 && active_isa() != Isa::avx2) return false;
  const bool stride = s.stride_h == s.stride_w && s.stride_h >= 1 && s.stride_h <= 4;
  const bool c_runs = s.C != 16 && s.C != 32 && s.C != 64;  // a run per kernel row (conv_hwc_kernels.h)
  const bool taps = s.R * s.S <= kHwcMaxTaps || (c_runs && s.R <= kHwcMaxTaps);
  return stride && taps && s.groups == 1 && s.dil_h == 1 && s.dil_w == 1 && s.K % 16 == 0 &&
         s.C > 0 && s.K > 0 && s.P > 0 && s.Q > 0;
#else
  (void)s;
  return false;
#endif
}

// AVX-512 machines take it only for 3x3 stride-2 layers of 16 or more channels (below); elsewhere
// they keep conv_smallc and the GEMM path, measured there. 1x1
// layers keep the GEMM path: the two transposes cost more than their few FMAs (16 -> 32 1x1 stride
// 2, batch 64: 0.52 ms either way, 32 -> 64 0.35 against 0.42-0.46). One input channel: a run is
// one kernel row of 3 to 7 floats, and the other paths do as well (the CNN's conv1, 1 -> 32 5x5,
// batch 100, per call: 5.98 / 6.33 ms). Per call, AVX2, 1 thread, min of 15 alternating rounds,
// the other paths / this one: 16 -> 32 3x3 stride 2 on 28x28, batch 64, 3.40-3.49 / 1.63-1.78 ms;
// 32 -> 64 on 14x14 2.64 / 1.77-1.84 ms; LeNet-5's conv2 (6 -> 16 5x5 on 14x14) batch 64 1.61 /
// 0.70 ms, batch 1 53 / 37 us; 24 -> 32 3x3 on 28x28 batch 16 6.44 / 2.50 ms; 3 -> 16 3x3 on 32x32
// batch 64 3.26 / 2.24 ms; ResNet-18's stem (3 -> 64 7x7 stride 2 on 224x224) batch 4 20.4 / 13.6
// ms; 3 -> 32 3x3 on 32x32 4.95 / 5.12 ms (even). The packed filters are read again for every block
// of pixels: past ~512 KB (an L2) they come from further out and the GEMM path wins. ResNet-18's
// stride-2 layers, batch 8: 64 -> 128 on 56x56 (288 KB of filters) 14.4 / 12.8 ms, but 128 -> 256
// on 28x28 (1.2 MB) 14.3 / 18.5 ms and 256 -> 512 on 14x14 (4.7 MB) 12.9 / 25.5 ms.
// Strides 3 and 4 and filters past 7x7 (runs of whole kernel rows), same measure, GEMM path / this:
// AlexNet's conv1 (3 -> 64 11x11 stride 4 on 224x224) batch 8 51.4 / 31.7 ms (1.68x; 2 threads
// 1.53x), batch 1 3.06 / 2.40 ms; 3 -> 32 9x9 on 64x64 batch 16 37.2 / 20.8 ms; 16 -> 32 5x5 stride
// 3 batch 8 4.34 / 2.11 ms.
//
// AVX-512 (Zen 4, 1 thread, paired medians of 7, the other paths / this, forward | forward +
// backward): the small ResNet's stride-2 layers at batch 64, 16 -> 32 on 28x28 1.40 / 1.26 ms |
// 4.76 / 2.84 ms, 32 -> 64 on 14x14 1.41 / 1.15 | 3.91 / 2.67; ResNet-18's 64 -> 128 on 56x56,
// batch 8, 8.89 / 8.90 | 20.9 / 18.6. But LeNet-5's conv2 (6 -> 16 5x5) 0.29 / 0.33 | 0.84 / 0.89
// and AlexNet's conv1 backward 24.8 / 32.2 lose, and the stride-1 3x3 layers go to Winograd first.
bool hwc_by_default(const Conv2dShape& s) {
#if defined(__x86_64__) || defined(_M_X64)
  if (!hwc_possible(s) || s.R * s.S <= 1 || s.C <= 1 || hwc_filter_floats(s) > (index_t{1} << 17)) return false;
  if (active_isa() == Isa::avx2) return true;
  return active_isa() == Isa::avx512 && s.stride_h == 2 && s.R == 3 && s.S == 3 && s.C >= 16;
#else
  (void)s;
  return false;
#endif
}

index_t hwc_filter_floats(const Conv2dShape& s) { return s.R * s.S * s.C * s.K; }

// Backward-weight's register blocks are 6 input channels x 16 output channels (AVX2): with fewer
// channels they hold fewer sums than the FMA latency needs. ResNet-18's stem (3 -> 64 7x7 stride
// 2, batch 8, 1 thread): GEMM path / this 45.6 / 59.1 ms; with 6 or more it wins (LeNet-5's conv2
// 1.17 / 0.44 ms, 64 -> 128 3x3 stride 2 on 56x56 32.5 / 20.0 ms). 1x1 layers (not taken by the
// forward) only at stride 2 with few channels, where the GEMM path's per-image products are small:
// the small ResNet's projections, batch 64, paired medians of 12, 16 -> 32 0.78 / 0.54 ms, 32 -> 64
// 0.56 / 0.42 ms; ResNet-18's (batch 8) 64 -> 128 2.68 / 3.98 ms, 128 -> 256 2.01 / 2.99 ms. The
// same rule on AVX-512 (Zen 4), GEMM path / this, paired medians of 11, 1 and 2 threads: 16 -> 32
// 1.44x / 1.39x, 32 -> 64 1.26x / 1.26x (ResNet-18's 1.02-1.10x, left to the GEMM path as on AVX2).
bool hwc_backward_weight_by_default(const Conv2dShape& s) {
#if defined(__x86_64__) || defined(_M_X64)
  if (s.R * s.S == 1)
    return hwc_possible(s) && (active_isa() == Isa::avx2 || active_isa() == Isa::avx512) && s.stride_h == 2 &&
           s.C >= 6 && s.C * s.K <= 2048;
  // Measured up to stride 2 and 7x7 only (the forward also takes strides 3 and 4 and larger filters).
  return hwc_by_default(s) && s.C >= 6 && s.stride_h <= 2 && s.R * s.S <= kHwcMaxTaps;
#else
  (void)s;
  return false;
#endif
}

void hwc_prepare(const Conv2dShape& s, const float* w, float* Wk) {
  const index_t C = s.C, K = s.K, RS = s.R * s.S;
  for (index_t k = 0; k < K; ++k)
    for (index_t c = 0; c < C; ++c)
      for (index_t tap = 0; tap < RS; ++tap) Wk[(tap * C + c) * K + k] = w[(k * C + c) * RS + tap];
}

WinoC16Geom hwc_geom(const Conv2dShape& s) {
  WinoC16Geom g;
  g.Hp = std::max((s.P - 1) * s.stride_h + s.R, s.pad_h + s.H);
  g.Wp = std::max((s.Q - 1) * s.stride_w + s.S, s.pad_w + s.W);
  g.Pp = s.P;
  g.Qp = s.Q;
  g.xin_off = 0;
  g.yout_off = round16(g.Hp * g.Wp * s.C);
  g.pool_off = g.yout_off + round16(s.P * s.Q * s.K);
  g.slice = g.pool_off + round16((s.P / 2) * (s.Q / 2) * s.K) + 16;
  return g;
}

index_t hwc_slice_floats(const Conv2dShape& s) { return hwc_geom(s).slice; }

void hwc_forward_image(const Conv2dShape& s, const float* x, const float* Wk, const float* bias, const float* res,
                       bool relu, float* y, float* ws, int t, int team, ImageIo io) {
#if defined(__x86_64__) || defined(_M_X64)
  if (active_isa() == Isa::avx512)
    hwc_forward_image_avx512(s, x, Wk, bias, res, relu, y, ws, t, team, io);
  else
    hwc_forward_image_avx2(s, x, Wk, bias, res, relu, y, ws, t, team, io);
#else
  (void)s, (void)x, (void)Wk, (void)bias, (void)res, (void)relu, (void)y, (void)ws, (void)t, (void)team, (void)io;
  std::abort();  // hwc_possible is false here
#endif
}

index_t hwc_call_floats(const Conv2dShape& s, int threads) {
  return round16(hwc_filter_floats(s)) + std::max(threads, 1) * hwc_slice_floats(s);
}

bool hwc_forward_call(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y,
                      float* workspace, index_t workspace_floats) {
  const int T = threads_that_fit(kernel_threads(), workspace_floats, [&](int t) { return hwc_call_floats(s, t); });
  if (T == 0) return false;
  float* Wk = workspace;
  float* slices = workspace + round16(hwc_filter_floats(s));
  const index_t slice = hwc_slice_floats(s), in_img = s.C * s.H * s.W, out_img = s.K * s.P * s.Q;
  hwc_prepare(s, w, Wk);
  for_each_image(s.N, T, slices, slice, [&](index_t n, float* ws, int t, int team) {
    hwc_forward_image(s, x + n * in_img, Wk, bias, nullptr, false, y + n * out_img, ws, t, team);
  });
  return true;
}

// ---- Backward-weight per call: the images over the threads, each thread summing into its own
// Wt (R*S x C x K) after its HWC slice; then grad_w = the threads' Wt, in order, transposed.
namespace {
index_t wt_floats(const Conv2dShape& s) { return round16(s.R * s.S * s.C * s.K); }
}  // namespace

index_t hwc_backward_weight_floats(const Conv2dShape& s, int threads) {
  return std::max(threads, 1) * (hwc_slice_floats(s) + wt_floats(s));
}

bool hwc_backward_weight_call(const Conv2dShape& s, const float* grad_out, const float* x, float* grad_w,
                              float* workspace, index_t workspace_floats) {
#if defined(__x86_64__) || defined(_M_X64)
  const int T = threads_that_fit(kernel_threads(s.N), workspace_floats,
                                 [&](int t) { return hwc_backward_weight_floats(s, t); });
  if (T == 0) return false;
  const index_t per_thread = hwc_slice_floats(s) + wt_floats(s), in_img = s.C * s.H * s.W, out_img = s.K * s.P * s.Q;
  const bool avx512 = active_isa() == Isa::avx512;
  auto body = [&](int t, int nt) {
    float* Wt = workspace + t * per_thread;
    std::fill(Wt, Wt + wt_floats(s), 0.0f);
    for (index_t n = s.N * t / nt; n < s.N * (t + 1) / nt; ++n)
      (avx512 ? hwc_backward_weight_image_avx512 : hwc_backward_weight_image_avx2)(s, x + n * in_img,
                                                                                   grad_out + n * out_img, Wt,
                                                                                   Wt + wt_floats(s));
  };
  run_on_team(T, body);
  const index_t C = s.C, K = s.K, RS = s.R * s.S;
  for (index_t k = 0; k < K; ++k)
    for (index_t c = 0; c < C; ++c)
      for (index_t tap = 0; tap < RS; ++tap) {
        float v = 0.0f;
        for (int t = 0; t < T; ++t) v += workspace[t * per_thread + (tap * C + c) * K + k];
        grad_w[(k * C + c) * RS + tap] = v;
      }
  return true;
#else
  (void)s, (void)grad_out, (void)x, (void)grad_w, (void)workspace, (void)workspace_floats;
  return false;
#endif
}

// ---- Backward-data of stride-2 layers per call.
bool hwc_bd_possible(const Conv2dShape& s) {
  return hwc_possible(s) && s.stride_h == 2 && s.R * s.S <= kHwcMaxTaps && s.C % 16 == 0 && s.pad_h < s.R &&
         s.pad_w < s.S;
}

// AVX2, 1 thread, GEMM + col2im / this, paired medians of 12: the small ResNet's stride-2 layers at
// batch 64, 16 -> 32 on 28x28 4.19 / 2.35 ms (1.77x), 32 -> 64 on 14x14 3.10 / 2.34 ms (1.28x); but
// ResNet-18's 64 -> 128 on 56x56 (batch 8, 74k filter floats) 13.7 / 15.3 ms and 1x1 layers
// (16 -> 32, 0.80 / 1.11 ms) lose: up to 2^15 filter floats, not 1x1 (hwc_by_default).
bool hwc_backward_data_by_default(const Conv2dShape& s) {
  return hwc_bd_possible(s) && hwc_by_default(s) && hwc_filter_floats(s) <= (index_t{1} << 15);
}

HwcBdGeom hwc_bd_geom(const Conv2dShape& s) {
  HwcBdGeom g{};
  // grad_out pixel i + d (d = (a + pad - r) / 2, |d| <= R) of a phase pixel i < ceil(H / 2) is
  // inside the border (P >= (H - R) / 2 + 1 with pad >= 0, pad < R).
  g.B = std::max(s.R, s.S) + 1;
  g.Wg = s.Q + 2 * g.B;
  g.gpad_floats = round16((s.P + 2 * g.B) * g.Wg * s.K);
  index_t w_off = 0, out_off = g.gpad_floats;
  for (index_t a = 0; a < 2; ++a)
    for (index_t b = 0; b < 2; ++b) {
      HwcBdPhase& ph = g.phase[a][b];
      ph.rows = (s.H - a + 1) / 2;
      ph.cols = (s.W - b + 1) / 2;
      ph.runs = 0;
      for (index_t r = 0; r < s.R; ++r)
        for (index_t t = 0; t < s.S; ++t) {
          const index_t er = a + s.pad_h - r, et = b + s.pad_w - t;
          if (((er % 2) + 2) % 2 != 0 || ((et % 2) + 2) % 2 != 0) continue;
          ph.dr[ph.runs] = er / 2;  // exact: er and et are even
          ph.dt[ph.runs] = et / 2;
          ++ph.runs;
        }
      ph.w_off = w_off;
      w_off += ph.runs * s.K * s.C;
      ph.out_off = out_off;
      out_off += round16(ph.rows * ph.cols * s.C);
    }
  g.slice = out_off + 16;
  return g;
}

void hwc_bd_prepare(const Conv2dShape& s, const float* w, float* Wp) {
  const HwcBdGeom g = hwc_bd_geom(s);
  const index_t C = s.C, K = s.K, RS = s.R * s.S;
  for (index_t a = 0; a < 2; ++a)
    for (index_t b = 0; b < 2; ++b) {
      float* dst = Wp + g.phase[a][b].w_off;
      for (index_t r = 0; r < s.R; ++r)
        for (index_t t = 0; t < s.S; ++t) {
          const index_t er = a + s.pad_h - r, et = b + s.pad_w - t;
          if (((er % 2) + 2) % 2 != 0 || ((et % 2) + 2) % 2 != 0) continue;
          for (index_t k = 0; k < K; ++k)
            for (index_t c = 0; c < C; ++c) dst[k * C + c] = w[(k * C + c) * RS + r * s.S + t];
          dst += K * C;
        }
    }
}

index_t hwc_backward_data_floats(const Conv2dShape& s, int threads) {
  return round16(hwc_filter_floats(s)) + std::max(threads, 1) * hwc_bd_geom(s).slice;
}

bool hwc_backward_data_call(const Conv2dShape& s, const float* grad_out, const float* w, float* grad_x,
                            float* workspace, index_t workspace_floats) {
#if defined(__x86_64__) || defined(_M_X64)
  const int T = threads_that_fit(kernel_threads(s.N), workspace_floats,
                                 [&](int t) { return hwc_backward_data_floats(s, t); });
  if (T == 0) return false;
  float* Wp = workspace;
  hwc_bd_prepare(s, w, Wp);
  float* slices = workspace + round16(hwc_filter_floats(s));
  const HwcBdGeom g = hwc_bd_geom(s);
  const index_t in_img = s.C * s.H * s.W, out_img = s.K * s.P * s.Q;
  const auto image = active_isa() == Isa::avx512 ? hwc_backward_data_image_avx512 : hwc_backward_data_image_avx2;
  // T <= N (kernel_threads(s.N)): each thread a contiguous run of images on its own slice, never a team per image.
  for_each_image(s.N, T, slices, g.slice, [&](index_t n, float* ws, int /*t*/, int /*team*/) {
    image(s, g, grad_out + n * out_img, Wp, grad_x + n * in_img, ws);
  });
  return true;
#else
  (void)s, (void)grad_out, (void)w, (void)grad_x, (void)workspace, (void)workspace_floats;
  return false;
#endif
}

}  // namespace fastlayers::cpu
