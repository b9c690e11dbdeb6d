// pad on the GPU: a thread per output element forward, a thread per input element (gather) backward.
// Index type: int32 when every flat index of the call fits in 30 bits (integer division is several
// times cheaper in 32 bits), else int64. The kernels are bandwidth-bound copies with a few divisions
// per element.
#include <cstdint>

#include "cuda/check.h"
#include "cuda/launch.h"
#include "cuda/pad.h"
#include "cuda/pad_kernels.cuh"

namespace fastlayers::cuda {
namespace {

using namespace pad_detail;

index_t count(const index_t* sizes, int rank) {
  index_t n = 1;
  for (int d = 0; d < rank; ++d) n *= sizes[d];
  return n;
}

bool fits_int32(const PadGeometry& g) {
  const index_t limit = index_t(1) << 30;
  if (count(g.in, g.rank) >= limit || count(g.out, g.rank) >= limit) return false;
  for (int d = 0; d < g.rank; ++d)
    if (g.lo[d] >= limit || g.lo[d] <= -limit) return false;
  return true;
}

PadGeometry as_rank4(const PadGeometry& g) {
  PadGeometry g4;
  g4.rank = 4;
  g4.mode = g.mode;
  const int shift = 4 - g.rank;
  for (int d = 0; d < 4; ++d) {
    const bool real = d >= shift;
    g4.in[d] = real ? g.in[d - shift] : 1;
    g4.out[d] = real ? g.out[d - shift] : 1;
    g4.lo[d] = real ? g.lo[d - shift] : 0;
  }
  return g4;
}

}  // namespace

void pad_forward(const float* x, float* y, const PadGeometry& g, float value, cudaStream_t stream) {
  const index_t n = count(g.out, g.rank);
  if (n == 0) return;
  if (fits_int32(g))
    pad_forward_kernel<std::int32_t><<<grid_for(n), kThreadsPerBlock, 0, stream>>>(
        x, y, narrow<std::int32_t>(g), static_cast<std::int32_t>(n), value);
  else
    pad_forward_kernel<std::int64_t><<<grid_for(n), kThreadsPerBlock, 0, stream>>>(
        x, y, narrow<std::int64_t>(g), static_cast<std::int64_t>(n), value);
  check_launch("pad");
}

void pad_backward(const float* grad_out, float* grad_in, const PadGeometry& g, cudaStream_t stream) {
  if (g.mode == kPadConstant) {
    PadGeometry inv = g;
    for (int d = 0; d < g.rank; ++d) {
      inv.in[d] = g.out[d];
      inv.out[d] = g.in[d];
      inv.lo[d] = -g.lo[d];
    }
    pad_forward(grad_out, grad_in, inv, 0.0f, stream);
    return;
  }
  if (g.rank > 4) throw std::invalid_argument("pad_backward: non-constant modes take at most 4 dimensions");
  const PadGeometry g4 = as_rank4(g);
  const index_t n = count(g4.in, 4);
  if (n == 0) return;
  if (fits_int32(g4))
    pad_backward_gather_kernel<std::int32_t><<<grid_for(n), kThreadsPerBlock, 0, stream>>>(
        grad_out, grad_in, narrow<std::int32_t>(g4), static_cast<std::int32_t>(n));
  else
    pad_backward_gather_kernel<std::int64_t><<<grid_for(n), kThreadsPerBlock, 0, stream>>>(
        grad_out, grad_in, narrow<std::int64_t>(g4), static_cast<std::int64_t>(n));
  check_launch("pad_backward");
}

}  // namespace fastlayers::cuda
