// Portable 2x2 stride-2 row kernels (also the tails of the AVX2 ones).
#include "cpu/pool_2x2.h"

namespace fastlayers::cpu::generic {

void max_pool_2x2_row(const float* r0, const float* r1, float* y, index_t ow) {
  for (index_t j = 0; j < ow; ++j) {
    float m = r0[2 * j];
    if (pool_beats(r0[2 * j + 1], m)) m = r0[2 * j + 1];
    if (pool_beats(r1[2 * j], m)) m = r1[2 * j];
    if (pool_beats(r1[2 * j + 1], m)) m = r1[2 * j + 1];
    y[j] = m;
  }
}

void avg_pool_2x2_row(const float* r0, const float* r1, float* y, index_t ow) {
  for (index_t j = 0; j < ow; ++j) y[j] = ((r0[2 * j] + r0[2 * j + 1]) + (r1[2 * j] + r1[2 * j + 1])) * 0.25f;
}

void max_pool_2x2_backward_row(const float* g, const float* r0, const float* r1, float* gi0, float* gi1,
                               index_t ow) {
  for (index_t j = 0; j < ow; ++j) {
    // Window cells in scan order: 0 = r0[2j], 1 = r0[2j+1], 2 = r1[2j], 3 = r1[2j+1].
    int at = 0;
    float m = r0[2 * j];
    if (pool_beats(r0[2 * j + 1], m)) { m = r0[2 * j + 1]; at = 1; }
    if (pool_beats(r1[2 * j], m)) { m = r1[2 * j]; at = 2; }
    if (pool_beats(r1[2 * j + 1], m)) at = 3;
    const float gv = g[j];
    gi0[2 * j] = at == 0 ? gv : 0.0f;
    gi0[2 * j + 1] = at == 1 ? gv : 0.0f;
    gi1[2 * j] = at == 2 ? gv : 0.0f;
    gi1[2 * j + 1] = at == 3 ? gv : 0.0f;
  }
}

void avg_pool_2x2_backward_row(const float* g, float* gi0, float* gi1, index_t ow) {
  for (index_t j = 0; j < ow; ++j) {
    const float v = g[j] * 0.25f;
    gi0[2 * j] = gi0[2 * j + 1] = gi1[2 * j] = gi1[2 * j + 1] = v;
  }
}

}  // namespace fastlayers::cpu::generic
