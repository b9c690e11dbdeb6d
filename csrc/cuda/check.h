// Error checks for the CUDA launchers: every CUDA call and every launch is checked, and a failure
// becomes std::runtime_error (RuntimeError in Python) naming the op and CUDA's message.
#pragma once
#include <cuda_runtime_api.h>

#include <stdexcept>
#include <string>

namespace fastlayers::cuda {

inline void check(cudaError_t status, const char* op) {
  if (status != cudaSuccess)
    throw std::runtime_error(std::string("fastlayers.") + op + ": CUDA error: " +
                             cudaGetErrorName(status) + ": " + cudaGetErrorString(status));
}

// Call right after a <<<...>>> launch.
inline void check_launch(const char* op) { check(cudaGetLastError(), op); }

}  // namespace fastlayers::cuda
