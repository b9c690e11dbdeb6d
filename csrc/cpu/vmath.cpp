// Baseline (SSE2 on x86-64) build of the vmath loops, and the run-time choice between ISAs.
#include "cpu/cpu_features.h"
#include "cpu/vmath_loops.h"

namespace fastlayers::cpu {

const VmathKernels& vmath_kernels_generic() {
  static const VmathKernels k = make_vmath_kernels();
  return k;
}

#if !(defined(__x86_64__) || defined(_M_X64))
// No ISA objects off x86-64 (CMakeLists.txt drops them): the baseline serves every level.
const VmathKernels& vmath_kernels_avx2() { return vmath_kernels_generic(); }
const VmathKernels& vmath_kernels_avx512() { return vmath_kernels_generic(); }
#endif

const VmathKernels& vmath_kernels() {
  switch (active_isa()) {
    case Isa::avx512: return vmath_kernels_avx512();
    case Isa::avx2: return vmath_kernels_avx2();
    default: return vmath_kernels_generic();
  }
}

}  // namespace fastlayers::cpu
