// The batch-norm loops compiled with the AVX512 flags (CMakeLists.txt); chosen by batch_norm_kernels().
#include "cpu/batch_norm_loops.h"

namespace fastlayers::cpu {

const BatchNormKernels& batch_norm_kernels_avx512() {
  static const BatchNormKernels k = make_batch_norm_kernels();
  return k;
}

}  // namespace fastlayers::cpu
