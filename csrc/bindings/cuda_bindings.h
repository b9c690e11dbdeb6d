// One bind_* function per op family; each lives in csrc/bindings/cuda_<family>.cpp.
// Every kernel binding takes buffer addresses, sizes and, last, the CuPy stream (an address).
#pragma once
#include <cuda_runtime_api.h>
#include <pybind11/pybind11.h>

#include <cstdint>

#include "bindings/pointers.h"

namespace fastlayers::bindings {

inline cudaStream_t stream_of(Address address) { return reinterpret_cast<cudaStream_t>(address.value); }

void bind_cuda_runtime(pybind11::module_& m);
void bind_cuda_activation(pybind11::module_& m);
void bind_cuda_pool(pybind11::module_& m);
void bind_cuda_conv(pybind11::module_& m);
void bind_cuda_conv3d(pybind11::module_& m);  // conv3d, conv_transpose2d, 3-D pools
void bind_cuda_gemm(pybind11::module_& m);
void bind_cuda_elementwise(pybind11::module_& m);
void bind_cuda_matmul(pybind11::module_& m);
void bind_cuda_pad(pybind11::module_& m);
void bind_cuda_concat(pybind11::module_& m);
void bind_cuda_interpolate(pybind11::module_& m);
void bind_cuda_loss(pybind11::module_& m);
void bind_cuda_optim(pybind11::module_& m);
void bind_cuda_dropout(pybind11::module_& m);

}  // namespace fastlayers::bindings
