// Single-precision GEMM on the CPU, row-major like NumPy:
//   C[M x N] = alpha * op(A) * op(B) + beta * C,  op(X) = X or X^T.
// A is M x K (or K x M when trans_a), leading dimension lda (elements between rows as stored);
// likewise B (K x N or N x K) and C. beta == 0 means C is write-only (its old contents, even NaN,
// are ignored), as in BLAS; so are alpha == 0 and K == 0 (C = beta * C, A and B not read).
// Other CPU kernels (conv, linear) call this directly. It is safe to call from several threads at
// once; called inside an OpenMP parallel region it runs on the calling thread alone. Packing uses
// a grow-only thread_local workspace (about 5 MiB per calling thread at most).
#pragma once
#include "common/types.h"

namespace fastlayers::cpu {

void sgemm(bool trans_a, bool trans_b, index_t M, index_t N, index_t K, float alpha,
           const float* A, index_t lda, const float* B, index_t ldb, float beta, float* C,
           index_t ldc);

// B supplied by a packing callback instead of a matrix ("implicit GEMM": conv packs im2col panels
// straight from the image, never materialising the column matrix). pack() must write
// op(B)[k0:k0+kc, j0:j0+n] (n <= nr) into dst as kc rows of nr floats (k-major, row k at
// dst + k*nr), zero-filling columns n..nr-1. It is called concurrently from the team's threads
// (disjoint panels), so it must only read ctx. Otherwise as sgemm (trans_b does not apply).
struct SgemmBPacker {
  void (*pack)(const void* ctx, index_t k0, index_t kc, index_t j0, index_t n, int nr, float* dst);
  const void* ctx;
};

void sgemm_packed_b(bool trans_a, index_t M, index_t N, index_t K, float alpha, const float* A,
                    index_t lda, const SgemmBPacker& B, float beta, float* C, index_t ldc);

// op(A) packed once and reused by many products with different B (conv backward-data multiplies
// the same W^T by every image's grad_out). sgemm_pack_a writes alpha * op(A) (M x K) into Ap
// (sgemm_packed_a_floats(M, K) floats, 64-byte aligned for speed; the layout is the kernel's
// own). sgemm_prepacked_a computes C[i0:i0+m, :] = op(A)[i0:i0+m, :] * B + beta * C[i0:i0+m, :]
// for rows i0 that are multiples of sgemm_packed_a_rows(), B (K x N, row stride ldb) used as
// stored; it runs on the calling thread only (callers parallelise outside, e.g. over images) and
// pass C at row i0 (C + i0 * ldc). Packing and the products must see the same active ISA.
index_t sgemm_packed_a_rows();
index_t sgemm_packed_a_floats(index_t M, index_t K);
void sgemm_pack_a(bool trans_a, index_t M, index_t K, float alpha, const float* A, index_t lda, float* Ap);
void sgemm_prepacked_a(index_t M, index_t i0, index_t m, index_t N, index_t K, const float* Ap,
                       const float* B, index_t ldb, float beta, float* C, index_t ldc);

// Whether sgemm_prepacked_a reads B as stored (ISAs with a B-in-place kernel: AVX-512); where it
// does not, it packs B's panels on every call, and a caller making several calls with the same B
// (row blocks of one product) packs B once with sgemm_pack_b and calls sgemm_prepacked_ab: rows
// [i0, i0+m) as sgemm_prepacked_a, from both operands packed (same active ISA), calling thread only.
bool sgemm_prepacked_a_reads_b_in_place();
void sgemm_prepacked_ab(index_t M, index_t i0, index_t m, index_t N, index_t K, const float* Ap, const float* Bp,
                        float beta, float* C, index_t ldc);

// op(B) packed once and reused by many products with different A (the inference plan's dense
// weights, packed when the plan is built). sgemm_pack_b writes op(B) (K x N) into Bp
// (sgemm_packed_b_floats(K, N) floats, 64-byte aligned, which the kernels' aligned loads need) as
// panels sgemm_packed_b_cols() wide, the kernel's own layout; sgemm_prepacked_b then computes
// C = alpha * op(A) * B + beta * C as sgemm does (threads included) without packing B. It takes
// the panel width the packing used: panels packed under another ISA (set_max_isa in between)
// still give the right product, repacked block by block as they are used. The dense layer's
// x * w^T, 1 thread, Zen 3, sgemm / prepacked: 64x200x1024 450 / 383 us, batch 4 181 / 37 us
// (sgemm's few-rows path reads w^T by rows), batch 1 27 / 23 us.
index_t sgemm_packed_b_cols();
index_t sgemm_packed_b_floats(index_t K, index_t N);
void sgemm_pack_b(bool trans_b, index_t K, index_t N, const float* B, index_t ldb, float* Bp);
void sgemm_prepacked_b(bool trans_a, index_t M, index_t N, index_t K, float alpha, const float* A,
                       index_t lda, const float* Bp, index_t packed_cols, float beta, float* C, index_t ldc);

}  // namespace fastlayers::cpu
