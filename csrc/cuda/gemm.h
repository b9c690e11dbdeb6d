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

void sgemm(bool trans_a, bool trans_b, index_t M, index_t N, index_t K, float alpha,
           const float* A, index_t lda, const float* B, index_t ldb, float beta, float* C,
           index_t ldc, cudaStream_t stream);

// Which kernel runs: Auto picks by problem size (what sgemm does). The others force one path,
// for tests and the benchmark's cross-checks: Tile128 / Tile64 are the register-blocked,
// double-buffered kernels (float4 loads when lda/ldb and alignment allow, else their scalar-load
// variant), Tile16 the simple shared-memory kernel for small or thin problems, Reference one
// thread per output with a plain loop over K.
enum class SgemmPath : int { Auto = 0, Tile128 = 1, Tile64 = 2, Tile16 = 3, Reference = 4 };

void sgemm_path(SgemmPath path, bool trans_a, bool trans_b, index_t M, index_t N, index_t K,
                float alpha, const float* A, index_t lda, const float* B, index_t ldb, float beta,
                float* C, index_t ldc, cudaStream_t stream);

}  // namespace fastlayers::cuda
