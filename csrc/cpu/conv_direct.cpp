#include "cpu/conv_direct.h"

#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "common/checked.h"
#include "cpu/align.h"
#include "cpu/cpu_features.h"
#include "cpu/parallel.h"

namespace fastlayers::cpu {

namespace {

constexpr index_t kMaxRS = 256;  // tap offsets live on the stack

int forced_mode() {
  const char* e = std::getenv("FASTLAYERS_CONV_DIRECT");
  if (e == nullptr) return -1;
  if (std::strcmp(e, "0") == 0) return 0;
  if (std::strcmp(e, "1") == 0) return 1;
  return -1;
}

struct Plan {
  index_t sh, sw, Hq, Wq, plane, CP, RS, xs_floats;
  DirectTiling tl;
  bool avx512;
};

index_t ceil_div(index_t a, index_t b) { return (a + b - 1) / b; }

Plan make_plan(const Conv2dShape& s) {
  Plan p{};
  p.avx512 = active_isa() == Isa::avx512;
  p.tl = p.avx512 ? direct_tiling_avx512() : direct_tiling_avx2();
  p.sh = s.stride_h;
  p.sw = s.stride_w;
  p.Hq = ceil_div(s.H + 2 * s.pad_h, p.sh);
  p.Wq = ceil_div(s.W + 2 * s.pad_w, p.sw);
  p.plane = p.Hq * p.Wq;
  p.CP = p.sh * p.sw * p.plane;
  p.RS = s.R * s.S;
  // Reads run up to a block's width past the grid and a row past the last plane (conv_direct.h):
  // a zeroed tail keeps them inside the slice.
  const CheckedSize xs = CheckedSize(s.C) * p.CP + p.Wq + 2 * p.tl.jb + 64;
  p.xs_floats = xs.ok() ? xs.value() : -1;
  return p;
}

// Tap offsets within one channel's phase planes, in the filters' (r, t) order.
void tap_offsets(const Conv2dShape& s, const Plan& p, int* off) {
  for (index_t r = 0; r < s.R; ++r)
    for (index_t t = 0; t < s.S; ++t) {
      const index_t dr = r * s.dil_h, dt = t * s.dil_w;
      off[r * s.S + t] = static_cast<int>(((dr % p.sh) * p.sw + dt % p.sw) * p.plane + (dr / p.sh) * p.Wq + dt / p.sw);
    }
}

// One image's C channels into their zero-padded phase planes, then the zeroed tail.
void fill_xs(const Conv2dShape& s, const Plan& p, const float* x, float* xs) {
  const index_t HW = s.H * s.W;
  for (index_t c = 0; c < s.C; ++c) {
    const float* xc = x + c * HW;
    for (index_t ph = 0; ph < p.sh; ++ph)
      for (index_t pw = 0; pw < p.sw; ++pw) {
        float* pl = xs + c * p.CP + (ph * p.sw + pw) * p.plane;
        for (index_t hq = 0; hq < p.Hq; ++hq) {
          float* row = pl + hq * p.Wq;
          const index_t ih = hq * p.sh + ph - s.pad_h;
          if (ih < 0 || ih >= s.H) {
            std::memset(row, 0, sizeof(float) * p.Wq);
            continue;
          }
          const float* src = xc + ih * s.W;
          if (p.sw == 1) {  // [pad zeros][W floats][zeros]
            const index_t lead = std::min(s.pad_w, p.Wq);
            for (index_t i = 0; i < lead; ++i) row[i] = 0.0f;
            const index_t n = std::min(s.W, p.Wq - lead);
            std::memcpy(row + lead, src, sizeof(float) * n);
            for (index_t i = lead + n; i < p.Wq; ++i) row[i] = 0.0f;
          } else {  // columns wq with 0 <= wq*sw + pw - pad_w < W, zeros around them
            const index_t o = pw - s.pad_w;
            const index_t lo = std::min(p.Wq, o >= 0 ? 0 : ceil_div(-o, p.sw));
            const index_t hi = std::max(lo, std::min(p.Wq, s.W - o <= 0 ? 0 : ceil_div(s.W - o, p.sw)));
            for (index_t wq = 0; wq < lo; ++wq) row[wq] = 0.0f;
            const float* sp = src + o;
            const index_t sw = p.sw;
            for (index_t wq = lo; wq < hi; ++wq) row[wq] = sp[wq * sw];
            for (index_t wq = hi; wq < p.Wq; ++wq) row[wq] = 0.0f;
          }
        }
      }
  }
  std::memset(xs + s.C * p.CP, 0, sizeof(float) * (p.xs_floats - s.C * p.CP));
}

index_t slice_floats(const Plan& p) { return p.xs_floats + kAlignSlackFloats; }

// Below this many FLOPs per call the whole pass runs on one thread: waking the team and splitting
// a 7x7 image's few blocks cost more than they save on this 2-core machine (measured with
// benchmarks/conv_direct_bench.py).
constexpr double kSerialFlops = 4.0e6;

bool possible_shape(const Conv2dShape& s) {
#if defined(__x86_64__) || defined(_M_X64)
  if (active_isa() == Isa::generic) return false;
  if (s.R * s.S > kMaxRS || s.N < 1) return false;
  const Plan p = make_plan(s);
  return p.xs_floats > 0 && p.xs_floats < (index_t{1} << 31);
#else
  (void)s;
  return false;
#endif
}

// backward-data of a stride-1 convolution as a forward one (conv.cpp's transposed_shape, without
// its size rule).
bool transposed(const Conv2dShape& s, Conv2dShape& t) {
  const index_t ph = s.dil_h * (s.R - 1) - s.pad_h, pw = s.dil_w * (s.S - 1) - s.pad_w;
  if (s.stride_h != 1 || s.stride_w != 1 || ph < 0 || pw < 0) return false;
  t = Conv2dShape{s.N, s.K, s.P, s.Q, s.C, s.R, s.S, s.H, s.W, 1, 1, ph, pw, s.dil_h, s.dil_w, s.groups};
  return true;
}

index_t flipped_floats(const Conv2dShape& s) { return s.C * (s.K / s.groups) * s.R * s.S + kAlignSlackFloats; }

// Runs the forward convolution `s`: x (N, C, H, W) -> y (N, K, P, Q). The workspace holds `T`
// slices (T threads over images) or one (threads inside each image).
bool run(const Conv2dShape& s, const float* x, const float* w, const float* b, float* y, bool relu, float* ws,
         index_t ws_floats) {
  const Plan p = make_plan(s);
  const index_t Cg = s.C / s.groups, Kg = s.K / s.groups, G = s.groups;
  const index_t slice = slice_floats(p);
  if (ws_floats < slice) return false;
  alignas(64) int off[kMaxRS];
  tap_offsets(s, p, off);
  const double flops = 2.0 * s.N * s.K * Cg * s.R * s.S * s.P * s.Q;
  int T = flops < kSerialFlops ? 1 : max_threads();
  const index_t kblocks = ceil_div(Kg, p.tl.mr), jblocks = ceil_div(s.P * p.Wq, p.tl.jb);
  const index_t nblocks = kblocks * jblocks;
  auto kernel = p.avx512 ? direct_blocks_avx512 : direct_blocks_avx2;
  auto image = [&](index_t n, index_t g, float* xs) {
    DirectImage d{};
    d.xs = xs + g * Cg * p.CP;
    d.w = w + g * Kg * Cg * p.RS;
    d.bias = b == nullptr ? nullptr : b + g * Kg;
    d.poff = off;
    d.y = y + (n * s.K + g * Kg) * s.P * s.Q;
    d.Kg = Kg, d.Cg = Cg, d.RS = p.RS, d.CP = p.CP, d.Wq = p.Wq, d.P = s.P, d.Q = s.Q, d.relu = relu;
    return d;
  };
  const bool over_images = s.N >= T && T > 1;
  if (over_images) {
    T = static_cast<int>(std::min<index_t>(T, ws_floats / slice));
  }
  if (T <= 1) {
    float* xs = align64(ws);
    for (index_t n = 0; n < s.N; ++n) {
      fill_xs(s, p, x + n * s.C * s.H * s.W, xs);
      for (index_t g = 0; g < G; ++g) kernel(image(n, g, xs), 0, nblocks);
    }
    return true;
  }
  if (over_images) {
#pragma omp parallel num_threads(T)
    {
      float* xs = align64(ws + omp_get_thread_num() * slice);
#pragma omp for schedule(dynamic, 1)
      for (index_t n = 0; n < s.N; ++n) {
        fill_xs(s, p, x + n * s.C * s.H * s.W, xs);
        for (index_t g = 0; g < G; ++g) kernel(image(n, g, xs), 0, nblocks);
      }
    }
    return true;
  }
  float* xs = align64(ws);
#pragma omp parallel num_threads(T)
  {
    for (index_t n = 0; n < s.N; ++n) {
#pragma omp single
      fill_xs(s, p, x + n * s.C * s.H * s.W, xs);
      for (index_t g = 0; g < G; ++g) {
        const DirectImage d = image(n, g, xs);
#pragma omp for schedule(static)
        for (index_t i = 0; i < nblocks; ++i) kernel(d, i, i + 1);
      }
#pragma omp barrier
    }
  }
  return true;
}

struct BwSizes {
  index_t Kv, J, goT, gwT, slice;  // per thread: xs, goT, gwT (each with alignment slack)
};

BwSizes bw_sizes(const Conv2dShape& s) {
  const Plan p = make_plan(s);
  BwSizes z{};
  const index_t L = p.avx512 ? direct_bw_lanes_avx512() : direct_bw_lanes_avx2();
  z.Kv = ceil_div(s.K, L) * L;
  z.J = s.P * p.Wq;
  z.goT = z.J * z.Kv + kAlignSlackFloats;
  z.gwT = s.C * 9 * z.Kv + kAlignSlackFloats;
  z.slice = slice_floats(p) + z.goT + z.gwT;
  return z;
}

// grad_out of one image (K planes of P x Q) transposed onto the grid: goT[(p*Wq + q)*Kv + k].
void stage_goT(const Conv2dShape& s, const Plan& p, const BwSizes& z, const float* go, float* goT) {
  std::memset(goT, 0, sizeof(float) * z.J * z.Kv);
  const index_t PQ = s.P * s.Q;
  for (index_t pp = 0; pp < s.P; ++pp)
    for (index_t q = 0; q < s.Q; ++q) {
      float* dst = goT + (pp * p.Wq + q) * z.Kv;
      const float* src = go + pp * s.Q + q;
      for (index_t k = 0; k < s.K; ++k) dst[k] = src[k * PQ];
    }
}

}  // namespace

bool direct_backward_weight(const Conv2dShape& s, const float* grad_out, const float* x, float* grad_w,
                            float* workspace, index_t workspace_floats) {
  if (!direct_possible(s, ConvPass::backward_weight)) return false;
  const Plan p = make_plan(s);
  const BwSizes z = bw_sizes(s);
  if (workspace_floats < z.slice) return false;
  alignas(64) int off[kMaxRS];
  tap_offsets(s, p, off);
  int T = static_cast<int>(std::min<index_t>({static_cast<index_t>(max_threads()), s.N, workspace_floats / z.slice}));
  const double flops = 2.0 * s.N * s.K * s.C * 9 * s.P * s.Q;
  if (flops < kSerialFlops) T = 1;
  auto kernel = p.avx512 ? direct_bw_image_avx512 : direct_bw_image_avx2;
  auto chunk = [&](int t) {
    float* base = workspace + t * z.slice;
    float* xs = align64(base);
    float* goT = align64(base + slice_floats(p));
    float* gwT = align64(base + slice_floats(p) + z.goT);
    std::memset(gwT, 0, sizeof(float) * s.C * 9 * z.Kv);
    const index_t n0 = s.N * t / T, n1 = s.N * (t + 1) / T;
    for (index_t n = n0; n < n1; ++n) {
      fill_xs(s, p, x + n * s.C * s.H * s.W, xs);
      stage_goT(s, p, z, grad_out + n * s.K * s.P * s.Q, goT);
      DirectBwImage d{xs, goT, off, gwT, s.C, p.CP, z.Kv, z.J};
      kernel(d);
    }
  };
  if (T <= 1) {
    chunk(0);
  } else {
#pragma omp parallel for schedule(static, 1) num_threads(T)
    for (int t = 0; t < T; ++t) chunk(t);
  }
  // grad_w[k][tap] = the threads' gwT[tap][k], added in thread order.
  const index_t CRS = s.C * 9;
  for (index_t k = 0; k < s.K; ++k)
    for (index_t tap = 0; tap < CRS; ++tap) {
      float acc = 0.0f;
      for (int t = 0; t < T; ++t) acc += align64(workspace + t * z.slice + slice_floats(p) + z.goT)[tap * z.Kv + k];
      grad_w[k * CRS + tap] = acc;
    }
  return true;
}

bool direct_possible(const Conv2dShape& s, ConvPass pass) {
  if (pass == ConvPass::forward) return possible_shape(s);
  if (pass == ConvPass::backward_weight) return s.R * s.S == 9 && s.groups == 1 && possible_shape(s);
  if (pass != ConvPass::backward_data) return false;
  Conv2dShape t;
  return transposed(s, t) && possible_shape(t);
}

// The measured rule (benchmarks/conv_direct_bench.py, 1 and 2 threads, interleaved against the
// path conv.cpp took before: FASTLAYERS_CONV_DIRECT=0; figures in
// benchmarks/results/conv-direct-*.md). 3x3 with >= 8 channels each way, and:
// - stride 1 on images up to 32x32: Winograd's per-call weight transform and small GEMMs cost
//   far more than the arithmetic at small batches (64->64 on 7x7, N=1: 0.81 -> 0.07 ms; 32->32
//   on 14x14: 0.24 -> 0.06 ms; 1 thread), and F(4x4) is weak with 16 channels (16->16 on 28x28,
//   N=64: 1.47x). With >= 32 channels and many pixels Winograd's 2-3x fewer multiplications win
//   (N=64: 32->32 14x14 0.85x, 64->64 7x7 0.63x with direct), so those stay there, and so do
//   layers c and d (forced direct: 0.68x / 0.59x).
// - stride 2 only where the whole call runs on one thread here (kSerialFlops) while the old path
//   would wake the team: on this shared 2-core machine that was 11-130x at batch 1 with 2 threads;
//   at 1 thread the existing direct kernel (conv_smallc) was 4-9% faster, so it keeps those.
// Backward-data (stride 1) reduces over K: the same rule with K and the input's H x W.
bool direct_applies(const Conv2dShape& s, ConvPass pass) {
  const int mode = forced_mode();
  if (mode == 0) return false;
  if (!direct_possible(s, pass)) return false;
  if (mode == 1) return true;
  const bool three = s.R == 3 && s.S == 3 && s.dil_h == 1 && s.dil_w == 1;
  const index_t Cg = s.C / s.groups, Kg = s.K / s.groups;
  if (!three || Cg < 8 || Kg < 8) return false;
  const bool stride1 = s.stride_h == 1 && s.stride_w == 1;
  // Large filters (>= 2 MiB per group, ResNet-18's 512-channel layers): the GEMM path's
  // whole-batch products win from two images up (512->512 7x7, 2 threads, direct / GEMM ms:
  // forward N=1 2.1 / 2.5, N=4 6.5 / 6.2, N=32 91 / 44; backward-data N=1 9.8 / 3.3, N=16
  // 26.5 / 21.8).
  const bool big_filters = Cg * Kg * 9 >= (index_t{1} << 19);
  if (big_filters && (pass == ConvPass::backward_data || s.N > 2)) return false;
  if (pass == ConvPass::forward) {
    if (s.stride_h == 2 && s.stride_w == 2) {
      const double flops = 2.0 * s.N * s.K * Cg * 9 * s.P * s.Q;
      return max_threads() > 1 && flops < kSerialFlops;
    }
    return stride1 && s.P * s.Q <= 32 * 32 && (Cg < 32 || s.N * s.P * s.Q <= 2048);
  }
  if (pass == ConvPass::backward_weight) {
    // The kernel accumulates into the whole Kg x Cg x 9 gradient image after image: past 128 x 128
    // channels (576 KiB) that no longer stays in cache and the GEMM / Winograd paths win (ResNet-18's
    // 512->512 7x7, 2 threads, direct / other: 11.8 / 4.1 ms at batch 1, 49.3 / 30.8 ms at batch 16;
    // 256->512 stride 2 5.6 / 2.0 and 21.1 / 14.6 ms; 256->256 14x14 4.1 / 3.1 and 18.6 / 18.9 ms;
    // 128->128 28x28 2.8 / 3.2 and 22.0 / 21.9 ms: kept).
    return s.P * s.Q <= 32 * 32 && s.stride_h <= 2 && s.stride_w <= 2 && Cg * Kg <= 128 * 128;
  }
  return stride1 && s.H * s.W <= 32 * 32 && (Kg < 32 || s.N * s.H * s.W <= 2048);
}

index_t direct_workspace_floats(const Conv2dShape& s, ConvPass pass, int threads) {
  if (pass == ConvPass::backward_weight) {
    const BwSizes z = bw_sizes(s);
    const CheckedSize n = CheckedSize(std::max(1, threads)) * z.slice;
    return n.ok() ? n.value() : -1;
  }
  Conv2dShape t = s;
  index_t extra = 0;
  if (pass == ConvPass::backward_data) {
    if (!transposed(s, t)) return 0;
    extra = flipped_floats(s);
  }
  const Plan p = make_plan(t);
  const int T = std::max(1, threads);
  const CheckedSize n = CheckedSize(extra) + CheckedSize(T) * slice_floats(p);
  return n.ok() ? n.value() : -1;
}

bool direct_forward(const Conv2dShape& s, const float* x, const float* w, const float* b, float* y, bool relu,
                    float* workspace, index_t workspace_floats) {
  return run(s, x, w, b, y, relu, workspace, workspace_floats);
}

bool direct_backward_data(const Conv2dShape& s, const float* grad_out, const float* w, float* grad_x,
                          float* workspace, index_t workspace_floats) {
  Conv2dShape t;
  if (!transposed(s, t)) return false;
  const index_t wf = flipped_floats(s);
  if (workspace_floats < wf) return false;
  // wt[g][c][k][R-1-r][S-1-t] = w[g*Kg + k][c][r][t]: C/groups <-> K/groups within each group.
  float* wt = align64(workspace);
  const index_t Cg = s.C / s.groups, Kg = s.K / s.groups, RS = s.R * s.S;
  for (index_t g = 0; g < s.groups; ++g)
    for (index_t c = 0; c < Cg; ++c)
      for (index_t k = 0; k < Kg; ++k) {
        const float* src = w + ((g * Kg + k) * Cg + c) * RS;
        float* dst = wt + ((g * Cg + c) * Kg + k) * RS;
        for (index_t i = 0; i < RS; ++i) dst[i] = src[RS - 1 - i];
      }
  return run(t, grad_out, wt, nullptr, grad_x, false, workspace + wf, workspace_floats - wf);
}

}  // namespace fastlayers::cpu
