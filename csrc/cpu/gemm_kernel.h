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

// Packs op(B)[p0:p0+kc, j0:j0+NR] transposed-source case (B stored N x K, row stride ldb) into Bp
// (kc x NR, k-major). Full NR columns only. ISA files may provide faster versions.
using PackBtPanel = void (*)(index_t kc, const float* B, index_t ldb, float* Bp);

struct KernelInfo {
  MicroKernel kernel;
  PackBtPanel pack_bt;  // nullptr: use the portable packer
  int mr, nr;           // register tile
  index_t kc, mc, nc;   // cache blocks: kc x nr B panel ~L1, mc x kc A block ~L2, kc x nc B block ~L3
};

KernelInfo kernel_generic();
#if defined(__x86_64__) || defined(_M_X64)
KernelInfo kernel_avx2();
KernelInfo kernel_avx512();
#endif

}  // namespace fastlayers::cpu::gemm_detail
