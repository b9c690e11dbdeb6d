// Host emulation of the CUDA convolution (csrc/cuda/conv_kernels.cuh, the tiles and choice of
// conv_plan.h) against plain double-precision loops. Every tile of every pass runs on shapes with
// remainders on both tile sides, strides, dilations, padding, groups, depthwise, 1x1 and a single
// channel; the strided backward-data pass runs as its stride phases; backward_weight with and
// without split reductions; both index types; grids with fewer z blocks than sub-problems. See
// cuda_shim.h for what this proves and what it does not.
// Build and run: csrc/cuda/host_emulation/run.sh
#include <cmath>
#include <cstdio>
#include <random>
#include <utility>
#include <vector>

#include "cuda_shim.h"
#include "cuda/conv_launch.h"

using fastlayers::ConvPass;
using fastlayers::index_t;
namespace cd = fastlayers::cuda::conv_detail;
namespace cp = fastlayers::cuda::conv_plan;
namespace cdp = fastlayers::cuda::conv_dispatch;

struct Shape {
  index_t N, C, H, W, K, R, S, P, Q, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups;
};

Shape make(index_t N, index_t C, index_t H, index_t W, index_t K, index_t R, index_t S, index_t sh, index_t sw,
           index_t ph, index_t pw, index_t dh, index_t dw, index_t g) {
  const index_t P = (H + 2 * ph - dh * (R - 1) - 1) / sh + 1, Q = (W + 2 * pw - dw * (S - 1) - 1) / sw + 1;
  return {N, C, H, W, K, R, S, P, Q, sh, sw, ph, pw, dh, dw, g};
}

fastlayers::Conv2dShape conv_shape(const Shape& s) {
  return {s.N, s.C, s.H, s.W, s.K, s.R, s.S, s.P, s.Q, s.stride_h, s.stride_w, s.pad_h, s.pad_w, s.dil_h, s.dil_w,
          s.groups};
}

int failures = 0, runs = 0;

void expect_close(const std::vector<float>& got, const std::vector<double>& want, double tol, const char* what,
                  const Shape& s, int tile) {
  double worst = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double d = std::fabs(got[i] - want[i]);
    if (!(d <= worst)) worst = d;  // NaN-safe: a never-written output (NaN) fails
  }
  ++runs;
  if (!(worst <= tol)) {
    ++failures;
    std::printf("FAIL %s tile %d N%ld C%ld %ldx%ld K%ld %ldx%ld s%ld,%ld p%ld,%ld d%ld,%ld g%ld: max err %g\n", what,
                tile, (long)s.N, (long)s.C, (long)s.H, (long)s.W, (long)s.K, (long)s.R, (long)s.S, (long)s.stride_h,
                (long)s.stride_w, (long)s.pad_h, (long)s.pad_w, (long)s.dil_h, (long)s.dil_w, (long)s.groups, worst);
  }
}

struct Data {
  std::vector<float> x, w, b, go;
  std::vector<double> y, gx, gw, gb;
};

// Direct double-precision loops over every (output, tap) pair.
Data make_data(const Shape& s, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-1, 1);
  const index_t Cg = s.C / s.groups, Kg = s.K / s.groups, crs = Cg * s.R * s.S;
  Data D;
  D.x.resize(s.N * s.C * s.H * s.W), D.w.resize(s.K * crs), D.b.resize(s.K), D.go.resize(s.N * s.K * s.P * s.Q);
  for (auto* v : {&D.x, &D.w, &D.b, &D.go})
    for (auto& e : *v) e = u(rng);
  D.y.assign(D.go.size(), 0), D.gx.assign(D.x.size(), 0), D.gw.assign(D.w.size(), 0), D.gb.assign(s.K, 0);
  for (index_t n = 0; n < s.N; ++n)
    for (index_t k = 0; k < s.K; ++k)
      for (index_t p = 0; p < s.P; ++p)
        for (index_t q = 0; q < s.Q; ++q) {
          const index_t yi = ((n * s.K + k) * s.P + p) * s.Q + q;
          double acc = D.b[k];
          D.gb[k] += D.go[yi];
          const index_t g = k / Kg;
          for (index_t c = 0; c < Cg; ++c)
            for (index_t r = 0; r < s.R; ++r)
              for (index_t t = 0; t < s.S; ++t) {
                const index_t h = p * s.stride_h - s.pad_h + r * s.dil_h, ww = q * s.stride_w - s.pad_w + t * s.dil_w;
                if (h < 0 || h >= s.H || ww < 0 || ww >= s.W) continue;
                const index_t xi = ((n * s.C + g * Cg + c) * s.H + h) * s.W + ww, wi = ((k * Cg + c) * s.R + r) * s.S + t;
                acc += double(D.w[wi]) * D.x[xi];
                D.gx[xi] += double(D.w[wi]) * D.go[yi];
                D.gw[wi] += double(D.x[xi]) * D.go[yi];
              }
          D.y[yi] = acc;
        }
  return D;
}

