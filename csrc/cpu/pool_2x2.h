// Row kernels for the common 2x2 stride-2 unpadded pool, chosen at run time by csrc/cpu/pool.cpp:
// portable ones (pool_2x2.cpp) and AVX2 ones (pool_2x2_avx2.cpp). Each handles one output row:
// r0, r1 are the two input rows (2*ow floats used), y / g the ow outputs / output gradients,
// gi0, gi1 the two grad_in rows (2*ow floats written). Semantics as in pool.h.
#pragma once
#include "common/types.h"

namespace fastlayers::cpu {

namespace generic {
void max_pool_2x2_row(const float* r0, const float* r1, float* y, index_t ow);
void avg_pool_2x2_row(const float* r0, const float* r1, float* y, index_t ow);
void max_pool_2x2_backward_row(const float* g, const float* r0, const float* r1, float* gi0, float* gi1,
                               index_t ow);
void avg_pool_2x2_backward_row(const float* g, float* gi0, float* gi1, index_t ow);
}  // namespace generic

namespace avx2 {
void max_pool_2x2_row(const float* r0, const float* r1, float* y, index_t ow);
void avg_pool_2x2_row(const float* r0, const float* r1, float* y, index_t ow);
void max_pool_2x2_backward_row(const float* g, const float* r0, const float* r1, float* gi0, float* gi1,
                               index_t ow);
void avg_pool_2x2_backward_row(const float* g, float* gi0, float* gi1, index_t ow);
}  // namespace avx2

// Whether v displaces the running maximum in a row-major scan: a larger value or any NaN. Ties keep
// the first maximum; a window's gradient goes to its last NaN. This is PyTorch's CPU rule.
inline bool pool_beats(float v, float best) { return v > best || v != v; }

}  // namespace fastlayers::cpu
