// Elementwise binary ops on the CPU over n contiguous floats. Same names as the CUDA twin.
#pragma once
#include "common/types.h"

namespace fastlayers::cpu {

// y = a + b (residual connections); y may alias a or b.
void add_forward(const float* a, const float* b, float* y, index_t n);

}  // namespace fastlayers::cpu
