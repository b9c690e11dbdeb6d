// The vmath loops compiled with the AVX512 flags (CMakeLists.txt); chosen by vmath_kernels().
#include "cpu/vmath_loops.h"

namespace fastlayers::cpu {

const VmathKernels& vmath_kernels_avx512() {
  static const VmathKernels k = make_vmath_kernels();
  return k;
}

}  // namespace fastlayers::cpu
