// SGEMM kernels; the plan (which kernel, tile and split count) is gemm_plan.h, the launchers
// gemm.cu. Row-major throughout: op(A)(m, k) is A[m * lda + k], or A[k * lda + m] when trans_a
// (likewise B). Kernels:
//   sgemm_warp       warp-tiled: a block of (BM/WM) x (BN/WN) warps computes a BM x BN tile; each
//                    warp a WM x WN sub-tile, each lane TM x TN outputs (rows
//                    c * WM/(TM/4) + lm*4 + i%4 inside its warp's rows, so a warp's float4 reads of
//                    one shared row touch WM consecutive floats: no bank conflicts, and 8 x 8 lane
//                    tiles need 4 float4 reads per 64 FMAs). BK-deep slices double-buffered in
//                    shared memory, the next slice prefetched into registers (float4 global loads
//                    when rows allow). Split-K along grid y into a workspace.
//   sgemm_narrow     N <= 32 columns: TPR threads per row, a runtime share of the columns each;
//                    warps whose rows are all past M skip the FMAs. Optionally stores C transposed
//                    (the launcher runs M <= 32 as C^T = op(B)^T op(A)^T).
//   splitk_reduce    C = alpha * (sum of the split partials, in split order) + beta * C.
//   sgemm_reference  one output per thread, plain loop: the cross-check.
// Every kernel zero-fills out-of-range loads and guards its stores, so any M, N, K works. No
// launches here: csrc/cuda/host_emulation/ compiles this file with g++ and checks the indexing.
#pragma once
#include "common/types.h"
#include "cuda/gemm_plan.h"

