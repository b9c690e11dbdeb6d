#include "cpu/conv_transpose.h"

#include "cpu/channel_bias.h"
#include "cpu/conv.h"

namespace fastlayers::cpu {

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
                              float* workspace, index_t workspace_floats) {
  if (!conv2d_backward_data(s, x, w, y, workspace, workspace_floats)) return false;
  if (b != nullptr) add_channel_bias(y, b, s.N, s.C, s.H * s.W);
  return true;
}

bool conv_transpose2d_backward_data(const Conv2dShape& s, const float* grad_out, const float* w, float* grad_x,
                                    float* workspace, index_t workspace_floats) {
  return conv2d_forward(s, grad_out, w, nullptr, grad_x, workspace, workspace_floats);
}

bool conv_transpose2d_backward_weight(const Conv2dShape& s, const float* grad_out, const float* x, float* grad_w,
                                      float* grad_b, float* workspace, index_t workspace_floats) {
  // conv2d's grad_w = its grad_out (our x) correlated with its input (our grad_out); its grad_b
  // would sum our x, so ours is taken from grad_out separately.
  if (!conv2d_backward_weight(s, x, grad_out, grad_w, nullptr, workspace, workspace_floats)) return false;
  if (grad_b != nullptr) channel_bias_grad(grad_out, grad_b, s.N, s.C, s.H * s.W);
  return true;
}

}  // namespace fastlayers::cpu