// The three passes through conv_launch.h exactly as conv.cu runs them, with tile `tile` forced
// (the int64 path runs its own) and gridDim.z capped at z_cap (blocks then loop over several
// sub-problems).
void check_pixels(const Shape& s, const Data& D, int tile, unsigned z_cap) {
  const cp::Device dev;
  EmulatedLaunch launch{z_cap};
  const fastlayers::Conv2dShape cs = conv_shape(s);
  const bool wide = !cdp::fits_int32(cs, 0);
  {
    std::vector<float> y(D.go.size(), NAN);
    cdp::forward(launch, cs, D.x.data(), D.w.data(), D.b.data(), y.data(), dev, tile);
    expect_close(y, D.y, 1e-4, wide ? "forward (int64)" : "forward", s, tile);
  }
  {
    std::vector<float> gx(D.x.size(), NAN);
    cdp::backward_data(launch, cs, D.go.data(), D.w.data(), gx.data(), dev, tile);
    expect_close(gx, D.gx, 1e-4, wide ? "backward_data (int64)" : "backward_data", s, tile);
  }
}

// backward_weight with `ws_floats` of workspace (the full request: splits and bias chunks as
// planned; less: fewer), then grad_b.
void check_weights(const Shape& s, const Data& D, int tile, index_t ws_floats, unsigned z_cap, bool with_bias) {
  const cp::Device dev;
  EmulatedLaunch launch{z_cap};
  const fastlayers::Conv2dShape cs = conv_shape(s);
  std::vector<float> gw(D.w.size(), NAN), gb(s.K, NAN), ws(ws_floats + 2, NAN);
  cdp::backward_weight(launch, cs, D.go.data(), D.x.data(), gw.data(), with_bias ? gb.data() : nullptr,
                       ws_floats ? ws.data() : nullptr, ws_floats, dev, tile);
  const bool split = launch.launches.count("conv2d_backward_weight (sum of splits)") > 0;
  const bool chunks = launch.launches.count("conv2d_backward_weight (bias chunks)") > 0;
  expect_close(gw, D.gw, 1e-4, split ? "backward_weight (split)" : "backward_weight", s, tile);
  if (with_bias) expect_close(gb, D.gb, 1e-4, chunks ? "bias (chunks)" : "bias", s, tile);
}

// The bias kernel with and without float4 loads and with 1 or 3 chunks (grids smaller than the work).
template <class I>
void check_bias(const Shape& s, const Data& D) {
  std::vector<float> gb(s.K);
  std::vector<double> partial(3 * s.K + 1);
  for (int vec = 0; vec < 2; ++vec)
    for (index_t chunks : {1, 3}) {
      if (vec && (s.P * s.Q) % 4) continue;
      std::fill(gb.begin(), gb.end(), NAN);
      emulate_launch3(unsigned(s.K < 3 ? s.K : 3), unsigned(chunks < 2 ? chunks : 2), 1, cd::kBiasThreads, [&] {
        cd::bias_partial_kernel<I>(D.go.data(), partial.data(), gb.data(), I(s.N), I(s.K), I(s.P * s.Q), I(chunks),
                                   vec != 0);
      });
      if (chunks > 1)
        emulate_launch(1, 32, [&] { cd::bias_chunks_kernel<I>(partial.data(), gb.data(), I(s.K), I(chunks)); });
      expect_close(gb, D.gb, 1e-4, vec ? "bias kernel (float4)" : "bias kernel", s, int(chunks));
    }
}

