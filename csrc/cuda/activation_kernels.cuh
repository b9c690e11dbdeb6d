// Activation functors, run by the shared elementwise map (map_kernels.cuh), with the same
// formulas as csrc/cpu/activation.cpp (full-precision expf/tanhf, no fast math). In a header of
// their own so csrc/cuda/host_emulation/ can check them against double-precision formulas.
#pragma once
#include <cmath>

namespace fastlayers::cuda::detail {


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


}  // namespace fastlayers::cuda::detail
