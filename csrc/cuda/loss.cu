// Loss launchers (kernels in loss_kernels.cuh). Reductions use the caller's workspace for their
// partial sums (no allocation per call); grids are functions of the sizes only (deterministic).
#include <algorithm>
#include <limits>

#include "cuda/check.h"
#include "cuda/launch.h"
#include "cuda/loss.h"
#include "cuda/loss_kernels.cuh"

namespace fastlayers::cuda {
namespace {

using namespace detail;

constexpr index_t kWorkPerBlock = 8192;  // elements of work per pass-1 block

// Pass-1 blocks of a reduction: a function of the problem size only, so the sum is reproducible.
unsigned partial_blocks(index_t items, index_t work_per_item, index_t items_per_block_min = 1) {
  const index_t total = items * std::max<index_t>(work_per_item, 1);
  index_t blocks = (total + kWorkPerBlock - 1) / kWorkPerBlock;
  blocks = std::min<index_t>(blocks, (items + items_per_block_min - 1) / items_per_block_min);
  return static_cast<unsigned>(std::clamp<index_t>(blocks, 1, kMaxPartials));
}

// 1 / n for "mean"; an empty mean is 0 * inf = NaN, as on the CPU
double mean_scale(index_t n) {
  return n > 0 ? 1.0 / static_cast<double>(n) : std::numeric_limits<double>::infinity();
}

// Runs pass 1 (launch(blocks, fin)) and, when it used more than one block, pass 2.
template <class Launch>
void reduce(unsigned blocks, double* workspace, float* out, int reduction, double scale,
            bool by_weight, cudaStream_t stream, const char* op, Launch launch) {
  const Finish fin{workspace, out, reduction, scale, by_weight};
  launch(blocks, fin);
  check_launch(op);
  if (blocks > 1) {
    sum_partials_kernel<<<1, kReduceThreads, 0, stream>>>(workspace, static_cast<int>(blocks), fin);
    check_launch(op);
  }
}

template <class Term>
void elementwise_forward(Term term, float* out, index_t n, int reduction, double* workspace,
                         cudaStream_t stream, const char* op) {
  if (reduction == loss::kNone) {
    if (n <= 0) return;
    elementwise_none_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(n, term, out);
    check_launch(op);
    return;
  }
  // n == 0 still writes the loss: 0 ("sum") or NaN ("mean", 0 * inf)
  reduce(partial_blocks(std::max<index_t>(n, 0), 1), workspace, out, reduction,
         reduction == loss::kMean ? mean_scale(n) : 1.0, false, stream, op,
         [&](unsigned blocks, const Finish& fin) {
           elementwise_sum_kernel<<<blocks, kReduceThreads, 0, stream>>>(std::max<index_t>(n, 0), term, fin);
         });
}

template <class Term>
void elementwise_backward(Term term, const float* grad_out, float* grad, index_t n, int reduction,
                          cudaStream_t stream, const char* op) {
  if (n <= 0) return;
  const double k = reduction == loss::kMean ? mean_scale(n) : 1.0;
  elementwise_grad_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(
      n, term, grad_out, reduction == loss::kNone, k, grad);
  check_launch(op);
}

template <class F>
PairTerm<F> pair(const float* a, const float* b, F f, std::int64_t* status = nullptr,
                 std::int64_t code = 0) {
  return PairTerm<F>{a, b, f, status, code};
}

}  // namespace

// ---------------------------------------------------------------- elementwise losses

#define FL_ELEMENTWISE_LAUNCHERS(name, make_term)                                                   \
  void name##_forward(const float* a, const float* b, float* out, index_t n, double param,        \
                      int reduction, double* workspace, std::int64_t* status, cudaStream_t stream) { \
    (void)param;                                                                                   \
    (void)status;                                                                                  \
    elementwise_forward(make_term, out, n, reduction, workspace, stream, #name);                   \
  }                                                                                                \
  void name##_backward(const float* a, const float* b, const float* grad_out, float* grad,        \
                       index_t n, double param, int reduction, std::int64_t* status,              \
                       cudaStream_t stream) {                                                      \
    (void)param;                                                                                   \
    (void)status;                                                                                  \
    elementwise_backward(make_term, grad_out, grad, n, reduction, stream, #name "_backward");      \
  }

FL_ELEMENTWISE_LAUNCHERS(mse_loss, pair(a, b, loss::Mse{}))
FL_ELEMENTWISE_LAUNCHERS(l1_loss, pair(a, b, loss::L1{}))
FL_ELEMENTWISE_LAUNCHERS(smooth_l1_loss, pair(a, b, loss::SmoothL1{param}))
FL_ELEMENTWISE_LAUNCHERS(huber_loss, pair(a, b, loss::Huber{param}))
FL_ELEMENTWISE_LAUNCHERS(soft_margin_loss, pair(a, b, loss::SoftMargin{}))
FL_ELEMENTWISE_LAUNCHERS(hinge_embedding_loss, pair(a, b, loss::HingeEmbedding{param}))
FL_ELEMENTWISE_LAUNCHERS(logistic_loss, pair(a, b, loss::SoftMargin{}, status, loss::kStatusLogisticLabel))
FL_ELEMENTWISE_LAUNCHERS(hinge_loss, pair(a, b, loss::Hinge{param}, status, loss::kStatusHingeLabel))
#undef FL_ELEMENTWISE_LAUNCHERS

void bce_with_logits_forward(const float* logits, const float* target, const float* weight,
                             const float* pos_weight, float* out, index_t n, int reduction,
                             double* workspace, cudaStream_t stream) {
  elementwise_forward(BceTerm{logits, target, weight, pos_weight}, out, n, reduction, workspace, stream,
                      "binary_cross_entropy_with_logits");
}

void bce_with_logits_backward(const float* logits, const float* target, const float* weight,
                              const float* pos_weight, const float* grad_out, float* grad,
                              index_t n, int reduction, cudaStream_t stream) {
  elementwise_backward(BceTerm{logits, target, weight, pos_weight}, grad_out, grad, n, reduction,
                       stream, "binary_cross_entropy_with_logits_backward");
}

// ---------------------------------------------------------------- cross-entropy and nll

namespace {

bool use_block_team(index_t c) { return c > kWarpRowMax; }

// A thread per position (the positions kernels) for d > 1, and for rows too short to keep a warp's
// lanes busy (c <= kThreadRowMax): a warp team would leave most lanes idle and walk its rows one
// after another; a thread per row keeps 32 rows' loads in flight per warp.
bool thread_per_position(index_t c, index_t d) { return d != 1 || c <= kThreadRowMax; }

// Rows (d == 1): teams of a warp (8 rows per block) or of a whole block (1 row per block).
unsigned row_blocks(index_t n, index_t c, bool reduce) {
  const index_t per_block = use_block_team(c) ? 1 : kRowsPerBlock;
  if (reduce) return partial_blocks(n, c, per_block);
  const index_t blocks = (n + per_block - 1) / per_block;
  return static_cast<unsigned>(std::clamp<index_t>(blocks, 1, 65535LL * 8));
}

unsigned position_blocks(index_t positions, index_t c, bool reduce) {
  if (reduce) return partial_blocks(positions, c, kReduceThreads);
  return grid_for(std::max<index_t>(positions, 1), kReduceThreads);
}

ClassArgs class_args(const float* z, const std::int64_t* labels, const float* weight, index_t n,
                     index_t c, index_t d, std::int64_t ignore, double eps, int reduction,
                     double* workspace, std::int64_t* status, std::int64_t code,
                     cudaStream_t stream, const char* op) {
  const double* wsum = nullptr;
  if (eps > 0.0 && weight) {  // sum_j w_j on the device: no host read
    weight_sum_kernel<<<1, kReduceThreads, 0, stream>>>(weight, c, workspace + kWorkspaceWsum);
    check_launch(op);
    wsum = workspace + kWorkspaceWsum;
  }
  return ClassArgs{z, labels, weight, n, c, d, ignore, static_cast<float>(eps), wsum, reduction,
                   status, code};
}

// The backward's "mean" divisor: 1 / (summed weight of the non-ignored targets) into
// workspace[kWorkspaceWeight]; returns that slot.
const double* inverse_weight(const ClassArgs& A, double* workspace, cudaStream_t stream,
                             const char* op) {
  const index_t positions = A.n * A.d;
  const unsigned blocks = partial_blocks(positions, 1, kReduceThreads);
  target_weight_kernel<<<blocks, kReduceThreads, 0, stream>>>(A, workspace);
  check_launch(op);
  inverse_weight_kernel<<<1, kReduceThreads, 0, stream>>>(workspace, static_cast<int>(blocks),
                                                          workspace + kWorkspaceWeight);
  check_launch(op);
  return workspace + kWorkspaceWeight;
}

Upstream upstream(const ClassArgs& A, const float* grad_out, int reduction, double* workspace,
                  cudaStream_t stream, const char* op) {
  const double* inv = reduction == loss::kMean ? inverse_weight(A, workspace, stream, op) : nullptr;
  return Upstream{grad_out, inv, reduction == loss::kNone, 1.0};
}

}  // namespace

void softmax_cross_entropy_forward(const float* logits, const std::int64_t* labels,
                                   const float* weight, float* out, index_t n, index_t c, index_t d,
                                   std::int64_t ignore_index, double label_smoothing, int reduction,
                                   double* workspace, std::int64_t* status, cudaStream_t stream) {
  const char* op = "cross_entropy";
  const ClassArgs A = class_args(logits, labels, weight, n, c, d, ignore_index, label_smoothing,
                                 reduction, workspace, status, loss::kStatusCrossEntropyLabel,
                                 stream, op);
  const bool none = reduction == loss::kNone;
  if (none && n * d <= 0) return;
  float* per = none ? out : nullptr;
  auto launch = [&](unsigned blocks, const Finish& fin) {
    if (thread_per_position(c, d)) ce_positions_forward_kernel<<<blocks, kReduceThreads, 0, stream>>>(A, fin, per);
    else if (use_block_team(c)) ce_rows_forward_kernel<kTeamBlock><<<blocks, kTeamBlock, 0, stream>>>(A, fin, per);
    else ce_rows_forward_kernel<32><<<blocks, kTeamBlock, 0, stream>>>(A, fin, per);
  };
  const unsigned blocks = thread_per_position(c, d) ? position_blocks(n * d, c, !none) : row_blocks(n, c, !none);
  if (none) {
    launch(blocks, Finish{});
    check_launch(op);
    return;
  }
  reduce(blocks, workspace, out, reduction, 1.0, true, stream, op, launch);
}

void softmax_cross_entropy_backward(const float* logits, const std::int64_t* labels,
                                    const float* weight, const float* grad_out, float* grad,
                                    index_t n, index_t c, index_t d, std::int64_t ignore_index,
                                    double label_smoothing, int reduction, double* workspace,
                                    std::int64_t* status, cudaStream_t stream) {
  const char* op = "cross_entropy_backward";
  if (n * c * d <= 0) return;
  const ClassArgs A = class_args(logits, labels, weight, n, c, d, ignore_index, label_smoothing,
                                 reduction, workspace, status, loss::kStatusCrossEntropyLabel,
                                 stream, op);
  const Upstream up = upstream(A, grad_out, reduction, workspace, stream, op);
  if (thread_per_position(c, d))
    ce_positions_backward_kernel<<<position_blocks(n * d, c, false), kReduceThreads, 0, stream>>>(A, up, grad);
  else if (use_block_team(c))
    ce_rows_backward_kernel<kTeamBlock><<<row_blocks(n, c, false), kTeamBlock, 0, stream>>>(A, up, grad);
  else
    ce_rows_backward_kernel<32><<<row_blocks(n, c, false), kTeamBlock, 0, stream>>>(A, up, grad);
  check_launch(op);
}

void softmax_cross_entropy_prob_forward(const float* logits, const float* target,
                                        const float* weight, float* out, index_t n, index_t c,
                                        index_t d, double label_smoothing, int reduction,
                                        double* workspace, cudaStream_t stream) {
  const char* op = "cross_entropy";
  const ProbArgs A{logits, target, weight, n, c, d, static_cast<float>(label_smoothing), reduction};
  const bool none = reduction == loss::kNone;
  if (none && n * d <= 0) return;
  float* per = none ? out : nullptr;
  auto launch = [&](unsigned blocks, const Finish& fin) {
    if (thread_per_position(c, d)) ce_prob_positions_forward_kernel<<<blocks, kReduceThreads, 0, stream>>>(A, fin, per);
    else if (use_block_team(c)) ce_prob_rows_forward_kernel<kTeamBlock><<<blocks, kTeamBlock, 0, stream>>>(A, fin, per);
    else ce_prob_rows_forward_kernel<32><<<blocks, kTeamBlock, 0, stream>>>(A, fin, per);
  };
  const unsigned blocks = thread_per_position(c, d) ? position_blocks(n * d, c, !none) : row_blocks(n, c, !none);
  if (none) {
    launch(blocks, Finish{});
    check_launch(op);
    return;
  }
  reduce(blocks, workspace, out, reduction, mean_scale(n * d), false, stream, op, launch);
}

void softmax_cross_entropy_prob_backward(const float* logits, const float* target,
                                         const float* weight, const float* grad_out, float* grad,
                                         index_t n, index_t c, index_t d, double label_smoothing,
                                         int reduction, cudaStream_t stream) {
  const char* op = "cross_entropy_backward";
  if (n * c * d <= 0) return;
  const ProbArgs A{logits, target, weight, n, c, d, static_cast<float>(label_smoothing), reduction};
  const Upstream up{grad_out, nullptr, reduction == loss::kNone,
                    reduction == loss::kMean ? mean_scale(n * d) : 1.0};
  if (thread_per_position(c, d))
    ce_prob_positions_backward_kernel<<<position_blocks(n * d, c, false), kReduceThreads, 0, stream>>>(A, up, grad);
  else if (use_block_team(c))
    ce_prob_rows_backward_kernel<kTeamBlock><<<row_blocks(n, c, false), kTeamBlock, 0, stream>>>(A, up, grad);
  else
    ce_prob_rows_backward_kernel<32><<<row_blocks(n, c, false), kTeamBlock, 0, stream>>>(A, up, grad);
  check_launch(op);
}

void nll_loss_forward(const float* input, const std::int64_t* labels, const float* weight,
                      float* out, index_t n, index_t c, index_t d, std::int64_t ignore_index,
                      int reduction, double* workspace, std::int64_t* status, cudaStream_t stream) {
  const char* op = "nll_loss";
  const ClassArgs A{input, labels, weight, n, c, d, ignore_index, 0.0f, nullptr, reduction, status,
                    loss::kStatusNllLabel};
  const bool none = reduction == loss::kNone;
  if (none && n * d <= 0) return;
  float* per = none ? out : nullptr;
  auto launch = [&](unsigned blocks, const Finish& fin) {
    nll_forward_kernel<<<blocks, kReduceThreads, 0, stream>>>(A, fin, per);
  };
  const unsigned blocks = position_blocks(n * d, 1, !none);
  if (none) {
    launch(blocks, Finish{});
    check_launch(op);
    return;
  }
  reduce(blocks, workspace, out, reduction, 1.0, true, stream, op, launch);
}

void nll_loss_backward(const std::int64_t* labels, const float* weight, const float* grad_out,
                       float* grad, index_t n, index_t c, index_t d, std::int64_t ignore_index,
                       int reduction, double* workspace, std::int64_t* status, cudaStream_t stream) {
  const char* op = "nll_loss_backward";
  if (n * c * d <= 0) return;
  const ClassArgs A{nullptr, labels, weight, n, c, d, ignore_index, 0.0f, nullptr, reduction, status,
                    loss::kStatusNllLabel};
  const Upstream up = upstream(A, grad_out, reduction, workspace, stream, op);
  nll_backward_kernel<<<grid_for(n * c * d), kThreadsPerBlock, 0, stream>>>(A, up, grad);
  check_launch(op);
}

}  // namespace fastlayers::cuda
