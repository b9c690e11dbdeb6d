// conv_transpose2d on the GPU: conv2d's backward-data (forward), forward (backward-data) and
// backward-weight with x and grad_out swapped (weight gradient), as csrc/cpu/conv_transpose.cpp. The
// bias is added by one elementwise pass; grad_b sums grad_out with conv2d's bias reduction kernel.
#include <cstdint>

#include "cuda/check.h"
#include "cuda/conv.h"
#include "cuda/conv3d_kernels.cuh"
#include "cuda/conv_transpose.h"
#include "cuda/launch.h"

namespace fastlayers::cuda {

namespace {

ConvPass conv2d_pass(ConvPass pass) {
  switch (pass) {
    case ConvPass::forward: return ConvPass::backward_data;
    case ConvPass::backward_data: return ConvPass::forward;
    default: return ConvPass::backward_weight;
  }
}

}  // namespace

index_t conv_transpose2d_workspace_floats(const Conv2dShape& s, ConvPass pass, int threads) {
  return conv2d_workspace_floats(s, conv2d_pass(pass), threads);
}

bool conv_transpose2d_forward(const Conv2dShape& s, const float* x, const float* w, const float* b, float* y,
                              float* workspace, index_t workspace_floats, cudaStream_t stream) {
  conv2d_backward_data(s, x, w, y, workspace, workspace_floats, stream);
  const index_t total = s.N * s.C * s.H * s.W;
  if (b != nullptr && total > 0) {
    if (total < (index_t(1) << 30))
      conv3d_detail::add_channel_bias_kernel<std::int32_t><<<grid_for(total), kThreadsPerBlock, 0, stream>>>(
          y, b, static_cast<std::int32_t>(s.C), static_cast<std::int32_t>(s.H * s.W), static_cast<std::int32_t>(total));
    else
      conv3d_detail::add_channel_bias_kernel<std::int64_t><<<grid_for(total), kThreadsPerBlock, 0, stream>>>(
          y, b, s.C, s.H * s.W, total);
    check_launch("conv_transpose2d (bias)");
  }
  return true;
}

bool conv_transpose2d_backward_data(const Conv2dShape& s, const float* grad_out, const float* w, float* grad_x,
                                    float* workspace, index_t workspace_floats, cudaStream_t stream) {
  return conv2d_forward(s, grad_out, w, nullptr, grad_x, workspace, workspace_floats, stream);
}

bool conv_transpose2d_backward_weight(const Conv2dShape& s, const float* grad_out, const float* x, float* grad_w,
                                      float* grad_b, float* workspace, index_t workspace_floats, cudaStream_t stream) {
  conv2d_backward_weight(s, x, grad_out, grad_w, nullptr, workspace, workspace_floats, stream);
  if (grad_b != nullptr && s.C > 0) {
    const index_t blocks = s.C < 65535 * 8 ? s.C : 65535 * 8;
    if (s.N * s.C * s.H * s.W < (index_t(1) << 30))
      conv3d_gemm::bias_grad_kernel<std::int32_t><<<static_cast<unsigned>(blocks), 256, 0, stream>>>(
          grad_out, grad_b, static_cast<std::int32_t>(s.N), static_cast<std::int32_t>(s.C),
          static_cast<std::int32_t>(s.H * s.W));
    else
      conv3d_gemm::bias_grad_kernel<std::int64_t><<<static_cast<unsigned>(blocks), 256, 0, stream>>>(
          grad_out, grad_b, s.N, s.C, s.H * s.W);
    check_launch("conv_transpose2d_backward_weight (bias)");
  }
  return true;
}

}  // namespace fastlayers::cuda
