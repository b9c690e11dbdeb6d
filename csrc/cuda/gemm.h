// Single-precision GEMM on the GPU, row-major like NumPy (same contract as csrc/cpu/gemm.h):
//   C[M x N] = alpha * op(A) * op(B) + beta * C,  op(X) = X or X^T,
// A is M x K (K x M when trans_a) with leading dimension lda, B is K x N (N x K when trans_b),
// C is M x N. beta == 0 means C is write-only (old contents, even NaN, ignored). K == 0 gives
// C = beta * C. All pointers are device pointers; the work is queued on `stream`.
// Kept free of CUDA syntax so the bindings (host compiler, pybind11) can include it.
#pragma once
#include <cuda_runtime_api.h>

#include "common/types.h"

namespace fastlayers::cuda {

// The workspace (device floats, caller-owned: the Python layer takes it from CuPy's pool) holds
// the partial sums of a split-K plan; with less than sgemm_workspace_floats asks for, fewer splits
// run (none without one). Results do not depend on alignment or leading dimensions; the split
// count (and so the summation order) depends on the shape and on the device's SM count.
void sgemm(bool trans_a, bool trans_b, index_t M, index_t N, index_t K, float alpha,
           const float* A, index_t lda, const float* B, index_t ldb, float beta, float* C,
           index_t ldc, float* workspace, index_t workspace_floats, cudaStream_t stream);

// Floats of workspace sgemm's plan wants on the current device (0: no split).
index_t sgemm_workspace_floats(bool trans_a, bool trans_b, index_t M, index_t N, index_t K);

// One kernel path forced (for tests and the benchmark's cross-checks): the ids of gemm_plan.h
// (0 auto, 1 tile128, 2 tile64, 3 tile32, 4 reference, 5 tile16x64, 6 tile16x8, 7 narrow), and
// `splits` K splits (0: the plan's choice for that path; needs splits * M * N floats of
// workspace, else fewer run). Throws std::invalid_argument for an unknown path or splits > 32.
void sgemm_path(int path, index_t splits, bool trans_a, bool trans_b, index_t M, index_t N, index_t K,
                float alpha, const float* A, index_t lda, const float* B, index_t ldb, float beta,
                float* C, index_t ldc, float* workspace, index_t workspace_floats, cudaStream_t stream);

}  // namespace fastlayers::cuda
