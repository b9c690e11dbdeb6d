// Activation launchers: each runs a functor of activation_kernels.cuh through the shared
// elementwise map (map.h).
#include "cuda/activation.h"
#include "cuda/activation_kernels.cuh"
#include "cuda/map.h"

namespace fastlayers::cuda {
using namespace detail;

void relu_forward(const float* x, float* y, index_t n, cudaStream_t stream) {
  map1(x, y, n, Relu{}, stream, "relu");
}
void relu_backward(const float* grad_out, const float* x, float* grad_in, index_t n,
                   cudaStream_t stream) {
  map2(grad_out, x, grad_in, n, ReluGrad{}, stream, "relu_backward");
}
void leaky_relu_forward(const float* x, float* y, index_t n, float negative_slope,
                        cudaStream_t stream) {
  map1(x, y, n, LeakyRelu{negative_slope}, stream, "leaky_relu");
}
void leaky_relu_backward(const float* grad_out, const float* x, float* grad_in, index_t n,
                         float negative_slope, cudaStream_t stream) {
  map2(grad_out, x, grad_in, n, LeakyReluGrad{negative_slope}, stream, "leaky_relu_backward");
}
void sigmoid_forward(const float* x, float* y, index_t n, cudaStream_t stream) {
  map1(x, y, n, Sigmoid{}, stream, "sigmoid");
}
void sigmoid_backward(const float* grad_out, const float* y, float* grad_in, index_t n,
                      cudaStream_t stream) {
  map2(grad_out, y, grad_in, n, SigmoidGrad{}, stream, "sigmoid_backward");
}
void tanh_forward(const float* x, float* y, index_t n, cudaStream_t stream) {
  map1(x, y, n, Tanh{}, stream, "tanh");
}
void tanh_backward(const float* grad_out, const float* y, float* grad_in, index_t n,
                   cudaStream_t stream) {
  map2(grad_out, y, grad_in, n, TanhGrad{}, stream, "tanh_backward");
}
void sign_forward(const float* x, float* y, index_t n, cudaStream_t stream) {
  map1(x, y, n, Sign{}, stream, "sign");
}
void heaviside_forward(const float* x, float* y, index_t n, float value_at_zero,
                       cudaStream_t stream) {
  map1(x, y, n, Heaviside{value_at_zero}, stream, "heaviside");
}

}  // namespace fastlayers::cuda
