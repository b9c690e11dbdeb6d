// Softmax launchers: contiguous rows longer than a warp get a block each; everything else (short
// rows, strided rows) a thread per row. See softmax_kernels.cuh.
#include "cuda/check.h"
#include "cuda/launch.h"
#include "cuda/softmax.h"
#include "cuda/softmax_kernels.cuh"

namespace fastlayers::cuda {
namespace {

using namespace detail;

constexpr index_t kMaxGrid = 65535LL * 8;

bool block_per_row(index_t dim, index_t inner) { return inner == 1 && dim > 32; }

// Threads per row-block: a power of two, about one element per thread up to 256.
int row_threads(index_t dim) { return dim <= 128 ? 32 : (dim <= 1024 ? 128 : kSoftmaxMaxThreads); }

unsigned row_grid(index_t outer) { return static_cast<unsigned>(outer < kMaxGrid ? outer : kMaxGrid); }

template <bool LOG>
void forward(const float* x, float* y, index_t outer, index_t dim, index_t inner,
             cudaStream_t stream, const char* op) {
  if (outer <= 0 || dim <= 0 || inner <= 0) return;
  if (block_per_row(dim, inner))
    softmax_forward_rows_block<LOG><<<row_grid(outer), row_threads(dim), 0, stream>>>(x, y, outer, dim);
  else
    softmax_forward_rows_thread<LOG><<<grid_for(outer * inner), kThreadsPerBlock, 0, stream>>>(
        x, y, outer, dim, inner);
  check_launch(op);
}

template <bool LOG>
void backward(const float* g, const float* y, float* gx, index_t outer, index_t dim, index_t inner,
              cudaStream_t stream, const char* op) {
  if (outer <= 0 || dim <= 0 || inner <= 0) return;
  if (block_per_row(dim, inner))
    softmax_backward_rows_block<LOG><<<row_grid(outer), row_threads(dim), 0, stream>>>(g, y, gx, outer,
                                                                                      dim);
  else
    softmax_backward_rows_thread<LOG><<<grid_for(outer * inner), kThreadsPerBlock, 0, stream>>>(
        g, y, gx, outer, dim, inner);
  check_launch(op);
}

}  // namespace

void softmax_forward(const float* x, float* y, index_t outer, index_t dim, index_t inner,
                     cudaStream_t stream) {
  forward<false>(x, y, outer, dim, inner, stream, "softmax");
}
void softmax_backward(const float* grad_out, const float* y, float* grad_in, index_t outer,
                      index_t dim, index_t inner, cudaStream_t stream) {
  backward<false>(grad_out, y, grad_in, outer, dim, inner, stream, "softmax_backward");
}
void log_softmax_forward(const float* x, float* y, index_t outer, index_t dim, index_t inner,
                         cudaStream_t stream) {
  forward<true>(x, y, outer, dim, inner, stream, "log_softmax");
}
void log_softmax_backward(const float* grad_out, const float* y, float* grad_in, index_t outer,
                          index_t dim, index_t inner, cudaStream_t stream) {
  backward<true>(grad_out, y, grad_in, outer, dim, inner, stream, "log_softmax_backward");
}

}  // namespace fastlayers::cuda
