#include "cpu/conv3d_slices.h"

#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "cpu/conv.h"
#include "cpu/conv_smallc.h"
#include "cpu/parallel.h"

namespace fastlayers::cpu {

namespace {

// Slices per conv2d call: their unfolded input and output about 64K floats (256 KiB, in L2), or
// FASTLAYERS_CONV3D_CHUNK floats (development knob, read once).
index_t chunk_floats() {
  static const index_t v = [] {
    const char* e = std::getenv("FASTLAYERS_CONV3D_CHUNK");
    const long n = e != nullptr ? std::atol(e) : 0;
    return n > 0 ? static_cast<index_t>(n) : index_t{1} << 16;
  }();
  return v;
}
constexpr index_t kAlign = 16;

index_t round_up(index_t a, index_t b) { return (a + b - 1) / b * b; }

struct Plan {
  Conv2dShape s2;      // the 2-D convolution of one chunk of slices (N = chunk)
  index_t chunk;       // output slices per conv2d call
  index_t chunks;      // per image
  index_t xs, ys, cw;  // floats: unfolded input, output (or grad_out) planes, conv2d workspace
  index_t gw;          // backward-weight: one grad_w
};

Conv2dShape slice_shape(const Conv3dShape& s, index_t n) {
  return Conv2dShape{n,   s.C * s.T, s.H,        s.W,        s.K,     s.R,     s.S,     s.P,
                     s.Q, s.stride_h, s.stride_w, s.pad_h, s.pad_w, s.dil_h, s.dil_w, s.groups};
}

Plan make_plan(const Conv3dShape& s, ConvPass pass, int threads) {
  Plan pl{};
  const index_t per = s.C * s.T * s.H * s.W + s.K * s.P * s.Q;
  pl.chunk = std::max<index_t>(1, std::min(s.OD, chunk_floats() / per));
  pl.chunks = (s.OD + pl.chunk - 1) / pl.chunk;
  pl.chunk = (s.OD + pl.chunks - 1) / pl.chunks;  // balanced
  pl.s2 = slice_shape(s, pl.chunk);
  pl.xs = round_up(pl.chunk * s.C * s.T * s.H * s.W, kAlign);
  pl.ys = round_up(pl.chunk * s.K * s.P * s.Q, kAlign);
  pl.cw = round_up(conv2d_workspace_floats(pl.s2, pass, threads), kAlign);
  pl.gw = pass == ConvPass::backward_weight ? round_up(s.K * (s.C / s.groups) * s.T * s.R * s.S, kAlign) : 0;
  return pl;
}

// Per thread: unfolded input, output planes, conv2d's workspace; backward-weight adds the thread's
// grad_w of one call and its running sum.
index_t slice_floats(const Plan& pl) { return pl.xs + pl.ys + pl.cw + 2 * pl.gw; }

// The threads over items the workspace allows (as conv.cpp's plan_threads).
int plan_threads(const Plan& pl, index_t items, index_t workspace_floats) {
  int T = static_cast<int>(std::max<index_t>(1, std::min<index_t>(max_threads(), items)));
  while (T > 1 && T * slice_floats(pl) > workspace_floats) --T;
  return slice_floats(pl) <= workspace_floats ? T : 0;
}

// xs[(j*C + c)*T + t] planes = x[n, c, (od0 + j)*sd - pd + t*dd] (zero in the depth padding), j < nj.
void unfold(const Conv3dShape& s, const float* x, index_t n, index_t od0, index_t nj, float* xs) {
  const index_t HW = s.H * s.W;
  for (index_t j = 0; j < nj; ++j)
    for (index_t c = 0; c < s.C; ++c)
      for (index_t t = 0; t < s.T; ++t) {
        const index_t id = (od0 + j) * s.stride_d - s.pad_d + t * s.dil_d;
        float* dst = xs + ((j * s.C + c) * s.T + t) * HW;
        if (id < 0 || id >= s.D)
          std::fill(dst, dst + HW, 0.0f);
        else
          std::memcpy(dst, x + ((n * s.C + c) * s.D + id) * HW, sizeof(float) * HW);
      }
}

// The adjoint: gx[n, c, id] += gxs planes (gx zeroed by the caller).
void fold_add(const Conv3dShape& s, const float* gxs, index_t n, index_t od0, index_t nj, float* gx) {
  const index_t HW = s.H * s.W;
  for (index_t j = 0; j < nj; ++j)
    for (index_t c = 0; c < s.C; ++c)
      for (index_t t = 0; t < s.T; ++t) {
        const index_t id = (od0 + j) * s.stride_d - s.pad_d + t * s.dil_d;
        if (id < 0 || id >= s.D) continue;
        const float* __restrict src = gxs + ((j * s.C + c) * s.T + t) * HW;
        float* __restrict dst = gx + ((n * s.C + c) * s.D + id) * HW;
#pragma omp simd
        for (index_t i = 0; i < HW; ++i) dst[i] += src[i];
      }
}

// Between a 3-D tensor's (n, k, od0..od0+nj) planes and a chunk's (j, k) planes.
void gather_out(const Conv3dShape& s, const float* y, index_t n, index_t od0, index_t nj, float* ys) {
  const index_t PQ = s.P * s.Q;
  for (index_t j = 0; j < nj; ++j)
    for (index_t k = 0; k < s.K; ++k)
      std::memcpy(ys + (j * s.K + k) * PQ, y + ((n * s.K + k) * s.OD + od0 + j) * PQ, sizeof(float) * PQ);
}

void scatter_out(const Conv3dShape& s, const float* ys, index_t n, index_t od0, index_t nj, float* y) {
  const index_t PQ = s.P * s.Q;
  for (index_t j = 0; j < nj; ++j)
    for (index_t k = 0; k < s.K; ++k)
      std::memcpy(y + ((n * s.K + k) * s.OD + od0 + j) * PQ, ys + (j * s.K + k) * PQ, sizeof(float) * PQ);
}

// Runs body(item, thread, slice) for items [0, items) split statically over T threads.
template <class Body>
void for_items(index_t items, int T, index_t slice, float* workspace, Body body) {
  if (T > 1) {
#pragma omp parallel num_threads(T)
    for (int t = omp_get_thread_num(); t < T; t += omp_get_num_threads())
      for (index_t i = items * t / T; i < items * (t + 1) / T; ++i) body(i, t, workspace + t * slice);
  } else {
    for (index_t i = 0; i < items; ++i) body(i, 0, workspace);
  }
}

int forced_mode() {
  const char* e = std::getenv("FASTLAYERS_CONV3D_SLICES");
  if (e == nullptr) return -1;
  if (std::strcmp(e, "0") == 0) return 0;
  if (std::strcmp(e, "1") == 0) return 1;
  return -1;
}

}  // namespace

// Forward where conv2d's direct kernel takes the slices: the kernel itself per (image, slice), its
// filters packed once per call, and its output written straight into the NCDHW output (channel
// planes OD*P*Q apart: no staging and copy-out); with one input channel, unit depth dilation and the
// slice's taps inside the volume, the T input planes are contiguous and read in place (no unfold).
// 1->32 5x5x5 32^3, 1 thread, CPU time: 8.2 -> 6.8 ms (PyTorch 7.9).
struct DirectPlan {
  Conv2dShape s1;        // one slice
  index_t shared, xs, sl;  // floats: packed filters and tap offsets (once), per thread unfold and kernel scratch
};

DirectPlan direct_plan(const Conv3dShape& s) {
  DirectPlan dp{};
  dp.s1 = slice_shape(s, 1);
  dp.shared = round_up(smallc_shared_floats(dp.s1, ConvPass::forward), kAlign);
  dp.xs = round_up(s.C * s.T * s.H * s.W, kAlign);
  dp.sl = round_up(smallc_slice_floats(dp.s1, ConvPass::forward), kAlign);
  return dp;
}

bool direct_forward_applies(const Conv3dShape& s) { return smallc_applies(slice_shape(s, 1), ConvPass::forward); }

bool direct_forward(const Conv3dShape& s, const float* x, const float* w, const float* b, float* y, float* workspace,
                    index_t workspace_floats) {
  const DirectPlan dp = direct_plan(s);
  const index_t items = s.N * s.OD, per = dp.xs + dp.sl;
  int T = static_cast<int>(std::max<index_t>(1, std::min<index_t>(omp_in_parallel() ? 1 : max_threads(),
                                                                    items)));
  while (T > 1 && dp.shared + T * per > workspace_floats) --T;
  if (dp.shared + per > workspace_floats) return false;
  smallc_prepare_forward(dp.s1, w, workspace);
  const index_t HW = s.H * s.W, ODPQ = s.OD * s.P * s.Q, Cg = s.C / s.groups, Kg = s.K / s.groups;
  for_items(items, T, per, workspace + dp.shared, [&](index_t item, int, float* ws) {
    const index_t n = item / s.OD, od = item % s.OD, id0 = od * s.stride_d - s.pad_d;
    const float* xin = x + (n * s.D + id0) * HW;  // used only when in place
    if (!(s.C == 1 && s.dil_d == 1 && id0 >= 0 && id0 + s.T <= s.D)) {
      unfold(s, x, n, od, 1, ws);
      xin = ws;
    }
    for (index_t grp = 0; grp < s.groups; ++grp)
      smallc_forward_image(dp.s1, xin + grp * Cg * s.T * HW, workspace, grp, b != nullptr ? b + grp * Kg : nullptr,
                           y + (n * s.K + grp * Kg) * ODPQ + od * s.P * s.Q, ws + dp.xs, false, ODPQ);
  });
  return true;
}

// Measured per pass at 1 thread (CPU time, FASTLAYERS_CONV3D_SLICES=0/1), against conv3d.cpp's
// implicit GEMM / im2col paths:
//   forward: faster wherever conv2d's direct kernel takes the slices (32->64 3x3x3 16^3 58 -> 38 ms,
//     1->32 5^3 32^3 10.4 -> 7.5, stride 2 9.7 -> 6.4, 3x1x1 12.0 -> 7.6, 3->64 1x7x7 s(1,2,2) 21.9 ->
//     10.4, 3->64 3x3x3 112^2 82 -> 61); 1x1x1 unit-stride layers are plain GEMMs on x (conv3d.cpp).
//   backward-weight: likewise where the direct kernel takes it (1->32 5^3 13.0 -> 9.2, 1x7x7 stem 16.5
//     -> 12.2); the GEMM path won where conv2d would run its own GEMM (3->64 3x3x3 112^2: 79 vs 100).
//   backward-data: faster (32->64 3x3x3 52 -> 44, 5^3 13.8 -> 10.2, stride 2 8.8 -> 7.9, 3x1x1 8.7 ->
//     7.5) except where conv2d runs it as a direct forward with few (C*T < 16) outputs per group,
//     stride 1 and a same-size output (3->64 3x3x3 112^2: 60 vs 136 ms).
bool slices_applies(const Conv3dShape& s, ConvPass pass) {
  if (s.T * s.R * s.S == 1 && is_plain(s)) return false;  // a plain GEMM on x (conv3d.cpp)
  const int mode = forced_mode();
  if (mode >= 0) return mode == 1;
  const Conv2dShape s2 = slice_shape(s, 1);
  if (pass == ConvPass::backward_data)
    return !((s.C / s.groups) * s.T < 16 && s.stride_h == 1 && s.stride_w == 1 && 10 * s.H * s.W <= 11 * s.P * s.Q);
  return smallc_applies(s2, pass);
}

index_t slices_workspace_floats(const Conv3dShape& s, ConvPass pass, int threads) {
  if (pass == ConvPass::forward && direct_forward_applies(s)) {
    const DirectPlan dp = direct_plan(s);
    return dp.shared + std::max<index_t>(1, std::min<index_t>(threads, s.N * s.OD)) * (dp.xs + dp.sl);
  }
  // Each thread runs conv2d single-threaded; backward-data with fewer images than threads runs one
  // thread with conv2d parallel inside, whose workspace is sized for `threads`.
  const int inner = pass == ConvPass::backward_data && s.N < threads ? threads : 1;
  const Plan pl = make_plan(s, pass, inner);
  const index_t items = pass == ConvPass::backward_data ? s.N : s.N * pl.chunks;
  const index_t T = std::max<index_t>(1, std::min<index_t>(threads, items));
  return (inner > 1 ? 1 : T) * slice_floats(pl);
}

bool slices_forward(const Conv3dShape& s, const float* x, const float* w, const float* b, float* y, float* workspace,
                    index_t workspace_floats) {
  if (direct_forward_applies(s)) return direct_forward(s, x, w, b, y, workspace, workspace_floats);
  const Plan pl = make_plan(s, ConvPass::forward, 1);
  const index_t items = s.N * pl.chunks;
  const int T = plan_threads(pl, items, workspace_floats);
  if (T == 0) return false;
  bool ok = true;
  for_items(items, T, slice_floats(pl), workspace, [&](index_t item, int, float* ws) {
    const index_t n = item / pl.chunks, od0 = (item % pl.chunks) * pl.chunk, nj = std::min(pl.chunk, s.OD - od0);
    float *xs = ws, *ys = ws + pl.xs, *cw = ys + pl.ys;
    unfold(s, x, n, od0, nj, xs);
    Conv2dShape s2 = pl.s2;
    s2.N = nj;
    if (!conv2d_forward(s2, xs, w, b, ys, cw, pl.cw)) ok = false;
    scatter_out(s, ys, n, od0, nj, y);
  });
  return ok;
}

bool slices_backward_data(const Conv3dShape& s, const float* grad_out, const float* w, float* grad_x, float* workspace,
                          index_t workspace_floats) {
  const int threads = omp_in_parallel() ? 1 : max_threads();
  const bool inner = s.N < threads;  // one image at a time, conv2d parallel inside
  const Plan pl = make_plan(s, ConvPass::backward_data, inner ? threads : 1);
  const int T = inner ? (slice_floats(pl) <= workspace_floats ? 1 : 0) : plan_threads(pl, s.N, workspace_floats);
  if (T == 0) return false;
  const index_t vol = s.C * s.D * s.H * s.W;
  bool ok = true;
  for_items(s.N, T, slice_floats(pl), workspace, [&](index_t n, int, float* ws) {
    float *xs = ws, *ys = ws + pl.xs, *cw = ys + pl.ys;
    std::fill(grad_x + n * vol, grad_x + (n + 1) * vol, 0.0f);
    for (index_t od0 = 0; od0 < s.OD; od0 += pl.chunk) {
      const index_t nj = std::min(pl.chunk, s.OD - od0);
      gather_out(s, grad_out, n, od0, nj, ys);
      Conv2dShape s2 = pl.s2;
      s2.N = nj;
      if (!conv2d_backward_data(s2, ys, w, xs, cw, pl.cw)) ok = false;
      fold_add(s, xs, n, od0, nj, grad_x);
    }
  });
  return ok;
}

bool slices_backward_weight(const Conv3dShape& s, const float* grad_out, const float* x, float* grad_w,
                            float* workspace, index_t workspace_floats) {
  const Plan pl = make_plan(s, ConvPass::backward_weight, 1);
  const index_t items = s.N * pl.chunks, gw_size = s.K * (s.C / s.groups) * s.T * s.R * s.S;
  const int T = plan_threads(pl, items, workspace_floats);
  if (T == 0) return false;
  const index_t slice = slice_floats(pl);
  bool ok = true;
  for_items(items, T, slice, workspace, [&](index_t item, int t, float* ws) {
    const index_t n = item / pl.chunks, od0 = (item % pl.chunks) * pl.chunk, nj = std::min(pl.chunk, s.OD - od0);
    float *xs = ws, *ys = ws + pl.xs, *cw = ys + pl.ys, *gw = cw + pl.cw, *acc = gw + pl.gw;
    unfold(s, x, n, od0, nj, xs);
    gather_out(s, grad_out, n, od0, nj, ys);
    Conv2dShape s2 = pl.s2;
    s2.N = nj;
    const bool first = item == items * t / T;
    if (!conv2d_backward_weight(s2, ys, xs, first ? acc : gw, nullptr, cw, pl.cw)) ok = false;
    if (!first)
      for (index_t i = 0; i < gw_size; ++i) acc[i] += gw[i];
  });
  // grad_w = the threads' sums in thread order.
  for (index_t i = 0; i < gw_size; ++i) {
    float v = workspace[pl.xs + pl.ys + pl.cw + pl.gw + i];
    for (int t = 1; t < T; ++t) v += workspace[t * slice + pl.xs + pl.ys + pl.cw + pl.gw + i];
    grad_w[i] = v;
  }
  return ok;
}

}  // namespace fastlayers::cpu
