// One bind_* function per op family; each lives in csrc/bindings/cpu_<family>.cpp.
#pragma once
#include <pybind11/pybind11.h>

namespace fastlayers::bindings {

void bind_cpu_runtime(pybind11::module_& m);
void bind_cpu_gemm(pybind11::module_& m);
void bind_cpu_conv(pybind11::module_& m);
void bind_cpu_conv3d(pybind11::module_& m);  // conv3d and conv_transpose2d
void bind_cpu_pool(pybind11::module_& m);
void bind_cpu_pool3d(pybind11::module_& m);
void bind_cpu_activation(pybind11::module_& m);
void bind_cpu_loss(pybind11::module_& m);
void bind_cpu_dropout(pybind11::module_& m);
void bind_cpu_optim(pybind11::module_& m);
void bind_cpu_norm(pybind11::module_& m);
void bind_cpu_elementwise(pybind11::module_& m);
void bind_cpu_matmul(pybind11::module_& m);
void bind_cpu_pad(pybind11::module_& m);
void bind_cpu_concat(pybind11::module_& m);
void bind_cpu_interpolate(pybind11::module_& m);
void bind_cpu_probe(pybind11::module_& m);  // peak FLOP/s and bandwidth probes for the benchmarks
void bind_cpu_plan(pybind11::module_& m);   // the inference plan (csrc/cpu/plan/)
void bind_cpu_arena(pybind11::module_& m);  // the block cache for large arrays (csrc/cpu/arena.h)

}  // namespace fastlayers::bindings
