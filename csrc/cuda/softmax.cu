// Softmax launchers: the dispatch of softmax_launch.h (thread per row up to 16 values, warp per row
// up to 1024, block per longer row, thread per column for a strided axis) on the caller's stream.
#include "cuda/softmax.h"
#include "cuda/softmax_launch.h"
#include "cuda/stream_launch.h"

namespace fastlayers::cuda {

void softmax_forward(const float* x, float* y, index_t outer, index_t dim, index_t inner,
                     cudaStream_t stream) {
  StreamLaunch launch{stream};
  softmax_dispatch::forward<false>(launch, x, y, outer, dim, inner, "softmax");
}
void softmax_backward(const float* grad_out, const float* y, float* grad_in, index_t outer,
                      index_t dim, index_t inner, cudaStream_t stream) {
  StreamLaunch launch{stream};
  softmax_dispatch::backward<false>(launch, grad_out, y, grad_in, outer, dim, inner, "softmax_backward");
}
void log_softmax_forward(const float* x, float* y, index_t outer, index_t dim, index_t inner,
                         cudaStream_t stream) {
  StreamLaunch launch{stream};
  softmax_dispatch::forward<true>(launch, x, y, outer, dim, inner, "log_softmax");
}
void log_softmax_backward(const float* grad_out, const float* y, float* grad_in, index_t outer,
                          index_t dim, index_t inner, cudaStream_t stream) {
  StreamLaunch launch{stream};
  softmax_dispatch::backward<true>(launch, grad_out, y, grad_in, outer, dim, inner, "log_softmax_backward");
}

}  // namespace fastlayers::cuda
