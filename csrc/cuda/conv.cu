// 2-D convolution on the GPU as implicit GEMM: one kernel template, three "ops" that say how to read
// the GEMM's A and B operands straight from the NCHW tensors and where a result goes.
//
//   pass             M (rows)   columns          reduction        A[m][kk]            B[kk][col]
//   forward          K/groups   N*P*Q            C/groups*R*S     w (contiguous)      x patch (gathered)
//   backward_data    C/groups   N*H*W            K/groups*R*S     w (permuted)        grad_out at the
//                                                                                     (p, q) that touch
//                                                                                     (h, w), else 0
//   backward_weight  K/groups   C/groups*R*S     N*P*Q (split)    grad_out            x patch (gathered)
//
// A block computes a 64 x 64 output tile with 256 threads, each a 4 x 4 register tile (rows
// ty + 16*i, columns tx + 16*j: conflict-free shared-memory reads). Per step of 16 along the
// reduction, every thread loads 4 A and 4 B values into shared memory, bounds-checked (padding,
// tile edges, stride divisibility give 0). Groups (and, for backward_weight, reduction splits) run
// along grid z. Every output is written exactly once, accumulated in a fixed order: deterministic.
//
// Index type: int32 when every tensor and index of the call stays below 2^30 (integer division is
// much cheaper), int64 otherwise.
#include <cstdint>
#include <stdexcept>
#include <string>

#include "cuda/check.h"
#include "cuda/conv.h"
#include "cuda/conv_kernels.cuh"
#include "cuda/launch.h"

