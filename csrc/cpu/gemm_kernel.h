// Internal to the SGEMM driver (gemm.cpp): the register micro-kernels, one per ISA, and their
// blocking parameters. Not a public kernel API.
//
// A micro-kernel computes one full MR x NR tile of C from packed panels:
//   C[0:MR, 0:NR] = Ap * Bp + beta * C       (beta == 0: C is not read, so NaN in it is ignored)
// Ap is MR x kc stored k-major (for each k, MR consecutive values of op(A), alpha already applied);
// Bp is kc x NR stored k-major (for each k, NR consecutive values of op(B)). Both are 64-byte
// aligned and zero-padded, so edge tiles run the full kernel into a scratch tile (gemm.cpp).
#pragma once
#include "common/types.h"

namespace fastlayers::cpu::gemm_detail {

using MicroKernel = void (*)(index_t kc, const float* Ap, const float* Bp, float* C, index_t ldc,
                             float beta);

// Edge tile: only the first m rows (m <= MR) and n columns (n <= NR) of the tile are computed and
// stored; the panels keep the full MR / NR layout. Optional (nullptr: the driver runs the full
// kernel into a scratch tile and copies the edge out).
using EdgeKernel = void (*)(index_t kc, const float* Ap, const float* Bp, float* C, index_t ldc,
                            float beta, index_t m, index_t n);

// The same two kernels reading A in place (alpha == 1, A not transposed): row i of the tile is
// A[i * lda + k], k < kc. No A panel to pack; optional (nullptr: A is packed).
using MicroKernelRows = void (*)(index_t kc, const float* A, index_t lda, const float* Bp, float* C,
                                 index_t ldc, float beta);
using EdgeKernelRows = void (*)(index_t kc, const float* A, index_t lda, const float* Bp, float* C,
                                index_t ldc, float beta, index_t m, index_t n);

// Packs op(B)[p0:p0+kc, j0:j0+NR] transposed-source case (B stored N x K, row stride ldb) into Bp
// (kc x NR, k-major). Full NR columns only. ISA files may provide faster versions.
using PackBtPanel = void (*)(index_t kc, const float* B, index_t ldb, float* Bp);

// Packs rows [0, m) (m <= MR) x cols [0, kc) of alpha * A (A stored M x K, row stride lda) into
// Ap (kc x MR, k-major), zero-filling rows m..MR-1.
using PackAnPanel = void (*)(index_t kc, const float* A, index_t lda, float alpha, index_t m,
                             float* Ap);

// C = alpha * A * op(B) + beta * C for M <= kSmallM (gemm_small.h), A not transposed, no packing.
using SmallGemm = void (*)(bool trans_b, index_t M, index_t N, index_t K, float alpha, const float* A,
                           index_t lda, const float* B, index_t ldb, float beta, float* C, index_t ldc);

// C = alpha * A * B^T + beta * C for a few columns (N <= kSmallN), A (M x K) and B (N x K) both
// row-major, so every C element is a dot product of two contiguous rows: no packing, and no
// 32-wide B panel padded with 22 zero columns for N = 10 (the dense 200 -> 10 layer).
using DotGemm = void (*)(index_t M, index_t N, index_t K, float alpha, const float* A, index_t lda,
                         const float* B, index_t ldb, float beta, float* C, index_t ldc);
constexpr index_t kSmallN = 16;

// C = alpha * op(A) * B + beta * C for one row tile (M <= MR), B (K x N) row-major and used in
// place (gemm.cpp calls it when M <= MR, where packing B would only copy it, and row tile by
// row tile when B stays in L2). op(A) is given k-major, At[k * lda + i] = op(A)[i, k]: the
// trans_a layout as stored, or a packed A panel.
using FewRows = void (*)(index_t M, index_t N, index_t K, float alpha, const float* At, index_t lda,
                         const float* B, index_t ldb, float beta, float* C, index_t ldc);

struct KernelInfo {
  MicroKernel kernel;
  EdgeKernel edge;      // nullptr: scratch-tile fallback
  PackBtPanel pack_bt;  // nullptr: use the portable packer
  PackAnPanel pack_an;  // nullptr: use the portable packer
  int mr, nr;           // register tile
  index_t kc, mc, nc;   // cache blocks: kc x nr B panel ~L1/L2, mc x kc A block ~L2, kc x nc B block ~L3
  SmallGemm small;      // the few-rows path, compiled for this ISA
  DotGemm small_n;      // the few-columns path; nullptr: packed path
  FewRows few_rows;     // the B-in-place path; nullptr: packed path
  MicroKernelRows kernel_rows;  // kernel and edge reading A in place; nullptr: A is packed
  EdgeKernelRows edge_rows;
  index_t kc_rows;              // kc when A is read in place (no A block to keep in L2)
};

KernelInfo kernel_generic();
#if defined(__x86_64__) || defined(_M_X64)
KernelInfo kernel_avx2();
KernelInfo kernel_avx512();
#endif

}  // namespace fastlayers::cpu::gemm_detail
