// The current device's DeviceProfile (device_profile.h), read once per device and cached: the
// attribute queries are cheap but not free, and the launchers ask on every call. Only included by
// .cu files.
#pragma once
#include <cuda_runtime_api.h>

#include <mutex>

#include "cuda/check.h"
#include "cuda/device_profile.h"

namespace fastlayers::cuda {

inline DeviceProfile read_device_profile(int device, const char* op) {
  DeviceProfile p;
  auto attr = [&](cudaDeviceAttr a, int& out) {
    int v = 0;
    check(cudaDeviceGetAttribute(&v, a, device), op);
    if (v > 0) out = v;
  };
  attr(cudaDevAttrMultiProcessorCount, p.sms);
  attr(cudaDevAttrMaxThreadsPerMultiProcessor, p.max_threads_per_sm);
  attr(cudaDevAttrMaxBlocksPerMultiprocessor, p.max_blocks_per_sm);
  attr(cudaDevAttrMaxSharedMemoryPerMultiprocessor, p.smem_per_sm);
  attr(cudaDevAttrMaxRegistersPerMultiprocessor, p.regs_per_sm);
  return p;
}

inline DeviceProfile current_device_profile(const char* op) {
  constexpr int kMaxDevices = 64;
  static std::once_flag once[kMaxDevices];
  static DeviceProfile cache[kMaxDevices];
  int device = 0;
  check(cudaGetDevice(&device), op);
  if (device < 0 || device >= kMaxDevices) return read_device_profile(device, op);
  std::call_once(once[device], [&] { cache[device] = read_device_profile(device, op); });
  return cache[device];
}

}  // namespace fastlayers::cuda
