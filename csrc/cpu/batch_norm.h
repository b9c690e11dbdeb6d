// Batch normalisation on the CPU over x viewed as (N, C, S): channels c, S = the spatial size
// (1 for (N, C) input). Same kernel names as csrc/cuda/batch_norm.h. The op layer
// (python/fastlayers/ops/norm.py) has validated shapes and values; N * S >= 2 in training.
//
// Statistics: one pass over x from memory, in memory order. Each contiguous piece (a run of S
// floats, cut to at most 16 KiB; or, for S < 64, a block of rows of a group of channels, per
// column) gets its mean and its sum of squared deviations from two passes over the piece while it
// is in cache, and the pieces are merged per channel in double with Chan's formula, so a mean of
// 1e4 with a variance of 1e-4 loses nothing to cancellation. Then one fused pass (normalise and
// affine map, or the gradient) streams through memory again. The pieces and the merge order are a
// function of the shape only: results do not depend on the thread count.
#pragma once
#include "common/types.h"

namespace fastlayers::cpu {

// Which statistics batch_norm_backward uses.
enum class BnStats : int {
  batch = 0,    // training: recomputed from x
  saved = 1,    // training: mean and invstd = 1/sqrt(biased var + eps) given (e.g. saved by a forward)
  running = 2,  // eval: running mean and running var given
};

// Training (training = true): normalises with the batch mean and biased variance and, when
// running_mean / running_var are not null, updates them in place:
//   running = (1 - momentum) * running + momentum * batch value (unbiased variance).
// Eval: normalises with running_mean / running_var (required). weight / bias may be null.
void batch_norm_forward(const float* x, float* y, const float* weight, const float* bias,
                        float* running_mean, float* running_var, index_t N, index_t C, index_t S,
                        bool training, float momentum, float eps);

// grad_x always; grad_weight / grad_bias (C floats each) only when not null (the op asks for them
// when weight is given). mean / var_or_invstd: null for BnStats::batch, (mean, invstd) for
// ::saved, (running mean, running var) for ::running. weight null means 1.
void batch_norm_backward(const float* grad_out, const float* x, const float* weight,
                         const float* mean, const float* var_or_invstd, int stats,
                         float* grad_x, float* grad_weight, float* grad_bias, index_t N, index_t C,
                         index_t S, float eps);

// w' = w * s[k], b' = (b - mean) * s + bias with s = weight / sqrt(var + eps): an eval-mode batch
// norm over the K output channels folded into the conv / linear before it. w is (K, per_k); b,
// weight, bias may be null (0, 1, 0).
void fold_batch_norm(const float* w, const float* b, const float* running_mean,
                     const float* running_var, const float* weight, const float* bias, float* w_out,
                     float* b_out, index_t K, index_t per_k, float eps);

// ---- loops over one contiguous piece or one row of columns, compiled once per ISA
// (batch_norm_loops.h); the driver takes the table for active_isa() once per call.
struct PieceSums {
  float m;     // the piece's mean from a float sum
  float d1;    // sum (x - m)
  float d2;    // sum (x - m)^2
  float sdy;   // sum dy            (0 without dy)
  float sdyx;  // sum dy * (x - m)  (0 without dy)
};

// Per-column coefficients for the column paths (S < 64): column j of a group belongs to channel
// c0 + j / S.
struct ColCoeffs {
  const float *m, *a, *b, *c;
};

struct BatchNormKernels {
  void (*run_moments)(const float* x, const float* dy, index_t L, PieceSums* out);  // dy may be null
  void (*col_sums)(const float* x, index_t rows, index_t ld, index_t W, float* s);
  void (*col_moments)(const float* x, const float* dy, index_t rows, index_t ld, index_t W,
                      const float* m, float* d1, float* d2, float* sdy, float* sdyx);
  void (*normalise_run)(const float* x, float* y, index_t L, float m, float a, float b);
  void (*normalise_cols)(const float* x, float* y, index_t W, const ColCoeffs* k);
  void (*backward_run)(const float* dy, const float* x, float* dx, index_t L, float a, float b, float m,
                       float c);
  void (*backward_cols)(const float* dy, const float* x, float* dx, index_t W, const ColCoeffs* k);
  void (*scale_run)(const float* dy, float* dx, index_t L, float a);
  void (*scale_cols)(const float* dy, float* dx, index_t W, const ColCoeffs* k);
};

const BatchNormKernels& batch_norm_kernels();  // for active_isa()
const BatchNormKernels& batch_norm_kernels_generic();
const BatchNormKernels& batch_norm_kernels_avx2();
const BatchNormKernels& batch_norm_kernels_avx512();

}  // namespace fastlayers::cpu
