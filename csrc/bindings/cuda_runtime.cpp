#include <cuda_runtime_api.h>
#include <pybind11/pybind11.h>

#include <string>

#include "bindings/cuda_bindings.h"

namespace py = pybind11;

namespace fastlayers::bindings {

void bind_cuda_runtime(py::module_& m) {
  // 0 when there is no driver or no device: importing and asking must never fail.
  m.def("device_count", [] {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
      cudaGetLastError();  // clear it so later CUDA calls start clean
      return 0;
    }
    return count;
  });
  m.def("device_name", [](int device) {
    cudaDeviceProp prop{};
    const cudaError_t status = cudaGetDeviceProperties(&prop, device);
    if (status != cudaSuccess)
      throw std::runtime_error(std::string("fastlayers.cuda.device_name: ") + cudaGetErrorString(status));
    return std::string(prop.name);
  });
  m.def("runtime_version", [] {
    int version = 0;
    cudaRuntimeGetVersion(&version);
    return version;
  });
}

}  // namespace fastlayers::bindings