namespace fastlayers::cuda::detail {

// Four consecutive elements (row, col .. col+3) of a row-major matrix with `rows` x `cols`
// valid elements and leading dimension ld; zero where out of range. VEC: one 16-byte load when
// all four are in range (the launcher has checked p and ld keep it 16-byte aligned; col is a
// multiple of 4 at every call site).
template <bool VEC>
__device__ __forceinline__ float4 load4(const float* __restrict__ p, index_t row, index_t rows,
                                        index_t col, index_t cols, index_t ld) {
  float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  if (row >= rows) return v;
  const float* q = p + row * ld;
  if (VEC && col + 3 < cols) return *reinterpret_cast<const float4*>(q + col);
  if (col + 0 < cols) v.x = q[col + 0];
  if (col + 1 < cols) v.y = q[col + 1];
  if (col + 2 < cols) v.z = q[col + 2];
  if (col + 3 < cols) v.w = q[col + 3];
  return v;
}

// C(m, n) = alpha * acc + beta * C(m, n); beta == 0 never reads C.
__device__ __forceinline__ float epilogue(float acc, float alpha, float beta, const float* c) {
  return beta == 0.0f ? alpha * acc : alpha * acc + beta * *c;
}

// Row of a lane's i-th output row inside its warp's WM rows (lm: the lane's row group).
template <int WM, int TM>
__device__ __forceinline__ int lane_row(int lm, int i) {
  if constexpr (TM % 4 == 0)
    return (i / 4) * (WM / (TM / 4)) + lm * 4 + (i % 4);
  else
    return lm + i * (WM / TM);
}

template <int WM, int TM>
__device__ __forceinline__ void lane_frag(const float* row, int lm, float (&v)[TM]) {
  if constexpr (TM % 4 == 0) {
#pragma unroll
    for (int c = 0; c < TM / 4; ++c) {
      const float4 q = *reinterpret_cast<const float4*>(row + c * (WM / (TM / 4)) + lm * 4);
      v[c * 4 + 0] = q.x, v[c * 4 + 1] = q.y, v[c * 4 + 2] = q.z, v[c * 4 + 3] = q.w;
    }
  } else {
#pragma unroll
    for (int i = 0; i < TM; ++i) v[i] = row[lm + i * (WM / TM)];
  }
}

// ---------------------------------------------------------------------------------------------
// Warp-tiled kernel. blockIdx.x: output tile (row-major over tiles_n columns of tiles),
// blockIdx.y: K split [y * k_chunk, min(K, (y + 1) * k_chunk)). With `partial` (splits > 1) the
// raw sums go to partial[y][m][n] (leading dimension N) and splitk_reduce finishes C.
// ---------------------------------------------------------------------------------------------
template <int BM, int BN, int BK, int WM, int WN, int TM, int TN, bool TA, bool TB, bool VEC, int MINB>
__global__ void __launch_bounds__((BM / WM) * (BN / WN) * 32, MINB)
    sgemm_warp(index_t M, index_t N, index_t K, float alpha, const float* __restrict__ A, index_t lda,
               const float* __restrict__ B, index_t ldb, float beta, float* __restrict__ C, index_t ldc,
               index_t tiles_n, bool vec_c, index_t k_chunk, float* __restrict__ partial) {
  constexpr int T = (BM / WM) * (BN / WN) * 32;
  constexpr int LM = WM / TM, LN = WN / TN;  // lanes along each side of the warp tile
  constexpr int kPad = 4;
  constexpr int kA4 = BM * BK / 4 / T, kB4 = BN * BK / 4 / T;  // float4 chunks per thread per slice
  static_assert(LM * LN == 32, "a warp's lanes cover its tile");
  static_assert(BM % WM == 0 && BN % WN == 0 && WM % TM == 0 && WN % TN == 0, "tiles divide");
  static_assert((TM % 4 == 0 || TM < 4) && (TN % 4 == 0 || TN < 4), "4-wide pieces or scalars");
  static_assert(kA4 >= 1 && kA4 * 4 * T == BM * BK && kB4 >= 1 && kB4 * 4 * T == BN * BK, "slices split evenly");

  __shared__ __align__(16) float As[2][BK][BM + kPad];
  __shared__ __align__(16) float Bs[2][BK][BN + kPad];

  const int t = threadIdx.x, warp = t / 32, lane = t % 32;
  const int wm0 = (warp % (BM / WM)) * WM, wn0 = (warp / (BM / WM)) * WN;
  const int lm = lane % LM, ln = lane / LM;
  const index_t m0 = (static_cast<index_t>(blockIdx.x) / tiles_n) * BM;
  const index_t n0 = (static_cast<index_t>(blockIdx.x) % tiles_n) * BN;
  const index_t kb = static_cast<index_t>(blockIdx.y) * k_chunk;
  const index_t ke = kb + k_chunk < K ? kb + k_chunk : K;

  float4 ra[kA4], rb[kB4];  // the next slice, in flight from global memory

  // Global -> registers for the slice starting at k0 (columns >= ke read as zero). Chunk i of this
  // thread is idx = t + i*T.
  auto load_slice = [&](index_t k0) {
#pragma unroll
    for (int i = 0; i < kA4; ++i) {
      const int idx = t + i * T;
      if (!TA) {  // A is M x K, k contiguous: chunk = (m row, 4 k's)
        const int r = idx / (BK / 4), c = (idx % (BK / 4)) * 4;
        ra[i] = load4<VEC>(A, m0 + r, M, k0 + c, ke, lda);
      } else {  // A is K x M, m contiguous: chunk = (k row, 4 m's)
        const int r = idx / (BM / 4), c = (idx % (BM / 4)) * 4;
        ra[i] = load4<VEC>(A, k0 + r, ke, m0 + c, M, lda);
      }
    }
#pragma unroll
    for (int i = 0; i < kB4; ++i) {
      const int idx = t + i * T;
      if (!TB) {  // B is K x N, n contiguous: chunk = (k row, 4 n's)
        const int r = idx / (BN / 4), c = (idx % (BN / 4)) * 4;
        rb[i] = load4<VEC>(B, k0 + r, ke, n0 + c, N, ldb);
      } else {  // B is N x K, k contiguous: chunk = (n row, 4 k's)
        const int r = idx / (BK / 4), c = (idx % (BK / 4)) * 4;
        rb[i] = load4<VEC>(B, n0 + r, N, k0 + c, ke, ldb);
      }
    }
  };

  // Registers -> shared buffer `buf`, both stored k-major.
  auto store_slice = [&](int buf) {
#pragma unroll
    for (int i = 0; i < kA4; ++i) {
      const int idx = t + i * T;
      if (!TA) {
        const int r = idx / (BK / 4), c = (idx % (BK / 4)) * 4;  // r = m, c = k
        As[buf][c + 0][r] = ra[i].x;
        As[buf][c + 1][r] = ra[i].y;
        As[buf][c + 2][r] = ra[i].z;
        As[buf][c + 3][r] = ra[i].w;
      } else {
        const int r = idx / (BM / 4), c = (idx % (BM / 4)) * 4;  // r = k, c = m
        *reinterpret_cast<float4*>(&As[buf][r][c]) = ra[i];
      }
    }
#pragma unroll
    for (int i = 0; i < kB4; ++i) {
      const int idx = t + i * T;
      if (!TB) {
        const int r = idx / (BN / 4), c = (idx % (BN / 4)) * 4;  // r = k, c = n
        *reinterpret_cast<float4*>(&Bs[buf][r][c]) = rb[i];
      } else {
        const int r = idx / (BK / 4), c = (idx % (BK / 4)) * 4;  // r = n, c = k
        Bs[buf][c + 0][r] = rb[i].x;
        Bs[buf][c + 1][r] = rb[i].y;
        Bs[buf][c + 2][r] = rb[i].z;
        Bs[buf][c + 3][r] = rb[i].w;
      }
    }
  };

  float acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = 0.0f;

  auto step = [&](int cur, int k) {
    float a[TM], b[TN];
    lane_frag<WM, TM>(&As[cur][k][wm0], lm, a);
    lane_frag<WN, TN>(&Bs[cur][k][wn0], ln, b);
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
      for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
  };

  const index_t slices = ke > kb ? (ke - kb + BK - 1) / BK : 0;
  if (slices > 0) {
    load_slice(kb);
    store_slice(0);
    __syncthreads();
  }
  for (index_t s = 0; s < slices; ++s) {
    const int cur = static_cast<int>(s & 1);
    const bool more = s + 1 < slices;
    if (more) load_slice(kb + (s + 1) * BK);  // global loads overlap the math below
    const index_t left = ke - (kb + s * BK);
    if (left >= BK) {
#pragma unroll
      for (int k = 0; k < BK; ++k) step(cur, k);
    } else {
      for (int k = 0; k < static_cast<int>(left); ++k) step(cur, k);  // last slice: no padding FMAs
    }
    // The other buffer was last read in iteration s - 1, which every thread finished before
    // the barrier that ended it, so it can be overwritten now; one barrier per slice suffices.
    if (more) store_slice(cur ^ 1);
    __syncthreads();
  }

  if (partial != nullptr) {  // split-K: raw sums, finished by splitk_reduce
    float* out = partial + static_cast<index_t>(blockIdx.y) * M * N;
#pragma unroll
    for (int i = 0; i < TM; ++i) {
      const index_t m = m0 + wm0 + lane_row<WM, TM>(lm, i);
      if (m >= M) continue;
#pragma unroll
      for (int j = 0; j < TN; ++j) {
        const index_t n = n0 + wn0 + lane_row<WN, TN>(ln, j);
        if (n < N) out[m * N + n] = acc[i][j];
      }
    }
    return;
  }
  // Epilogue: guarded stores; a float4 store when 4 consecutive columns are in range and C allows.
#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const index_t m = m0 + wm0 + lane_row<WM, TM>(lm, i);
    if (m >= M) continue;
    float* crow = C + m * ldc;
    if constexpr (TN % 4 == 0) {
#pragma unroll
      for (int d = 0; d < TN / 4; ++d) {
        const index_t n = n0 + wn0 + lane_row<WN, TN>(ln, d * 4);
        if (vec_c && n + 3 < N) {
          float4 v;
          if (beta == 0.0f) {
            v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
          } else {
            v = *reinterpret_cast<const float4*>(crow + n);
            v.x *= beta, v.y *= beta, v.z *= beta, v.w *= beta;
          }
          v.x = fmaf(alpha, acc[i][d * 4 + 0], v.x);
          v.y = fmaf(alpha, acc[i][d * 4 + 1], v.y);
          v.z = fmaf(alpha, acc[i][d * 4 + 2], v.z);
          v.w = fmaf(alpha, acc[i][d * 4 + 3], v.w);
          *reinterpret_cast<float4*>(crow + n) = v;
        } else {
#pragma unroll
          for (int j = 0; j < 4; ++j)
            if (n + j < N) crow[n + j] = epilogue(acc[i][d * 4 + j], alpha, beta, crow + n + j);
        }
      }
    } else {
#pragma unroll
      for (int j = 0; j < TN; ++j) {
        const index_t n = n0 + wn0 + lane_row<WN, TN>(ln, j);
        if (n < N) crow[n] = epilogue(acc[i][j], alpha, beta, crow + n);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Narrow kernel: C(M x N) with N <= kNarrowMaxN. 128 threads; thread t owns row t / TPR of the
// block's 128 / TPR rows and columns h, h + TPR, h + 2 TPR, ... < N (h = t % TPR). A slice of A
// (rows x kNarrowBK) and of B (kNarrowBK x N) sit in shared memory; each A value read feeds
// ceil(N / TPR) FMAs with B broadcast from shared memory. A warp whose 32 / TPR rows are all past
// M skips the FMAs (it still loads and meets the barriers). TRANS_C: element (m, n) is stored at
// C[n * ldc + m]. blockIdx.x: row block, blockIdx.y: K split (partial as in sgemm_warp).
// ---------------------------------------------------------------------------------------------
template <bool TA, bool TB, int TPR, bool TRANS_C>
__global__ void __launch_bounds__(gemm_plan::kNarrowThreads, gemm_plan::kNarrowMinBlocks)
    sgemm_narrow(index_t M, index_t N, index_t K, float alpha, const float* __restrict__ A, index_t lda,
                 const float* __restrict__ B, index_t ldb, float beta, float* __restrict__ C, index_t ldc,
                 index_t k_chunk, float* __restrict__ partial) {
  constexpr int T = gemm_plan::kNarrowThreads, BK = gemm_plan::kNarrowBK, NMAX = gemm_plan::kNarrowMaxN;
  constexpr int RB = T / TPR, COLS = NMAX / TPR;
  __shared__ float As[BK][RB + 1];
  __shared__ float Bs[BK][NMAX];

  const int t = threadIdx.x, r = t / TPR, h = t % TPR;
  const index_t m0 = static_cast<index_t>(blockIdx.x) * RB;
  const bool warp_active = m0 + (t / 32) * (32 / TPR) < M;  // uniform across the warp
  const index_t kb = static_cast<index_t>(blockIdx.y) * k_chunk;
  const index_t ke = kb + k_chunk < K ? kb + k_chunk : K;

  float acc[COLS];
#pragma unroll
  for (int j = 0; j < COLS; ++j) acc[j] = 0.0f;

  for (index_t k0 = kb; k0 < ke; k0 += BK) {
    // A slice: neighbouring threads on the contiguous dimension.
    for (int idx = t; idx < RB * BK; idx += T) {
      const int kl = TA ? idx / RB : idx % BK, ml = TA ? idx % RB : idx / BK;
      const index_t m = m0 + ml, k = k0 + kl;
      As[kl][ml] = (m < M && k < ke) ? (TA ? A[k * lda + m] : A[m * lda + k]) : 0.0f;
    }
    for (int idx = t; idx < NMAX * BK; idx += T) {
      const int kl = TB ? idx % BK : idx / NMAX, n = TB ? idx / BK : idx % NMAX;
      const index_t k = k0 + kl;
      Bs[kl][n] = (n < N && k < ke) ? (TB ? B[n * ldb + k] : B[k * ldb + n]) : 0.0f;
    }
    __syncthreads();
    if (warp_active) {
      const int kmax = ke - k0 < BK ? static_cast<int>(ke - k0) : BK;
      for (int kl = 0; kl < kmax; ++kl) {
        const float a = As[kl][r];
#pragma unroll
        for (int j = 0; j < COLS; ++j)
          if (h + j * TPR < N) acc[j] = fmaf(a, Bs[kl][h + j * TPR], acc[j]);
      }
    }
    __syncthreads();
  }

  const index_t m = m0 + r;
  if (m >= M) return;
#pragma unroll
  for (int j = 0; j < COLS; ++j) {
    const index_t n = h + j * TPR;
    if (n >= N) continue;
    if (partial != nullptr) {
      partial[static_cast<index_t>(blockIdx.y) * M * N + m * N + n] = acc[j];
    } else {
      float* c = TRANS_C ? C + n * ldc + m : C + m * ldc + n;
      *c = epilogue(acc[j], alpha, beta, c);
    }
  }
}

// C(m, n) = alpha * sum over s of partial[s][m][n] (s in order) + beta * C(m, n); TRANS_C as in
// sgemm_narrow. One thread per (m, n), grid-stride.
__global__ void splitk_reduce(const float* __restrict__ partial, index_t splits, index_t M, index_t N, float alpha,
                              float beta, float* __restrict__ C, index_t ldc, bool trans_c) {
  const index_t total = M * N;
  for (index_t idx = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<index_t>(gridDim.x) * blockDim.x) {
    float s = 0.0f;
    for (index_t k = 0; k < splits; ++k) s += partial[k * total + idx];
    const index_t m = idx / N, n = idx % N;
    float* c = trans_c ? C + n * ldc + m : C + m * ldc + n;
    *c = epilogue(s, alpha, beta, c);
  }
}

// One thread per output (grid-stride over M * N), plain loop over K: the cross-check.
__global__ void sgemm_reference_kernel(bool trans_a, bool trans_b, index_t M, index_t N,
                                       index_t K, float alpha, const float* __restrict__ A,
                                       index_t lda, const float* __restrict__ B, index_t ldb,
                                       float beta, float* __restrict__ C, index_t ldc) {
  const index_t total = M * N;
  for (index_t idx = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<index_t>(gridDim.x) * blockDim.x) {
    const index_t m = idx / N, n = idx % N;
    float acc = 0.0f;
    for (index_t k = 0; k < K; ++k) {
      const float a = trans_a ? A[k * lda + m] : A[m * lda + k];
      const float b = trans_b ? B[n * ldb + k] : B[k * ldb + n];
      acc = fmaf(a, b, acc);
    }
    C[m * ldc + n] = epilogue(acc, alpha, beta, C + m * ldc + n);
  }
}

// K == 0: C = beta * C (beta == 0 writes zeros without reading C).
__global__ void scale_matrix_kernel(index_t M, index_t N, float beta, float* __restrict__ C,
                                    index_t ldc) {
  const index_t total = M * N;
  for (index_t idx = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<index_t>(gridDim.x) * blockDim.x) {
    float* c = C + (idx / N) * ldc + idx % N;
    *c = beta == 0.0f ? 0.0f : beta * *c;
  }
}

}  // namespace fastlayers::cuda::detail
