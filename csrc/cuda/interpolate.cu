// interpolate on the GPU: a thread per output (forward) or per input (backward, gather) element,
// int32 indices when every flat index of the call fits in 30 bits.
#include <cstdint>

#include "cuda/check.h"
#include "cuda/interpolate.h"
#include "cuda/interpolate_kernels.cuh"
#include "cuda/launch.h"

namespace fastlayers::cuda {
namespace {

using namespace interp_detail;

bool fits_int32(const InterpGeometry& g) {
  const index_t limit = index_t(1) << 30;
  return g.planes * g.in_h * g.in_w < limit && g.planes * g.out_h * g.out_w < limit;
}

}  // namespace

void interpolate_forward(const float* x, float* y, const InterpGeometry& g, cudaStream_t stream) {
  const index_t n = g.planes * g.out_h * g.out_w;
  if (n == 0) return;
  if (fits_int32(g))
    interpolate_forward_kernel<std::int32_t><<<grid_for(n), kThreadsPerBlock, 0, stream>>>(
        x, y, narrow<std::int32_t>(g), static_cast<std::int32_t>(n));
  else
    interpolate_forward_kernel<std::int64_t><<<grid_for(n), kThreadsPerBlock, 0, stream>>>(
        x, y, narrow<std::int64_t>(g), static_cast<std::int64_t>(n));
  check_launch("interpolate");
}

void interpolate_backward(const float* grad_out, float* grad_in, const InterpGeometry& g, cudaStream_t stream) {
  const index_t n = g.planes * g.in_h * g.in_w;
  if (n == 0) return;
  if (fits_int32(g))
    interpolate_backward_kernel<std::int32_t><<<grid_for(n), kThreadsPerBlock, 0, stream>>>(
        grad_out, grad_in, narrow<std::int32_t>(g), static_cast<std::int32_t>(n));
  else
    interpolate_backward_kernel<std::int64_t><<<grid_for(n), kThreadsPerBlock, 0, stream>>>(
        grad_out, grad_in, narrow<std::int64_t>(g), static_cast<std::int64_t>(n));
  check_launch("interpolate_backward");
}

}  // namespace fastlayers::cuda
