// Loss launchers: the forwards run the two-pass reduction of loss_kernels.cuh; the partial sums
// (at most kMaxPartials doubles) live in a stream-ordered allocation (cudaMallocAsync, freed
// with cudaFreeAsync on the same stream), so concurrent streams never share a workspace.
#include "cuda/check.h"
#include "cuda/launch.h"
#include "cuda/loss.h"
#include "cuda/loss_kernels.cuh"

namespace fastlayers::cuda {
namespace {

using namespace detail;

constexpr index_t kMaxPartials = 1024;
constexpr index_t kWorkPerBlock = 8192;  // elements of work (n * work per term) per pass-1 block

// Pass-1 blocks: a function of the problem size only, so the sum is reproducible.
index_t partial_blocks(index_t n, index_t work) {
  const index_t total = n * (work > 0 ? work : 1);
  const index_t blocks = (total + kWorkPerBlock - 1) / kWorkPerBlock;
  return blocks < 1 ? 1 : (blocks > kMaxPartials ? kMaxPartials : blocks);
}

template <class Term>
void reduce_terms(index_t n, index_t work, Term term, float* loss, double scale, cudaStream_t stream,
                  const char* op) {
  if (n < 0) n = 0;  // n == 0 still writes loss[0] = 0 * scale, as the CPU does
  const index_t blocks = partial_blocks(n, work);
  if (blocks == 1) {
    sum_terms_kernel<<<1, kReduceThreads, 0, stream>>>(n, term, nullptr, loss, scale);
    check_launch(op);
    return;
  }
  double* partial = nullptr;
  check(cudaMallocAsync(reinterpret_cast<void**>(&partial), blocks * sizeof(double), stream), op);
  sum_terms_kernel<<<static_cast<unsigned>(blocks), kReduceThreads, 0, stream>>>(n, term, partial,
                                                                                 loss, scale);
  cudaError_t status = cudaGetLastError();
  if (status == cudaSuccess) {
    sum_partials_kernel<<<1, kReduceThreads, 0, stream>>>(partial, static_cast<int>(blocks), loss,
                                                          scale);
    status = cudaGetLastError();
  }
  const cudaError_t freed = cudaFreeAsync(partial, stream);
  check(status, op);
  check(freed, op);
}

}  // namespace

void mse_loss_forward(const float* pred, const float* target, float* loss, index_t n, double scale,
                      cudaStream_t stream) {
  reduce_terms(n, 1, MseTerm{pred, target}, loss, scale, stream, "mse_loss");
}
void mse_loss_backward(const float* pred, const float* target, float* grad, index_t n, double scale,
                       cudaStream_t stream) {
  if (n <= 0) return;
  mse_backward_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(pred, target, grad, n,
                                                                    static_cast<float>(2.0 * scale));
  check_launch("mse_loss_backward");
}

void bce_with_logits_forward(const float* logits, const float* target, float* loss, index_t n,
                             double scale, cudaStream_t stream) {
  reduce_terms(n, 1, BceTerm{logits, target}, loss, scale, stream, "binary_cross_entropy_with_logits");
}
void bce_with_logits_backward(const float* logits, const float* target, float* grad, index_t n,
                              double scale, cudaStream_t stream) {
  if (n <= 0) return;
  bce_backward_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(logits, target, grad, n, scale);
  check_launch("binary_cross_entropy_with_logits_backward");
}

void logistic_loss_forward(const float* scores, const float* labels, float* loss, index_t n,
                           double scale, cudaStream_t stream) {
  reduce_terms(n, 1, LogisticTerm{scores, labels}, loss, scale, stream, "logistic_loss");
}
void logistic_loss_backward(const float* scores, const float* labels, float* grad, index_t n,
                            double scale, cudaStream_t stream) {
  if (n <= 0) return;
  logistic_backward_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(scores, labels, grad, n, scale);
  check_launch("logistic_loss_backward");
}

void hinge_loss_forward(const float* scores, const float* labels, float* loss, index_t n,
                        double margin, double scale, cudaStream_t stream) {
  reduce_terms(n, 1, HingeTerm{scores, labels, margin}, loss, scale, stream, "hinge_loss");
}
void hinge_loss_backward(const float* scores, const float* labels, float* grad, index_t n,
                         double margin, double scale, cudaStream_t stream) {
  if (n <= 0) return;
  hinge_backward_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(scores, labels, grad, n,
                                                                      margin, scale);
  check_launch("hinge_loss_backward");
}

void softmax_cross_entropy_forward(const float* logits, const std::int64_t* labels, float* loss,
                                   index_t n, index_t c, double scale, cudaStream_t stream) {
  if (c <= 0) n = 0;  // no classes: nothing to sum (the op layer rejects this anyway)
  reduce_terms(n, c, SceTerm{logits, labels, c}, loss, scale, stream, "softmax_cross_entropy");
}
void softmax_cross_entropy_backward(const float* logits, const std::int64_t* labels, float* grad,
                                    index_t n, index_t c, double scale, cudaStream_t stream) {
  if (n <= 0 || c <= 0) return;
  sce_backward_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(logits, labels, grad, n, c, scale);
  check_launch("softmax_cross_entropy_backward");
}
void softmax_cross_entropy_prob_forward(const float* logits, const float* target, float* loss,
                                        index_t n, index_t c, double scale, cudaStream_t stream) {
  if (c <= 0) n = 0;
  reduce_terms(n, c, SceProbTerm{logits, target, c}, loss, scale, stream, "softmax_cross_entropy");
}
void softmax_cross_entropy_prob_backward(const float* logits, const float* target, float* grad,
                                         index_t n, index_t c, double scale, cudaStream_t stream) {
  if (n <= 0 || c <= 0) return;
  sce_prob_backward_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(logits, target, grad, n, c,
                                                                         scale);
  check_launch("softmax_cross_entropy_backward");
}

}  // namespace fastlayers::cuda
