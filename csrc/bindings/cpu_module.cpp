#include "bindings/cpu_bindings.h"

PYBIND11_MODULE(_cpu, m) {
  m.doc() = "fastlayers CPU kernels (OpenMP + SIMD). Private: use the functions in fastlayers.";
  using namespace fastlayers::bindings;
  bind_cpu_runtime(m);
  bind_cpu_gemm(m);
  bind_cpu_conv(m);
  bind_cpu_conv3d(m);
  bind_cpu_pool(m);
  bind_cpu_pool3d(m);
  bind_cpu_activation(m);
  bind_cpu_loss(m);
  bind_cpu_dropout(m);
  bind_cpu_optim(m);
  bind_cpu_norm(m);
  bind_cpu_elementwise(m);
  bind_cpu_matmul(m);
  bind_cpu_pad(m);
  bind_cpu_concat(m);
  bind_cpu_interpolate(m);
  bind_cpu_probe(m);
  bind_cpu_plan(m);
  bind_cpu_arena(m);
}
