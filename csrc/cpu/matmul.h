// Batched GEMM for matmul (torch.matmul semantics, ops/gemm.py): one sgemm per batch entry over a
// broadcast batch geometry. The op layer collapses the batch dimensions as for the elementwise
// ops (csrc/cpu/elementwise.h): batch_shape (at most kMaxBatchDims dimensions) and, per operand,
// its element strides between matrices along each dimension (0 where it is broadcast). For C a
// stride of 0 means several entries add into the same matrix (the backward of a broadcast
// operand): the caller zeroes C and passes beta = 1; the entries then run in order.
#pragma once
#include "common/types.h"

namespace fastlayers::cpu {

constexpr int kMaxBatchDims = 8;

// For every batch index b: C[b] = alpha * op(A[b]) * op(B[b]) + beta * C[b] (sgemm's contract).
void sgemm_batched(bool trans_a, bool trans_b, index_t M, index_t N, index_t K, float alpha,
                   const float* A, index_t lda, const float* B, index_t ldb, float beta, float* C,
                   index_t ldc, int batch_ndim, const index_t* batch_shape, const index_t* a_strides,
                   const index_t* b_strides, const index_t* c_strides);

}  // namespace fastlayers::cpu