namespace fastlayers::cuda {
namespace {

using namespace conv_detail;

// Whether int32 indices are safe: every tensor (workspace included), padded extent, stride and
// dilated kernel extent below 2^30, so every index the ops form (and the grid-stride steps) fits.
bool fits_int32(const Conv2dShape& s, index_t workspace_used) {
  const index_t lim = index_t(1) << 30;
  const index_t values[] = {s.N * s.C * s.H * s.W,
                            s.N * s.K * s.P * s.Q,
                            s.K * (s.C / s.groups) * s.R * s.S,
                            workspace_used,
                            s.H + 2 * s.pad_h,
                            s.W + 2 * s.pad_w,
                            s.stride_h,
                            s.stride_w,
                            s.dil_h * s.R,
                            s.dil_w * s.S,
                            s.C,
                            s.K};
  for (index_t v : values)
    if (v >= lim) return false;
  return true;
}

// ------------------------------------------------------------------------------------ launchers

index_t ceil_div(index_t a, index_t b) { return (a + b - 1) / b; }

template <class I, class Op>
void launch_gemm(const Op& op, index_t M, index_t ncol, index_t kred, index_t groups, index_t splits,
                 index_t k_chunk, cudaStream_t stream, const char* name) {
  if (M <= 0 || ncol <= 0 || groups <= 0) return;
  const index_t gx = ceil_div(ncol, kBN), gy = ceil_div(M, kBM);
  if (gx > 0x7fffffff || gy > kMaxGridY)
    throw std::runtime_error(std::string("fastlayers.") + name + ": GEMM of " + std::to_string(M) + " x " +
                             std::to_string(ncol) + " is too large for one launch");
  const index_t gz = groups * splits < kMaxGridZ ? groups * splits : kMaxGridZ;
  const dim3 grid(static_cast<unsigned>(gx), static_cast<unsigned>(gy), static_cast<unsigned>(gz));
  implicit_gemm_kernel<Op, I><<<grid, kGemmThreads, 0, stream>>>(
      op, static_cast<I>(M), static_cast<I>(ncol), static_cast<I>(kred), static_cast<I>(groups),
      static_cast<I>(splits), static_cast<I>(k_chunk));
  check_launch(name);
}

// How many ways backward_weight splits its reduction over N*P*Q: enough blocks to fill a large GPU
// (~1024), each split still at least 512 terms long, at most 256 splits. A function of the shape
// only, so the summation order does not depend on the device or on the workspace handed in.
index_t weight_splits(const Conv2dShape& s) {
  const index_t kred = s.N * s.P * s.Q;
  if (kred <= 0) return 1;
  const index_t Kg = s.K / s.groups, crs = (s.C / s.groups) * s.R * s.S;
  const index_t tiles = ceil_div(Kg, kBM) * ceil_div(crs, kBN) * s.groups;
  index_t splits = ceil_div(1024, tiles);
  const index_t by_length = kred / 512 > 1 ? kred / 512 : 1;
  if (splits > by_length) splits = by_length;
  if (splits > 256) splits = 256;
  return splits > 1 ? splits : 1;
}

template <class I>
void forward_impl(const Conv2dShape& s, const float* x, const float* w, const float* b, float* y,
                  cudaStream_t stream) {
  const Dims<I> d = dims_of<I>(s);
  const ForwardOp<I> op{x, w, b, y, d};
  const index_t kred = s.C / s.groups * s.R * s.S;
  launch_gemm<I>(op, s.K / s.groups, s.N * s.P * s.Q, kred, s.groups, 1, kred, stream, "conv2d");
}

template <class I>
void backward_data_impl(const Conv2dShape& s, const float* go, const float* w, float* gx, cudaStream_t stream) {
  const Dims<I> d = dims_of<I>(s);
  const BackwardDataOp<I> op{go, w, gx, d};
  const index_t kred = s.K / s.groups * s.R * s.S;
  launch_gemm<I>(op, s.C / s.groups, s.N * s.H * s.W, kred, s.groups, 1, kred, stream, "conv2d_backward_data");
}

template <class I>
void backward_weight_impl(const Conv2dShape& s, const float* go, const float* x, float* gw, float* gb,
                          float* ws, index_t splits, cudaStream_t stream) {
  const Dims<I> d = dims_of<I>(s);
  const index_t kred = s.N * s.P * s.Q, w_count = s.K * (s.C / s.groups) * s.R * s.S;
  // Each split covers a multiple of the 16-deep reduction step; trailing splits may be empty (they
  // then write zeros, which the sum ignores).
  const index_t k_chunk = kred > 0 ? ceil_div(ceil_div(kred, splits), kBK) * kBK : kBK;
  const BackwardWeightOp<I> op{go, x, splits > 1 ? ws : gw, d};
  launch_gemm<I>(op, s.K / s.groups, (s.C / s.groups) * s.R * s.S, kred, s.groups, splits, k_chunk, stream,
                 "conv2d_backward_weight");
  if (splits > 1 && w_count > 0) {
    sum_splits_kernel<I><<<grid_for(w_count), kThreadsPerBlock, 0, stream>>>(ws, gw, static_cast<I>(w_count),
                                                                             static_cast<I>(splits));
    check_launch("conv2d_backward_weight (sum of splits)");
  }
  if (gb != nullptr && s.K > 0) {
    const index_t blocks = s.K < 65535 * 8 ? s.K : 65535 * 8;
    bias_grad_kernel<I><<<static_cast<unsigned>(blocks), 256, 0, stream>>>(
        go, gb, static_cast<I>(s.N), static_cast<I>(s.K), static_cast<I>(s.P * s.Q));
    check_launch("conv2d_backward_weight (bias)");
  }
}

}  // namespace

index_t conv2d_workspace_floats(const Conv2dShape& s, ConvPass pass, int /*threads*/) {
  if (pass != ConvPass::backward_weight) return 0;
  const index_t splits = weight_splits(s);
  return splits > 1 ? splits * s.K * (s.C / s.groups) * s.R * s.S : 0;
}

bool conv2d_forward(const Conv2dShape& s, const float* x, const float* w, const float* b, float* y,
                    float* /*workspace*/, index_t /*workspace_floats*/, cudaStream_t stream) {
  if (s.N * s.K * s.P * s.Q == 0) return true;
  if (fits_int32(s, 0))
    forward_impl<std::int32_t>(s, x, w, b, y, stream);
  else
    forward_impl<std::int64_t>(s, x, w, b, y, stream);
  return true;
}

bool conv2d_backward_data(const Conv2dShape& s, const float* grad_out, const float* w, float* grad_x,
                          float* /*workspace*/, index_t /*workspace_floats*/, cudaStream_t stream) {
  if (s.N * s.C * s.H * s.W == 0) return true;
  if (fits_int32(s, 0))
    backward_data_impl<std::int32_t>(s, grad_out, w, grad_x, stream);
  else
    backward_data_impl<std::int64_t>(s, grad_out, w, grad_x, stream);
  return true;
}

bool conv2d_backward_weight(const Conv2dShape& s, const float* grad_out, const float* x, float* grad_w,
                            float* grad_b, float* workspace, index_t workspace_floats, cudaStream_t stream) {
  const index_t w_count = s.K * (s.C / s.groups) * s.R * s.S;
  if (w_count == 0) return true;
  index_t splits = weight_splits(s);
  if (workspace == nullptr || splits * w_count > workspace_floats)  // less workspace: fewer splits
    splits = workspace == nullptr ? 1 : workspace_floats / w_count;
  if (splits < 1) splits = 1;
  if (fits_int32(s, splits > 1 ? splits * w_count : 0))
    backward_weight_impl<std::int32_t>(s, grad_out, x, grad_w, grad_b, workspace, splits, stream);
  else
    backward_weight_impl<std::int64_t>(s, grad_out, x, grad_w, grad_b, workspace, splits, stream);
  return true;
}

}  // namespace fastlayers::cuda
