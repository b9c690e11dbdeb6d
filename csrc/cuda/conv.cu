// 2-D convolution on the GPU: the dispatch of conv_launch.h (tile per shape from conv_plan.h,
// kernels in conv_kernels.cuh) run with a CUDA-stream launcher on the current device's profile.
#include "cuda/conv.h"
#include "cuda/conv_launch.h"
#include "cuda/device_info.h"
#include "cuda/stream_launch.h"

namespace fastlayers::cuda {

index_t conv2d_workspace_floats(const Conv2dShape& s, ConvPass pass, int /*threads*/) {
  if (pass != ConvPass::backward_weight) return 0;
  return conv_plan::weight_workspace_floats(s, conv_plan::weight_splits(s), conv_plan::bias_splits(s));
}

bool conv2d_forward(const Conv2dShape& s, const float* x, const float* w, const float* b, float* y,
                    float* /*workspace*/, index_t /*workspace_floats*/, cudaStream_t stream) {
  if (s.N * s.K * s.P * s.Q == 0) return true;
  StreamLaunch launch{stream};
  conv_dispatch::forward(launch, s, x, w, b, y, current_device_profile("conv2d"));
  return true;
}

bool conv2d_backward_data(const Conv2dShape& s, const float* grad_out, const float* w, float* grad_x,
                          float* /*workspace*/, index_t /*workspace_floats*/, cudaStream_t stream) {
  if (s.N * s.C * s.H * s.W == 0) return true;
  StreamLaunch launch{stream};
  conv_dispatch::backward_data(launch, s, grad_out, w, grad_x, current_device_profile("conv2d_backward_data"));
  return true;
}

bool conv2d_backward_weight(const Conv2dShape& s, const float* grad_out, const float* x, float* grad_w,
                            float* grad_b, float* workspace, index_t workspace_floats, cudaStream_t stream) {
  if (s.K * (s.C / s.groups) * s.R * s.S == 0) return true;
  StreamLaunch launch{stream};
  conv_dispatch::backward_weight(launch, s, grad_out, x, grad_w, grad_b, workspace, workspace_floats,
                                 current_device_profile("conv2d_backward_weight"));
  return true;
}

}  // namespace fastlayers::cuda
