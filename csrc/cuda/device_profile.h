// What the tile choosers (conv_plan.h, gemm_plan.h) need to know about a GPU. Host code only, no
// CUDA API: the defaults describe an H100 / H200 (sm_90, 132 SMs), which is what
// benchmarks/cuda_plan.py plans for; the launchers read the current device (device_info.h).
#pragma once

namespace fastlayers::cuda {

struct DeviceProfile {
  int sms = 132;                    // multiprocessors
  int max_threads_per_sm = 2048;
  int max_blocks_per_sm = 32;
  int smem_per_sm = 228 * 1024;     // bytes of shared memory per SM
  int regs_per_sm = 65536;
};

}  // namespace fastlayers::cuda