int main() {
  std::mt19937 rng(7);
  // N, C, H, W, K, R, S, stride h/w, pad h/w, dil h/w, groups
  const Shape shapes[] = {
      make(2, 3, 7, 6, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1),     // 3x3 pad 1, odd sizes
      make(1, 4, 9, 8, 6, 3, 2, 2, 3, 1, 0, 1, 1, 2),     // stride 2x3, non-square kernel, groups 2
      make(2, 2, 11, 10, 3, 3, 3, 3, 2, 2, 1, 2, 3, 1),   // stride 3x2, dilation 2x3, padding
      make(1, 6, 5, 5, 6, 3, 3, 1, 1, 1, 1, 1, 1, 6),     // depthwise
      make(3, 5, 4, 4, 7, 1, 1, 1, 1, 0, 0, 1, 1, 1),     // 1x1
      make(1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1),     // everything 1
      make(2, 3, 23, 21, 4, 11, 11, 4, 4, 2, 2, 1, 1, 1), // layer (e) in small: 11x11 stride 4, 16 phases
      make(1, 2, 9, 9, 3, 2, 2, 2, 2, 0, 0, 2, 2, 1),     // stride 2 dilation 2: odd phases have no taps
      make(1, 2, 8, 7, 2, 1, 1, 3, 2, 0, 0, 1, 1, 1),     // 1x1 stride 3x2: most phases have no taps
      make(2, 1, 12, 11, 5, 5, 5, 1, 1, 0, 0, 1, 1, 1),   // C = 1 (layer a backward-data)
      make(1, 2, 10, 9, 3, 3, 3, 2, 2, 3, 2, 3, 1, 1),    // padding larger than the stride, dilation 3
      make(2, 9, 5, 5, 10, 3, 3, 1, 1, 1, 1, 1, 1, 1),    // reduction not a multiple of any slice
      make(2, 70, 3, 3, 66, 2, 2, 1, 1, 0, 0, 1, 1, 1),   // > 64 channels each side: several column tiles
      make(0, 2, 3, 3, 2, 3, 3, 1, 1, 0, 0, 1, 1, 1),     // empty batch: zero grads
  };
  const cp::Device dev;
  int shape_no = 0;
  for (const Shape& s : shapes) {
    const Data D = make_data(s, rng);
    const fastlayers::Conv2dShape cs = conv_shape(s);
    // Every tile on the first three shapes, then the chosen ones plus others in turn.
    for (int tile = 0; tile < cp::kPixelTileCount; ++tile) {
      const bool chosen = tile == cp::choose(cs, ConvPass::forward, dev).tile ||
                          tile == cp::choose(cs, ConvPass::backward_data, dev).tile;
      if (shape_no < 3 || chosen || tile % 4 == shape_no % 4) check_pixels(s, D, tile, 2);
    }
    const index_t full = cp::weight_workspace_floats(cs, cp::weight_splits(cs), cp::bias_splits(cs));
    for (int tile = 0; tile < cp::kWeightTileCount; ++tile) {
      const bool chosen = tile == cp::choose(cs, ConvPass::backward_weight, dev).tile;
      if (shape_no < 3 || chosen || tile % 3 == shape_no % 3) check_weights(s, D, tile, full, 2, tile == 0);
    }
    const index_t w_count = D.w.size();
    check_weights(s, D, -1, 0, 3, true);            // no workspace: one split, one bias chunk
    check_weights(s, D, -1, 2 * w_count + 1, 1, true);  // room for two splits only
    check_bias<std::int32_t>(s, D);
    ++shape_no;
  }
  // Splits that the planner picks on a longer reduction (N*P*Q > 1024), with chunked bias.
  {
    const Shape s = make(3, 2, 20, 19, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1);
    const Data D = make_data(s, rng);
    const fastlayers::Conv2dShape cs = conv_shape(s);
    const index_t full = cp::weight_workspace_floats(cs, cp::weight_splits(cs), cp::bias_splits(cs));
    EmulatedLaunch probe;
    std::vector<float> gw(D.w.size()), gb(s.K), ws(full + 2);
    cdp::backward_weight(probe, cs, D.go.data(), D.x.data(), gw.data(), gb.data(), ws.data(), full, dev);
    if (cp::weight_splits(cs) < 2 || !probe.launches.count("conv2d_backward_weight (sum of splits)")) {
      ++failures;
      std::printf("FAIL: the planner did not split a reduction of %ld terms\n", long(s.N * s.P * s.Q));
    }
    check_weights(s, D, -1, full, 4, true);
  }
  // The int64 index path: the same kernels with 64-bit indices, forced through the int64 instantiation.
  {
    const Shape s = make(2, 3, 9, 8, 4, 3, 3, 2, 1, 1, 1, 1, 2, 1);
    const Data D = make_data(s, rng);
    const cp::Device dev64;
    EmulatedLaunch launch{2};
    std::vector<float> y(D.go.size(), NAN), gx(D.x.size(), NAN), gw(D.w.size(), NAN);
    const fastlayers::Conv2dShape cs = conv_shape(s);
    cdp::forward_impl<std::int64_t>(launch, cs, D.x.data(), D.w.data(), D.b.data(), y.data(), -1, dev64);
    cdp::backward_data_impl<std::int64_t>(launch, cs, D.go.data(), D.w.data(), gx.data(), -1, dev64);
    std::vector<float> ws(2 * D.w.size() + 2, NAN);
    cdp::backward_weight_impl<std::int64_t>(launch, cs, D.go.data(), D.x.data(), gw.data(), nullptr, ws.data(), 2, 1, -1,
                                            dev64);
    expect_close(y, D.y, 1e-4, "forward (int64)", s, cp::kPixelTileInt64);
    expect_close(gx, D.gx, 1e-4, "backward_data (int64)", s, cp::kPixelTileInt64);
    expect_close(gw, D.gw, 1e-4, "backward_weight (int64, split)", s, cp::kWeightTileInt64);
    check_bias<std::int64_t>(s, D);
  }
  std::printf("%d runs, %d failures\n", runs, failures);
  return failures != 0;
}
