#include "bindings/cuda_bindings.h"

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "fastlayers CUDA kernels. Private: use the functions in fastlayers.";
  using namespace fastlayers::bindings;
  bind_cuda_runtime(m);
  bind_cuda_activation(m);
  bind_cuda_pool(m);
  bind_cuda_conv(m);
  bind_cuda_conv3d(m);
  bind_cuda_gemm(m);
  bind_cuda_elementwise(m);
  bind_cuda_matmul(m);
  bind_cuda_pad(m);
  bind_cuda_concat(m);
  bind_cuda_interpolate(m);
  bind_cuda_loss(m);
  bind_cuda_optim(m);
  bind_cuda_dropout(m);
}
