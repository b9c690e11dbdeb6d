// Batched GEMM on the GPU for matmul: the same contract as csrc/cpu/matmul.h plus sgemm's split-K
// workspace (see gemm.h; sized by sgemm_workspace_floats for one entry) and the stream. The batch
// geometry arrives as host arrays; one sgemm launch per batch entry, queued in order on the
// stream (so entries that add into a shared C matrix are ordered). Free of CUDA syntax.
#pragma once
#include <cuda_runtime_api.h>

#include "common/types.h"

namespace fastlayers::cuda {

constexpr int kMaxBatchDims = 8;

void sgemm_batched(bool trans_a, bool trans_b, index_t M, index_t N, index_t K, float alpha,
                   const float* A, index_t lda, const float* B, index_t ldb, float beta, float* C,
                   index_t ldc, int batch_ndim, const index_t* batch_shape, const index_t* a_strides,
                   const index_t* b_strides, const index_t* c_strides, float* workspace,
                   index_t workspace_floats, cudaStream_t stream);

}  // namespace fastlayers::cuda
