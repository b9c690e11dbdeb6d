// Per-channel bias over (N, C, inner) buffers, for the convolutions whose GEMM or Winograd pass does
// not fold the bias in (conv_transpose2d forward, conv3d / conv_transpose2d grad_b). OpenMP inside.
#pragma once
#include "common/types.h"

namespace fastlayers::cpu {

// y[n][c][i] += b[c] for i < inner.
void add_channel_bias(float* y, const float* b, index_t N, index_t C, index_t inner);

// gb[c] = sum over n and i of g[n][c][i]: sixteen float lanes per row (vectorised, pairwise-like
// accuracy), rows added in double, in a fixed order (the same bits for any thread count).
void channel_bias_grad(const float* g, float* gb, index_t N, index_t C, index_t inner);

}  // namespace fastlayers::cpu
