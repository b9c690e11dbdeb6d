// SGEMM kernels; the launchers are in gemm.cu. Row-major throughout: op(A)(m, k) is
// A[m * lda + k], or A[k * lda + m] when trans_a (likewise B). Four kernels:
//   sgemm_tiled<128x128>  register-blocked, double-buffered shared memory, 8x8 outputs per thread
//                         as 2x2 blocks of 4x4 (so every shared-memory read is a conflict-free
//                         float4), for large problems;
//   sgemm_tiled<64x64>    the same code with 4x4 outputs per thread, for mid-sized problems that
//                         would leave most SMs idle with 128x128 tiles;
//   sgemm_tile16          one output per thread, 16x16 shared tiles, for small or thin problems;
//   sgemm_reference       one output per thread, no shared memory: the plain cross-check.
// Every kernel zero-fills out-of-range loads and guards its stores, so any M, N, K works.
// Kept in a header of its own, free of launches, so the host emulation in
// csrc/cuda/host_emulation/ can compile the same kernel code with g++ and check its indexing.
#pragma once
#include "common/types.h"

namespace fastlayers::cuda::detail {

constexpr int kGemmThreads = 256;

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

// ---------------------------------------------------------------------------------------------
// Register-blocked tile kernel. A block of 256 threads (16 x 16) computes a BM x BN tile of C.
// Shared memory holds a BK-deep slice of op(A) stored k-major (As[k][m], i.e. A transposed) and
// of op(B) stored k-major (Bs[k][n]), twice (double buffering: while the block multiplies one
// slice, the next one is already in registers on its way to the other buffer).
// Thread (ty, tx) owns rows  c * (BM / CM) + ty * 4 + {0..3}  for c < CM = TM / 4, and columns
// d * (BN / CN) + tx * 4 + {0..3} for d < CN = TN / 4: with 16 threads along each side, one
// warp's float4 reads of a shared row touch 64 consecutive floats (no bank conflicts).
// Rows are padded by 4 floats so the transposing stores (A not transposed, B transposed) spread
// over banks; 4 keeps every row 16-byte aligned for the float4 accesses.
// ---------------------------------------------------------------------------------------------
template <int BM, int BN, int BK, int TM, int TN, bool TA, bool TB, bool VEC>
__global__ void __launch_bounds__(kGemmThreads)
    sgemm_tiled(index_t M, index_t N, index_t K, float alpha, const float* __restrict__ A,
                index_t lda, const float* __restrict__ B, index_t ldb, float beta,
                float* __restrict__ C, index_t ldc, index_t tiles_n, bool vec_c) {
  constexpr int CM = TM / 4, CN = TN / 4;
  constexpr int kPad = 4;
  constexpr int kA4 = BM * BK / 4 / kGemmThreads;  // float4 chunks of A per thread per slice
  constexpr int kB4 = BN * BK / 4 / kGemmThreads;
  static_assert((BM / TM) == 16 && (BN / TN) == 16, "256 threads as 16 x 16");
  static_assert(TM % 4 == 0 && TN % 4 == 0 && BK % 4 == 0, "4-wide pieces");
  static_assert(kA4 >= 1 && kA4 * 4 * kGemmThreads == BM * BK, "A slice splits evenly");
  static_assert(kB4 >= 1 && kB4 * 4 * kGemmThreads == BN * BK, "B slice splits evenly");

  __shared__ __align__(16) float As[2][BK][BM + kPad];
  __shared__ __align__(16) float Bs[2][BK][BN + kPad];

  const int t = threadIdx.x;
  const int tx = t % 16, ty = t / 16;
  const index_t m0 = (static_cast<index_t>(blockIdx.x) / tiles_n) * BM;
  const index_t n0 = (static_cast<index_t>(blockIdx.x) % tiles_n) * BN;

  float4 ra[kA4], rb[kB4];  // the next slice, in flight from global memory

  // Global -> registers for the slice starting at k0. Chunk i of this thread is idx = t + i*256.
  auto load_slice = [&](index_t k0) {
#pragma unroll
    for (int i = 0; i < kA4; ++i) {
      const int idx = t + i * kGemmThreads;
      if (!TA) {  // A is M x K, k contiguous: chunk = (m row, 4 k's)
        const int r = idx / (BK / 4), c = (idx % (BK / 4)) * 4;
        ra[i] = load4<VEC>(A, m0 + r, M, k0 + c, K, lda);
      } else {    // A is K x M, m contiguous: chunk = (k row, 4 m's)
        const int r = idx / (BM / 4), c = (idx % (BM / 4)) * 4;
        ra[i] = load4<VEC>(A, k0 + r, K, m0 + c, M, lda);
      }
    }
#pragma unroll
    for (int i = 0; i < kB4; ++i) {
      const int idx = t + i * kGemmThreads;
      if (!TB) {  // B is K x N, n contiguous: chunk = (k row, 4 n's)
        const int r = idx / (BN / 4), c = (idx % (BN / 4)) * 4;
        rb[i] = load4<VEC>(B, k0 + r, K, n0 + c, N, ldb);
      } else {    // B is N x K, k contiguous: chunk = (n row, 4 k's)
        const int r = idx / (BK / 4), c = (idx % (BK / 4)) * 4;
        rb[i] = load4<VEC>(B, n0 + r, N, k0 + c, K, ldb);
      }
    }
  };

  // Registers -> shared buffer `buf`, both stored k-major.
  auto store_slice = [&](int buf) {
#pragma unroll
    for (int i = 0; i < kA4; ++i) {
      const int idx = t + i * kGemmThreads;
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
      const int idx = t + i * kGemmThreads;
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

  const index_t slices = (K + BK - 1) / BK;
  if (slices > 0) {
    load_slice(0);
    store_slice(0);
    __syncthreads();
  }
  for (index_t s = 0; s < slices; ++s) {
    const int cur = static_cast<int>(s & 1);
    const bool more = s + 1 < slices;
    if (more) load_slice((s + 1) * BK);  // global loads overlap the math below

#pragma unroll
    for (int k = 0; k < BK; ++k) {
      float a[TM], b[TN];
#pragma unroll
      for (int c = 0; c < CM; ++c) {
        const float4 v = *reinterpret_cast<const float4*>(&As[cur][k][c * (BM / CM) + ty * 4]);
        a[c * 4 + 0] = v.x; a[c * 4 + 1] = v.y; a[c * 4 + 2] = v.z; a[c * 4 + 3] = v.w;
      }
#pragma unroll
      for (int d = 0; d < CN; ++d) {
        const float4 v = *reinterpret_cast<const float4*>(&Bs[cur][k][d * (BN / CN) + tx * 4]);
        b[d * 4 + 0] = v.x; b[d * 4 + 1] = v.y; b[d * 4 + 2] = v.z; b[d * 4 + 3] = v.w;
      }
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }

    // The other buffer was last read in iteration s - 1, which every thread finished before
    // the barrier that ended it, so it can be overwritten now; one barrier per slice suffices.
    if (more) store_slice(cur ^ 1);
    __syncthreads();
  }

  // Epilogue: guarded stores; a float4 store when the 4 columns are in range and C allows it.
#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const index_t m = m0 + (i / 4) * (BM / CM) + ty * 4 + (i % 4);
    if (m >= M) continue;
    float* crow = C + m * ldc;
#pragma unroll
    for (int d = 0; d < CN; ++d) {
      const index_t n = n0 + d * (BN / CN) + tx * 4;
      if (vec_c && n + 3 < N) {
        float4 v;
        if (beta == 0.0f) {
          v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        } else {
          v = *reinterpret_cast<const float4*>(crow + n);
          v.x *= beta; v.y *= beta; v.z *= beta; v.w *= beta;
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
  }
}

// ---------------------------------------------------------------------------------------------
// 16x16 tile kernel: thread (ty, tx) computes C(m0 + ty, n0 + tx). Each operand is loaded with
// the thread index running along its contiguous dimension (coalesced for every transpose
// combination) and stored k-major; rows padded to 17 so the transposing stores do not conflict.
// ---------------------------------------------------------------------------------------------
template <bool TA, bool TB>
__global__ void __launch_bounds__(kGemmThreads)
    sgemm_tile16(index_t M, index_t N, index_t K, float alpha, const float* __restrict__ A,
                 index_t lda, const float* __restrict__ B, index_t ldb, float beta,
                 float* __restrict__ C, index_t ldc, index_t tiles_n) {
  __shared__ float As[16][17];  // As[k][m]
  __shared__ float Bs[16][17];  // Bs[k][n]
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const index_t m0 = (static_cast<index_t>(blockIdx.x) / tiles_n) * 16;
  const index_t n0 = (static_cast<index_t>(blockIdx.x) % tiles_n) * 16;

  float acc = 0.0f;
  for (index_t k0 = 0; k0 < K; k0 += 16) {
    if (!TA) {  // A(m, k) at A[m * lda + k]: tx runs along k
      const index_t m = m0 + ty, k = k0 + tx;
      As[tx][ty] = (m < M && k < K) ? A[m * lda + k] : 0.0f;
    } else {    // A(m, k) at A[k * lda + m]: tx runs along m
      const index_t k = k0 + ty, m = m0 + tx;
      As[ty][tx] = (m < M && k < K) ? A[k * lda + m] : 0.0f;
    }
    if (!TB) {  // B(k, n) at B[k * ldb + n]: tx runs along n
      const index_t k = k0 + ty, n = n0 + tx;
      Bs[ty][tx] = (k < K && n < N) ? B[k * ldb + n] : 0.0f;
    } else {    // B(k, n) at B[n * ldb + k]: tx runs along k
      const index_t n = n0 + ty, k = k0 + tx;
      Bs[tx][ty] = (k < K && n < N) ? B[n * ldb + k] : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < 16; ++k) acc = fmaf(As[k][ty], Bs[k][tx], acc);
    __syncthreads();
  }
  const index_t m = m0 + ty, n = n0 + tx;
  if (m < M && n < N) C[m * ldc + n] = epilogue(acc, alpha, beta, C + m * ldc + n);
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
