// Activation kernels: each is a functor run by the shared elementwise map (map_kernels.cuh),
// with the same formulas as csrc/cpu/activation.cpp (full-precision expf/tanhf, no fast math).
#include "cuda/activation.h"
#include "cuda/map.h"

namespace fastlayers::cuda {
namespace {

struct Relu {
  __device__ float operator()(float v) const { return v > 0.0f ? v : (v != v ? v : 0.0f); }  // NaN stays
};
struct ReluGrad {  // PyTorch's mask: x <= 0 -> 0, so a NaN input passes the gradient on
  __device__ float operator()(float g, float x) const { return x <= 0.0f ? 0.0f : g; }
};
struct LeakyRelu {
  float slope;
  __device__ float operator()(float v) const { return v > 0.0f ? v : v * slope; }  // NaN * s = NaN
};
struct LeakyReluGrad {  // at x == 0 the slope side, as PyTorch
  float slope;
  __device__ float operator()(float g, float x) const { return x > 0.0f ? g : g * slope; }
};
struct Sigmoid {  // exp(-|x|) never overflows; both branches are the same function
  __device__ float operator()(float v) const {
    const float e = expf(-fabsf(v));
    const float r = 1.0f / (1.0f + e);
    return v >= 0.0f ? r : (v != v ? v : e * r);
  }
};
struct SigmoidGrad {
  __device__ float operator()(float g, float y) const { return g * (y * (1.0f - y)); }
};
struct Tanh {
  __device__ float operator()(float v) const { return tanhf(v); }
};
struct TanhGrad {
  __device__ float operator()(float g, float y) const { return g * (1.0f - y * y); }
};
struct Sign {
  __device__ float operator()(float v) const {
    return v > 0.0f ? 1.0f : (v < 0.0f ? -1.0f : (v == 0.0f ? 0.0f : v));
  }
};
struct Heaviside {
  float at_zero;
  __device__ float operator()(float v) const {
    return v > 0.0f ? 1.0f : (v < 0.0f ? 0.0f : (v == 0.0f ? at_zero : v));
  }
};

}  // namespace

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
