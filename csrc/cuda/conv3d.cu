// 3-D convolution on the GPU: conv2d's implicit-GEMM kernel with the 3-D operand ops of
// conv3d_kernels.cuh (the table there). Launch grid, index type and backward-weight splitting as
// conv.cu does for 2-D.
#include <cstdint>
#include <stdexcept>
#include <string>

#include "cuda/check.h"
#include "cuda/conv3d.h"
#include "cuda/conv3d_kernels.cuh"
#include "cuda/launch.h"

namespace fastlayers::cuda {
namespace {

using namespace conv3d_gemm;
using namespace conv3d_detail;

index_t ceil_div(index_t a, index_t b) { return (a + b - 1) / b; }

// int32 indices when every tensor (workspace included), padded extent, stride and dilated kernel
// extent stays below 2^30, as conv.cu's fits_int32.
bool fits_int32(const Conv3dShape& s, index_t workspace_used) {
  const index_t lim = index_t(1) << 30;
  const index_t values[] = {s.N * s.C * s.D * s.H * s.W, s.N * s.K * s.OD * s.P * s.Q,
                            s.K * (s.C / s.groups) * s.T * s.R * s.S, workspace_used,
                            s.D + 2 * s.pad_d, s.H + 2 * s.pad_h, s.W + 2 * s.pad_w,
                            s.stride_d, s.stride_h, s.stride_w, s.dil_d * s.T, s.dil_h * s.R, s.dil_w * s.S, s.C, s.K};
  for (index_t v : values)
    if (v >= lim) return false;
  return true;
}

// One implicit_gemm_kernel launch: a 64 x 64 tile per block, groups x splits along z.
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

// Ways to split backward-weight's reduction over N*OD*P*Q: ~1024 blocks in all, each split at least
// 512 terms long, at most 256 splits (conv.cu's rule). A function of the shape only.
index_t weight_splits(const Conv3dShape& s) {
  const index_t kred = s.N * s.OD * s.P * s.Q;
  if (kred <= 0) return 1;
  const index_t Kg = s.K / s.groups, ctrs = (s.C / s.groups) * s.T * s.R * s.S;
  const index_t tiles = ceil_div(Kg, kBM) * ceil_div(ctrs, kBN) * s.groups;
  index_t splits = ceil_div(1024, tiles);
  const index_t by_length = kred / 512 > 1 ? kred / 512 : 1;
  if (splits > by_length) splits = by_length;
  if (splits > 256) splits = 256;
  return splits > 1 ? splits : 1;
}

template <class I>
void forward_impl(const Conv3dShape& s, const float* x, const float* w, const float* b, float* y, cudaStream_t st) {
  const Dims3<I> d = dims3_of<I>(s);
  const index_t kred = s.C / s.groups * s.T * s.R * s.S;
  launch_gemm<I>(ForwardOp3<I>{x, w, b, y, d}, s.K / s.groups, s.N * s.OD * s.P * s.Q, kred, s.groups, 1, kred, st,
                 "conv3d");
}

template <class I>
void backward_data_impl(const Conv3dShape& s, const float* go, const float* w, float* gx, cudaStream_t st) {
  const Dims3<I> d = dims3_of<I>(s);
  const index_t kred = s.K / s.groups * s.T * s.R * s.S;
  launch_gemm<I>(BackwardDataOp3<I>{go, w, gx, d}, s.C / s.groups, s.N * s.D * s.H * s.W, kred, s.groups, 1, kred,
                 st, "conv3d_backward_data");
}

template <class I>
void backward_weight_impl(const Conv3dShape& s, const float* go, const float* x, float* gw, float* gb, float* ws,
                          index_t splits, cudaStream_t st) {
  const Dims3<I> d = dims3_of<I>(s);
  const index_t kred = s.N * s.OD * s.P * s.Q, ctrs = (s.C / s.groups) * s.T * s.R * s.S, w_count = s.K * ctrs;
  const index_t k_chunk = kred > 0 ? ceil_div(ceil_div(kred, splits), kBK) * kBK : kBK;
  launch_gemm<I>(BackwardWeightOp3<I>{go, x, splits > 1 ? ws : gw, d}, s.K / s.groups, ctrs, kred, s.groups, splits,
                 k_chunk, st, "conv3d_backward_weight");
  if (splits > 1 && w_count > 0) {
    sum_splits_kernel<I><<<grid_for(w_count), kThreadsPerBlock, 0, st>>>(ws, gw, static_cast<I>(w_count),
                                                                         static_cast<I>(splits));
    check_launch("conv3d_backward_weight (sum of splits)");
  }
  if (gb != nullptr && s.K > 0) {
    const index_t blocks = s.K < 65535 * 8 ? s.K : 65535 * 8;
    bias_grad_kernel<I><<<static_cast<unsigned>(blocks), 256, 0, st>>>(go, gb, static_cast<I>(s.N), static_cast<I>(s.K),
                                                                       static_cast<I>(s.OD * s.P * s.Q));
    check_launch("conv3d_backward_weight (bias)");
  }
}

}  // namespace

index_t conv3d_workspace_floats(const Conv3dShape& s, ConvPass pass, int /*threads*/) {
  if (pass != ConvPass::backward_weight) return 0;
  const index_t splits = weight_splits(s);
  return splits > 1 ? splits * s.K * (s.C / s.groups) * s.T * s.R * s.S : 0;
}

bool conv3d_forward(const Conv3dShape& s, const float* x, const float* w, const float* b, float* y,
                    float* /*workspace*/, index_t /*workspace_floats*/, cudaStream_t stream) {
  if (s.N * s.K * s.OD * s.P * s.Q == 0) return true;
  if (fits_int32(s, 0))
    forward_impl<std::int32_t>(s, x, w, b, y, stream);
  else
    forward_impl<std::int64_t>(s, x, w, b, y, stream);
  return true;
}

bool conv3d_backward_data(const Conv3dShape& s, const float* grad_out, const float* w, float* grad_x,
                          float* /*workspace*/, index_t /*workspace_floats*/, cudaStream_t stream) {
  if (s.N * s.C * s.D * s.H * s.W == 0) return true;
  if (fits_int32(s, 0))
    backward_data_impl<std::int32_t>(s, grad_out, w, grad_x, stream);
  else
    backward_data_impl<std::int64_t>(s, grad_out, w, grad_x, stream);
  return true;
}

bool conv3d_backward_weight(const Conv3dShape& s, const float* grad_out, const float* x, float* grad_w,
                            float* grad_b, float* workspace, index_t workspace_floats, cudaStream_t stream) {
  const index_t w_count = s.K * (s.C / s.groups) * s.T * s.R * s.S;
  if (w_count == 0) return true;
  index_t splits = weight_splits(s);
  if (workspace == nullptr || splits * w_count > workspace_floats)
    splits = workspace == nullptr ? 1 : workspace_floats / w_count;
  if (splits < 1) splits = 1;
  if (fits_int32(s, splits > 1 ? splits * w_count : 0))
    backward_weight_impl<std::int32_t>(s, grad_out, x, grad_w, grad_b, workspace, splits, stream);
  else
    backward_weight_impl<std::int64_t>(s, grad_out, x, grad_w, grad_b, workspace, splits, stream);
  return true;
}

}  // namespace fastlayers::cuda
