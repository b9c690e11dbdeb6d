#include <algorithm>

#include "cuda/elementwise.h"
#include "cuda/elementwise_kernels.cuh"
#include "cuda/map.h"

namespace fastlayers::cuda {
namespace {
struct Add {
  __device__ float operator()(float a, float b) const { return a + b; }
};

template <int kOp>
void broadcast(const float* a, const float* b, float* y, int ndim, const index_t* shape,
               const index_t* sa, const index_t* sb, float alpha, cudaStream_t stream) {
  index_t n = 1;
  for (int k = 0; k < ndim; ++k) n *= shape[k];
  if (n <= 0) return;
  const unsigned grid = grid_for(n);
  if (ndim == 1) {
    detail::broadcast1_kernel<kOp><<<grid, kThreadsPerBlock, 0, stream>>>(n, a, sa[0], b, sb[0], y, alpha);
  } else if (ndim == 2) {
    detail::broadcast2_kernel<kOp><<<grid, kThreadsPerBlock, 0, stream>>>(
        n, shape[1], a, sa[0], sa[1], b, sb[0], sb[1], y, alpha);
  } else {
    detail::BroadcastGeom g{};
    g.ndim = ndim;
    for (int k = 0; k < ndim; ++k) {
      g.shape[k] = shape[k];
      g.sa[k] = sa[k];
      g.sb[k] = sb[k];
    }
    detail::broadcast_kernel<kOp><<<grid, kThreadsPerBlock, 0, stream>>>(n, g, a, b, y, alpha);
  }
  check_launch(kOp == detail::kBinaryAdd ? "add" : "mul");
}
}  // namespace

void add_forward(const float* a, const float* b, float* y, index_t n, cudaStream_t stream) {
  map2(a, b, y, n, Add{}, stream, "add");
}

void binary_broadcast_forward(int op, const float* a, const float* b, float* y, int ndim,
                              const index_t* shape, const index_t* a_strides,
                              const index_t* b_strides, float alpha, cudaStream_t stream) {
  if (ndim <= 0 || ndim > kMaxBroadcastDims) return;
  if (op == detail::kBinaryAdd)
    broadcast<detail::kBinaryAdd>(a, b, y, ndim, shape, a_strides, b_strides, alpha, stream);
  else
    broadcast<detail::kBinaryMul>(a, b, y, ndim, shape, a_strides, b_strides, alpha, stream);
}

void sum_broadcast(const float* g, float* out, int ndim, const index_t* shape,
                   const index_t* out_strides, float alpha, cudaStream_t stream) {
  if (ndim <= 0 || ndim > kMaxBroadcastDims) return;
  detail::SumGeom s{};
  index_t gstride[kMaxBroadcastDims], acc = 1;
  for (int k = ndim - 1; k >= 0; --k) {
    gstride[k] = acc;
    acc *= shape[k];
  }
  if (acc <= 0) return;
  s.kept_count = s.reduced_count = 1;
  for (int k = 0; k < ndim - 1; ++k) {
    if (out_strides[k]) {
      s.ksize[s.nk] = shape[k];
      s.kg[s.nk] = gstride[k];
      s.ko[s.nk] = out_strides[k];
      s.kept_count *= shape[k];
      ++s.nk;
    } else {
      s.rsize[s.nr] = shape[k];
      s.rg[s.nr] = gstride[k];
      s.reduced_count *= shape[k];
      ++s.nr;
    }
  }
  s.inner = shape[ndim - 1];
  if (out_strides[ndim - 1]) {
    detail::sum_kept_inner_kernel<<<grid_for(s.kept_count * s.inner), kThreadsPerBlock, 0, stream>>>(
        s, g, out, alpha);
  } else {
    const unsigned blocks = static_cast<unsigned>(std::min<index_t>(s.kept_count, 65535LL * 8));
    detail::sum_reduced_inner_kernel<<<blocks, detail::kSumThreads, 0, stream>>>(s, g, out, alpha);
  }
  check_launch("sum_broadcast");
}

}  // namespace fastlayers::cuda
