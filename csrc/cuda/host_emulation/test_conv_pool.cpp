// Host emulation of the CUDA convolution kernels (csrc/cuda/conv_kernels.cuh) against plain
// double-precision loops (the pooling kernels: test_pool.cpp). See cuda_shim.h for what this proves
// (index arithmetic, bounds guards, barrier placement) and what it does not (anything about a GPU).
// Build and run: csrc/cuda/host_emulation/run.sh
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "cuda_shim.h"
#include "cuda/conv_kernels.cuh"

using fastlayers::index_t;
namespace cd = fastlayers::cuda::conv_detail;

// A 3-D grid of 1-D blocks, one block at a time (the shim's emulate_launch is 1-D only).
template <class F>
void launch3(unsigned gx, unsigned gy, unsigned gz, unsigned block, F fn) {
  gridDim.x = gx, gridDim.y = gy, gridDim.z = gz;
  blockDim.x = block;
  for (unsigned z = 0; z < gz; ++z)
    for (unsigned y = 0; y < gy; ++y)
      for (unsigned x = 0; x < gx; ++x) {
        std::barrier<> bar(block);
        g_block_barrier = &bar;
        std::vector<std::thread> threads;
        for (unsigned t = 0; t < block; ++t)
          threads.emplace_back([&, x, y, z, t] {
            blockIdx.x = x, blockIdx.y = y, blockIdx.z = z;
            threadIdx.x = t;
            fn();
          });
        for (auto& th : threads) th.join();
      }
  gridDim.y = gridDim.z = 1;
}

struct Shape {
  index_t N, C, H, W, K, R, S, P, Q, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups;
};

Shape make(index_t N, index_t C, index_t H, index_t W, index_t K, index_t R, index_t S, index_t sh, index_t sw,
           index_t ph, index_t pw, index_t dh, index_t dw, index_t g) {
  const index_t P = (H + 2 * ph - dh * (R - 1) - 1) / sh + 1, Q = (W + 2 * pw - dw * (S - 1) - 1) / sw + 1;
  return {N, C, H, W, K, R, S, P, Q, sh, sw, ph, pw, dh, dw, g};
}

index_t cdiv(index_t a, index_t b) { return (a + b - 1) / b; }

int failures = 0;

void expect_close(const std::vector<float>& got, const std::vector<double>& want, double tol, const char* what,
                  const Shape& s) {
  double worst = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double d = std::fabs(got[i] - want[i]);
    if (!(d <= worst)) worst = d;  // NaN-safe
  }
  if (!(worst <= tol)) {
    ++failures;
    std::printf("FAIL %s N%ld C%ld %ldx%ld K%ld %ldx%ld s%ld,%ld p%ld,%ld d%ld,%ld g%ld: max err %g\n", what,
                (long)s.N, (long)s.C, (long)s.H, (long)s.W, (long)s.K, (long)s.R, (long)s.S, (long)s.stride_h,
                (long)s.stride_w, (long)s.pad_h, (long)s.pad_w, (long)s.dil_h, (long)s.dil_w, (long)s.groups, worst);
  }
}

