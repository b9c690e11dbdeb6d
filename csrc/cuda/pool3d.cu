// 3-D pooling on the GPU (pool3d_kernels.cuh has the kernels and how they work). int32 indices when
// every flat index and padded extent stays below 2^30, else int64 (as pool.cu).
#include <cstdint>

#include "cuda/check.h"
#include "cuda/launch.h"
#include "cuda/pool3d.h"
#include "cuda/pool3d_kernels.cuh"

namespace fastlayers::cuda {
namespace {

using namespace pool3d_detail;

index_t out_count(const Pool3dGeometry& g) { return g.planes * g.od * g.oh * g.ow; }
index_t in_count(const Pool3dGeometry& g) { return g.planes * g.d * g.h * g.w; }

bool fits_int32(const Pool3dGeometry& g) {
  const index_t lim = index_t(1) << 30;
  const index_t values[] = {in_count(g), out_count(g), g.d + 2 * g.pd + g.kd * g.dd, g.h + 2 * g.ph + g.kh * g.dh,
                            g.w + 2 * g.pw + g.kw * g.dw, g.sd * g.od, g.sh * g.oh, g.sw * g.ow};
  for (index_t v : values)
    if (v >= lim) return false;
  return true;
}

template <class Launch>
void dispatch(const Pool3dGeometry& g, index_t n, Launch launch) {
  if (fits_int32(g))
    launch(narrow3<std::int32_t>(g), static_cast<std::int32_t>(n));
  else
    launch(narrow3<std::int64_t>(g), static_cast<std::int64_t>(n));
}

}  // namespace

void max_pool3d_forward(const float* x, float* y, std::int64_t* indices, const Pool3dGeometry& g,
                        cudaStream_t stream) {
  const index_t n = out_count(g);
  if (n == 0 || in_count(g) == 0) return;
  dispatch(g, n, [&](auto geo, auto count) {
    max3_forward_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(x, y, indices, geo, count);
  });
  check_launch("max_pool3d");
}

void max_pool3d_backward(const float* grad_out, const float* x, float* grad_in, const Pool3dGeometry& g,
                         cudaStream_t stream) {
  const index_t n = in_count(g);
  if (n == 0) return;
  dispatch(g, n, [&](auto geo, auto count) {
    max3_backward_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(grad_out, x, grad_in, geo, count);
  });
  check_launch("max_pool3d_backward");
}

void max_pool3d_backward_indices(const float* grad_out, const std::int64_t* indices, float* grad_in,
                                 const Pool3dGeometry& g, cudaStream_t stream) {
  const index_t n = in_count(g);
  if (n == 0) return;
  dispatch(g, n, [&](auto geo, auto count) {
    max3_backward_indices_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(grad_out, indices, grad_in, geo,
                                                                                count);
  });
  check_launch("max_pool3d_backward");
}

void avg_pool3d_forward(const float* x, float* y, const Pool3dGeometry& g, bool count_include_pad,
                        index_t divisor_override, cudaStream_t stream) {
  const index_t n = out_count(g);
  if (n == 0 || in_count(g) == 0) return;
  dispatch(g, n, [&](auto geo, auto count) {
    avg3_forward_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(x, y, geo, count, count_include_pad,
                                                                       static_cast<std::int64_t>(divisor_override));
  });
  check_launch("avg_pool3d");
}

void avg_pool3d_backward(const float* grad_out, float* grad_in, const Pool3dGeometry& g, bool count_include_pad,
                         index_t divisor_override, cudaStream_t stream) {
  const index_t n = in_count(g);
  if (n == 0) return;
  dispatch(g, n, [&](auto geo, auto count) {
    avg3_backward_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(grad_out, grad_in, geo, count, count_include_pad,
                                                                        static_cast<std::int64_t>(divisor_override));
  });
  check_launch("avg_pool3d_backward");
}

}  // namespace fastlayers::cuda