// Runs the three passes exactly as csrc/cuda/conv.cu launches them (splits given here) and compares
// them with direct loops.
template <class I>
void check_conv(const Shape& s, index_t splits, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-1, 1);
  const index_t Cg = s.C / s.groups, Kg = s.K / s.groups, crs = Cg * s.R * s.S;
  std::vector<float> x(s.N * s.C * s.H * s.W), w(s.K * crs), b(s.K), go(s.N * s.K * s.P * s.Q);
  for (auto* v : {&x, &w, &b, &go})
    for (auto& e : *v) e = u(rng);
  std::vector<double> y_ref(go.size(), 0), gx_ref(x.size(), 0), gw_ref(w.size(), 0), gb_ref(s.K, 0);
  for (index_t n = 0; n < s.N; ++n)
    for (index_t k = 0; k < s.K; ++k)
      for (index_t p = 0; p < s.P; ++p)
        for (index_t q = 0; q < s.Q; ++q) {
          const index_t yi = ((n * s.K + k) * s.P + p) * s.Q + q;
          double acc = b[k];
          gb_ref[k] += go[yi];
          const index_t g = k / Kg;
          for (index_t c = 0; c < Cg; ++c)
            for (index_t r = 0; r < s.R; ++r)
              for (index_t t = 0; t < s.S; ++t) {
                const index_t h = p * s.stride_h - s.pad_h + r * s.dil_h, ww = q * s.stride_w - s.pad_w + t * s.dil_w;
                if (h < 0 || h >= s.H || ww < 0 || ww >= s.W) continue;
                const index_t xi = ((n * s.C + g * Cg + c) * s.H + h) * s.W + ww, wi = ((k * Cg + c) * s.R + r) * s.S + t;
                acc += double(w[wi]) * x[xi];
                gx_ref[xi] += double(w[wi]) * go[yi];
                gw_ref[wi] += double(x[xi]) * go[yi];
              }
          y_ref[yi] = acc;
        }
  const cd::Dims<I> d = cd::dims_of<I>(s);
  const index_t groups = s.groups;
  // forward
  std::vector<float> y(go.size(), NAN);
  {
    const cd::ForwardOp<I> op{x.data(), w.data(), b.data(), y.data(), d};
    const index_t M = Kg, ncol = s.N * s.P * s.Q;
    launch3(cdiv(ncol, cd::kBN), cdiv(M, cd::kBM), groups, cd::kGemmThreads, [&] {
      cd::implicit_gemm_kernel<cd::ForwardOp<I>, I>(op, M, ncol, crs, groups, 1, crs);
    });
  }
  expect_close(y, y_ref, 1e-4, "forward", s);
  // backward data
  std::vector<float> gx(x.size(), NAN);
  {
    const cd::BackwardDataOp<I> op{go.data(), w.data(), gx.data(), d};
    const index_t M = Cg, ncol = s.N * s.H * s.W, kred = Kg * s.R * s.S;
    launch3(cdiv(ncol, cd::kBN), cdiv(M, cd::kBM), groups, cd::kGemmThreads, [&] {
      cd::implicit_gemm_kernel<cd::BackwardDataOp<I>, I>(op, M, ncol, kred, groups, 1, kred);
    });
  }
  expect_close(gx, gx_ref, 1e-4, "backward_data", s);
  // backward weight, split as given, then the split sum and the bias reduction
  std::vector<float> gw(w.size(), NAN), ws(splits * w.size(), NAN), gb(s.K, NAN);
  {
    const index_t kred = s.N * s.P * s.Q;
    const index_t k_chunk = kred > 0 ? cdiv(cdiv(kred, splits), cd::kBK) * cd::kBK : cd::kBK;
    const cd::BackwardWeightOp<I> op{go.data(), x.data(), splits > 1 ? ws.data() : gw.data(), d};
    const index_t gz = groups * splits < 3 ? groups * splits : 3;  // fewer z blocks than work: the z loop
    launch3(cdiv(crs, cd::kBN), cdiv(Kg, cd::kBM), gz, cd::kGemmThreads, [&] {
      cd::implicit_gemm_kernel<cd::BackwardWeightOp<I>, I>(op, Kg, crs, kred, groups, splits, k_chunk);
    });
    if (splits > 1)
      emulate_launch(2, 32, [&] { cd::sum_splits_kernel<I>(ws.data(), gw.data(), I(w.size()), I(splits)); });
    emulate_launch(2, 256, [&] { cd::bias_grad_kernel<I>(go.data(), gb.data(), I(s.N), I(s.K), I(s.P * s.Q)); });
  }
  expect_close(gw, gw_ref, 1e-4, splits > 1 ? "backward_weight (split)" : "backward_weight", s);
  expect_close(gb, gb_ref, 1e-4, "bias", s);
}

int main() {
  std::mt19937 rng(7);
  // N, C, H, W, K, R, S, stride, pad, dil, groups
  const Shape convs[] = {
      make(2, 3, 7, 6, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1),    // 3x3 pad 1
      make(1, 4, 9, 8, 6, 3, 2, 2, 3, 1, 0, 1, 1, 2),    // stride 2x3, non-square kernel, groups 2
      make(2, 2, 11, 10, 3, 3, 3, 3, 2, 2, 1, 2, 3, 1),  // stride 3, dilation 2x3, padding
      make(1, 6, 5, 5, 6, 3, 3, 1, 1, 1, 1, 1, 1, 6),    // depthwise
      make(3, 5, 4, 4, 7, 1, 1, 1, 1, 0, 0, 1, 1, 1),    // 1x1
      make(1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1),    // everything 1
      make(2, 70, 3, 3, 66, 2, 2, 1, 1, 0, 0, 1, 1, 1),  // M > 64 and reduction > 64: several tiles
      make(3, 2, 12, 12, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1),  // columns > 64
      make(0, 2, 3, 3, 2, 3, 3, 1, 1, 0, 0, 1, 1, 1),    // empty batch: zero grads
  };
  for (const Shape& s : convs) {
    check_conv<std::int32_t>(s, 1, rng);
    check_conv<std::int64_t>(s, 1, rng);
    if (s.N * s.P * s.Q > 32) check_conv<std::int32_t>(s, 3, rng);  // split reduction, some splits short
  }
  std::printf("%d failures\n", failures);
  return failures != 0;
}
