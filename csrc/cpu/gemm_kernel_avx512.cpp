// AVX-512 SGEMM micro-kernel: a 14 x 32 tile of C in 28 zmm accumulators. Per k step it loads two
// B vectors and broadcasts 14 A values (embedded-broadcast FMAs), 28 FMAs against 16 loads, which
// keeps both FMA pipes busy with 4-cycle latency hidden by 28 independent chains.
// Compiled with -mavx512f ...; gemm.cpp calls it only when active_isa() says avx512.
#include <immintrin.h>

#include <algorithm>
#include <type_traits>

#include "cpu/avx512_util.h"
#include "cpu/gemm_kernel.h"
#include "cpu/gemm_small.h"

namespace fastlayers::cpu::gemm_detail {
namespace {

using avx512::transpose16;

constexpr int MR = 14, NR = 32;

void kernel_14x32(index_t kc, const float* a, const float* b, float* c, index_t ldc, float beta) {
  __m512 c0[MR], c1[MR];
#pragma GCC unroll 14
  for (int i = 0; i < MR; ++i) c0[i] = c1[i] = _mm512_setzero_ps();
  for (index_t k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
#pragma GCC unroll 14
    for (int i = 0; i < MR; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i]);
      c0[i] = _mm512_fmadd_ps(ai, b0, c0[i]);
      c1[i] = _mm512_fmadd_ps(ai, b1, c1[i]);
    }
    a += MR;
    b += NR;
  }
  if (beta == 0.0f) {
#pragma GCC unroll 14
    for (int i = 0; i < MR; ++i) {
      _mm512_storeu_ps(c + i * ldc, c0[i]);
      _mm512_storeu_ps(c + i * ldc + 16, c1[i]);
    }
  } else if (beta == 1.0f) {
#pragma GCC unroll 14
    for (int i = 0; i < MR; ++i) {
      _mm512_storeu_ps(c + i * ldc, _mm512_add_ps(c0[i], _mm512_loadu_ps(c + i * ldc)));
      _mm512_storeu_ps(c + i * ldc + 16, _mm512_add_ps(c1[i], _mm512_loadu_ps(c + i * ldc + 16)));
    }
  } else {
    const __m512 vb = _mm512_set1_ps(beta);
#pragma GCC unroll 14
    for (int i = 0; i < MR; ++i) {
      _mm512_storeu_ps(c + i * ldc, _mm512_fmadd_ps(vb, _mm512_loadu_ps(c + i * ldc), c0[i]));
      _mm512_storeu_ps(c + i * ldc + 16,
                       _mm512_fmadd_ps(vb, _mm512_loadu_ps(c + i * ldc + 16), c1[i]));
    }
  }
}

// Edge tiles: M rows (1..14, a compile-time count so the accumulators stay in registers), NZ
// zmm vectors of columns and then (kY) one ymm vector, the last vector masked to n. Rows past M
// are padding in Ap and are skipped, and a tail of at most 8 columns takes a ymm (Zen 4 issues
// two a cycle, one zmm): N = 10 or the 8 columns past 6 x 32 cost what they compute, not a full
// 14 x 32 tile.
template <int M, int NZ, bool kY>
void kernel_edge_t(index_t kc, const float* a, const float* b, float* c, index_t ldc, float beta,
                   __mmask16 last) {
  __m512 acc[M][NZ > 0 ? NZ : 1];
  __m256 accy[M];
#pragma GCC unroll 14
  for (int i = 0; i < M; ++i) {
    for (int v = 0; v < NZ; ++v) acc[i][v] = _mm512_setzero_ps();
    if constexpr (kY) accy[i] = _mm256_setzero_ps();
  }
  for (index_t k = 0; k < kc; ++k) {
    __m512 bv[NZ > 0 ? NZ : 1];
    __m256 by;
    for (int v = 0; v < NZ; ++v) bv[v] = _mm512_load_ps(b + 16 * v);
    if constexpr (kY) by = _mm256_load_ps(b + 16 * NZ);
#pragma GCC unroll 14
    for (int i = 0; i < M; ++i) {
      if constexpr (NZ > 0) {
        const __m512 ai = _mm512_set1_ps(a[i]);
        for (int v = 0; v < NZ; ++v) acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
        if constexpr (kY) accy[i] = _mm256_fmadd_ps(_mm512_castps512_ps256(ai), by, accy[i]);
      } else {
        accy[i] = _mm256_fmadd_ps(_mm256_set1_ps(a[i]), by, accy[i]);
      }
    }
    a += MR;
    b += NR;
  }
  const __m512 vb = _mm512_set1_ps(beta);
  const __mmask8 ymask = static_cast<__mmask8>(last);
#pragma GCC unroll 14
  for (int i = 0; i < M; ++i) {
    for (int v = 0; v < NZ; ++v) {
      float* ci = c + i * ldc + 16 * v;
      const __mmask16 mk = !kY && v == NZ - 1 ? last : static_cast<__mmask16>(0xffff);
      __m512 r = acc[i][v];
      if (beta != 0.0f) r = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mk, ci), r);
      _mm512_mask_storeu_ps(ci, mk, r);
    }
    if constexpr (kY) {
      float* ci = c + i * ldc + 16 * NZ;
      __m256 r = accy[i];
      if (beta != 0.0f) r = _mm256_fmadd_ps(_mm512_castps512_ps256(vb), _mm256_maskz_loadu_ps(ymask, ci), r);
      _mm256_mask_storeu_ps(ci, ymask, r);
    }
  }
}

// The vectors of a tile of n <= 32 columns, for the edge kernels here and the B-in-place row tiles
// below: f(NZ, kY, last) with NZ zmm vectors and (kY) a ymm after them, the last of them masked to
// `last`: two zmm past 24 columns, a zmm and a ymm for 17-24, a zmm for 9-16, a ymm for 1-8.
template <class F>
void by_column_tail(index_t n, F f) {
  const index_t tail = n > 16 ? n - 16 : n;  // lanes of the last vector
  const __mmask16 last = static_cast<__mmask16>((1u << tail) - 1u);
  if (n > 24)
    f(std::integral_constant<int, 2>{}, std::false_type{}, last);
  else if (n > 16)
    f(std::integral_constant<int, 1>{}, std::true_type{}, last);
  else if (n > 8)
    f(std::integral_constant<int, 1>{}, std::false_type{}, last);
  else
    f(std::integral_constant<int, 0>{}, std::true_type{}, last);
}

template <int M>
void edge_rows(index_t kc, const float* a, const float* b, float* c, index_t ldc, float beta,
               index_t n) {
  by_column_tail(n, [&](auto nz, auto y, __mmask16 last) {
    kernel_edge_t<M, decltype(nz)::value, decltype(y)::value>(kc, a, b, c, ldc, beta, last);
  });
}

void kernel_edge(index_t kc, const float* a, const float* b, float* c, index_t ldc, float beta,
                 index_t m, index_t n) {
  switch (m) {
    case 1: return edge_rows<1>(kc, a, b, c, ldc, beta, n);
    case 2: return edge_rows<2>(kc, a, b, c, ldc, beta, n);
    case 3: return edge_rows<3>(kc, a, b, c, ldc, beta, n);
    case 4: return edge_rows<4>(kc, a, b, c, ldc, beta, n);
    case 5: return edge_rows<5>(kc, a, b, c, ldc, beta, n);
    case 6: return edge_rows<6>(kc, a, b, c, ldc, beta, n);
    case 7: return edge_rows<7>(kc, a, b, c, ldc, beta, n);
    case 8: return edge_rows<8>(kc, a, b, c, ldc, beta, n);
    case 9: return edge_rows<9>(kc, a, b, c, ldc, beta, n);
    case 10: return edge_rows<10>(kc, a, b, c, ldc, beta, n);
    case 11: return edge_rows<11>(kc, a, b, c, ldc, beta, n);
    case 12: return edge_rows<12>(kc, a, b, c, ldc, beta, n);
    case 13: return edge_rows<13>(kc, a, b, c, ldc, beta, n);
    default: return edge_rows<14>(kc, a, b, c, ldc, beta, n);
  }
}


// Bp[k*32 + j] = B[j*ldb + k] for j < 32, k < kc: transposes 16 x 16 blocks in registers
// (the linear layer's x * w^T packs w this way on every call).
void pack_bt_32(index_t kc, const float* B, index_t ldb, float* Bp) {
  index_t k = 0;
  for (; k + 16 <= kc; k += 16) {
    for (int h = 0; h < 2; ++h) {
      __m512 r[16];
      for (int j = 0; j < 16; ++j) r[j] = _mm512_loadu_ps(B + (h * 16 + j) * ldb + k);
      transpose16(r);
      for (int kk = 0; kk < 16; ++kk) _mm512_store_ps(Bp + (k + kk) * NR + h * 16, r[kk]);
    }
  }
  if (k < kc) {
    const __mmask16 mask = static_cast<__mmask16>((1u << (kc - k)) - 1u);
    for (int h = 0; h < 2; ++h) {
      __m512 r[16];
      for (int j = 0; j < 16; ++j) r[j] = _mm512_maskz_loadu_ps(mask, B + (h * 16 + j) * ldb + k);
      transpose16(r);
      for (index_t kk = 0; kk < kc - k; ++kk) _mm512_store_ps(Bp + (k + kk) * NR + h * 16, r[kk]);
    }
  }
}

// Ap[k*14 + i] = alpha * A[i*lda + k] for i < m (zero for m <= i < 14), k < kc: rows are read
// 16 k at a time and transposed in registers (x and grad_out in the linear layer pack this way).
void pack_an_14(index_t kc, const float* A, index_t lda, float alpha, index_t m, float* Ap) {
  const __m512 va = _mm512_set1_ps(alpha);
  const __mmask16 rows = static_cast<__mmask16>((1u << MR) - 1u);
  for (index_t k = 0; k < kc; k += 16) {
    const index_t w = kc - k < 16 ? kc - k : 16;
    const __mmask16 mask = static_cast<__mmask16>((1u << w) - 1u);
    __m512 r[16];
    for (index_t i = 0; i < 16; ++i)
      r[i] = i < m ? _mm512_mul_ps(va, _mm512_maskz_loadu_ps(mask, A + i * lda + k))
                   : _mm512_setzero_ps();
    transpose16(r);
    // 14-wide rows overlap the next row's start; writing in order keeps the later values.
    for (index_t kk = 0; kk < w; ++kk) _mm512_mask_storeu_ps(Ap + (k + kk) * MR, rows, r[kk]);
  }
}

// ---- few columns: C = alpha * A * B^T + beta * C as dot products over contiguous rows ----------

// Lane t of the result is the sum of the 16 lanes of v[t] (a 4-level tree: 30 shuffles and 15
// adds for 16 dot products). The levels deliver v[c + 4e] to lane 4c + e, so the caller's order
// is transposed on the way in.
inline __m512 hsum16(const __m512 in[16]) {
  __m512 v[16], u[8], w[4], x[2];
#pragma GCC unroll 4
  for (int c = 0; c < 4; ++c)
#pragma GCC unroll 4
    for (int e = 0; e < 4; ++e) v[c + 4 * e] = in[4 * c + e];
#pragma GCC unroll 8
  for (int p = 0; p < 8; ++p)  // 256-bit halves: u[p] = [v[2p] | v[2p+1]], 8 partials each
    u[p] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * p], v[2 * p + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_f32x4(v[2 * p], v[2 * p + 1], _MM_SHUFFLE(3, 2, 3, 2)));
#pragma GCC unroll 8
  for (int q = 0; q < 4; ++q)  // 128-bit chunk c of w[q]: 4 partials of v[4q + c]
    w[q] = _mm512_add_ps(_mm512_shuffle_f32x4(u[2 * q], u[2 * q + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(u[2 * q], u[2 * q + 1], _MM_SHUFFLE(3, 1, 3, 1)));
#pragma GCC unroll 8
  for (int r = 0; r < 2; ++r)
    x[r] = _mm512_add_ps(_mm512_shuffle_ps(w[2 * r], w[2 * r + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_ps(w[2 * r], w[2 * r + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  return _mm512_add_ps(_mm512_shuffle_ps(x[0], x[1], _MM_SHUFFLE(2, 0, 2, 0)),
                       _mm512_shuffle_ps(x[0], x[1], _MM_SHUFFLE(3, 1, 3, 1)));
}

// An R x J tile of dot products (R * J <= 16 accumulators), 16 k per step, the K tail masked in
// both operands (0 * 0, so nothing past the rows is read or can inject NaN).
template <int R, int J>
void dot_tile(index_t K, const float* A, index_t lda, const float* B, index_t ldb, float alpha,
              float beta, float* C, index_t ldc) {
  static_assert(R * J <= 16, "one hsum16 per tile");
  __m512 acc[16];
#pragma GCC unroll 16
  for (int t = 0; t < 16; ++t) acc[t] = _mm512_setzero_ps();
  // Every loop over the accumulators is unrolled by pragma: a rolled one makes GCC keep them in
  // memory.
  auto step = [&](index_t k, __mmask16 mk) __attribute__((always_inline)) {
    __m512 a[R];
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i) {
      a[i] = _mm512_maskz_loadu_ps(mk, A + i * lda + k);
      // Keeps a[i] (and b below) in a register: GCC otherwise folds the load into each FMA
      // that uses it, J (or R) loads instead of one, and the loop becomes load-bound.
      asm("" : "+v"(a[i]));
    }
#pragma GCC unroll 16
    for (int j = 0; j < J; ++j) {
      __m512 b = _mm512_maskz_loadu_ps(mk, B + j * ldb + k);
      asm("" : "+v"(b));
#pragma GCC unroll 16
      for (int i = 0; i < R; ++i) acc[i * J + j] = _mm512_fmadd_ps(a[i], b, acc[i * J + j]);
    }
  };
  index_t k = 0;
  for (; k + 16 <= K; k += 16) step(k, static_cast<__mmask16>(0xffff));
  if (k < K) step(k, static_cast<__mmask16>((1u << (K - k)) - 1u));
  alignas(64) float s[16];
  _mm512_store_ps(s, _mm512_mul_ps(_mm512_set1_ps(alpha), hsum16(acc)));
  for (int i = 0; i < R; ++i) {
    float* c = C + i * ldc;
    if (beta == 0.0f) {
      for (int j = 0; j < J; ++j) c[j] = s[i * J + j];
    } else {
      for (int j = 0; j < J; ++j) c[j] = s[i * J + j] + beta * c[j];
    }
  }
}

// R rows against all N columns, in `blocks` nearly equal column blocks of J <= 16 / R columns.
template <int R>
void dot_row_tile(index_t N, index_t blocks, index_t K, float alpha, const float* A, index_t lda,
                  const float* B, index_t ldb, float beta, float* C, index_t ldc) {
  for (index_t q = 0, j0 = 0; q < blocks; ++q) {
    const index_t j1 = (q + 1) * N / blocks;
    const float* b = B + j0 * ldb;
    float* c = C + j0;
    switch (j1 - j0) {
#define FASTLAYERS_DOT_CASE(J) \
  case J:                      \
    if constexpr (R * J <= 16) dot_tile<R, J>(K, A, lda, b, ldb, alpha, beta, c, ldc); \
    break;
      FASTLAYERS_DOT_CASE(1)
      FASTLAYERS_DOT_CASE(2)
      FASTLAYERS_DOT_CASE(3)
      FASTLAYERS_DOT_CASE(4)
      FASTLAYERS_DOT_CASE(5)
#undef FASTLAYERS_DOT_CASE
    }
    j0 = j1;
  }
}

template <int R>
void dot_rows(index_t m, index_t N, index_t blocks, index_t K, float alpha, const float* A,
              index_t lda, const float* B, index_t ldb, float beta, float* C, index_t ldc) {
  if constexpr (R > 0) {
    if (m == R)
      dot_row_tile<R>(N, blocks, K, alpha, A, lda, B, ldb, beta, C, ldc);
    else
      dot_rows<R - 1>(m, N, blocks, K, alpha, A, lda, B, ldb, beta, C, ldc);
  }
}

// Columns in nearly equal blocks of at most 5, rows in tiles of 16 / (widest block): N = 10 runs
// 3 x 5 tiles (15 accumulators, 8 loads per 15 FMAs). Each row tile meets all the column blocks
// while its rows of A sit in L1; op(B)^T (N x K) stays in L1 or L2 throughout.
void dot_gemm(index_t M, index_t N, index_t K, float alpha, const float* A, index_t lda,
              const float* B, index_t ldb, float beta, float* C, index_t ldc) {
  const index_t blocks = (N + 4) / 5;
  const index_t rt = 16 / ((N + blocks - 1) / blocks);
  for (index_t i = 0; i < M; i += rt) {
    const index_t m = std::min(rt, M - i);
    dot_rows<16>(m, N, blocks, K, alpha, A + i * lda, lda, B, ldb, beta, C + i * ldc, ldc);
  }
}

// ---- one row tile: C = alpha * op(A) * B + beta * C, B used in place --------------------------

// M rows x NZ zmm vectors of columns, then (kY) one ymm vector: the last vector is masked to
// `last`. A tail of at most 8 columns takes a ymm, not a masked zmm: Zen 4 issues two ymm FMAs per
// cycle against one zmm, so N = 200 (6 x 32 + 8) no longer pays 16 lanes for 8 (elsewhere a ymm
// FMA costs no more than a zmm one). B rows read straight from the matrix (stride ldb), op(A)
// k-major with stride lda.
template <int M, int NZ, bool kY>
void few_rows_tile(index_t kc, const float* a, index_t lda, const float* b, index_t ldb, float alpha,
                   float beta, float* c, index_t ldc, __mmask16 last) {
  constexpr __mmask16 kAll = static_cast<__mmask16>(0xffff);
  auto zmask = [&](int v) { return kY || v < NZ - 1 ? kAll : last; };
  const __mmask8 ymask = static_cast<__mmask8>(last);
  __m512 acc[M][NZ > 0 ? NZ : 1];
  __m256 accy[M];
#pragma GCC unroll 14
  for (int i = 0; i < M; ++i) {
#pragma GCC unroll 2
    for (int v = 0; v < NZ; ++v) acc[i][v] = _mm512_setzero_ps();
    if constexpr (kY) accy[i] = _mm256_setzero_ps();
  }
  for (index_t k = 0; k < kc; ++k) {
    __m512 bv[NZ > 0 ? NZ : 1];
    __m256 by;
#pragma GCC unroll 2
    for (int v = 0; v < NZ; ++v) bv[v] = _mm512_maskz_loadu_ps(zmask(v), b + 16 * v);
    if constexpr (kY) by = _mm256_maskz_loadu_ps(ymask, b + 16 * NZ);
#pragma GCC unroll 14
    for (int i = 0; i < M; ++i) {
      if constexpr (NZ > 0) {
        const __m512 ai = _mm512_set1_ps(a[i]);
#pragma GCC unroll 2
        for (int v = 0; v < NZ; ++v) acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
        if constexpr (kY) accy[i] = _mm256_fmadd_ps(_mm512_castps512_ps256(ai), by, accy[i]);
      } else {
        accy[i] = _mm256_fmadd_ps(_mm256_set1_ps(a[i]), by, accy[i]);
      }
    }
    a += lda;
    b += ldb;
  }
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 14
  for (int i = 0; i < M; ++i) {
#pragma GCC unroll 2
    for (int v = 0; v < NZ; ++v) {
      float* ci = c + i * ldc + 16 * v;
      __m512 r = alpha == 1.0f ? acc[i][v] : _mm512_mul_ps(va, acc[i][v]);
      if (beta != 0.0f) r = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(zmask(v), ci), r);
      _mm512_mask_storeu_ps(ci, zmask(v), r);
    }
    if constexpr (kY) {
      float* ci = c + i * ldc + 16 * NZ;
      __m256 r = alpha == 1.0f ? accy[i] : _mm256_mul_ps(_mm512_castps512_ps256(va), accy[i]);
      if (beta != 0.0f)
        r = _mm256_fmadd_ps(_mm512_castps512_ps256(vb), _mm256_maskz_loadu_ps(ymask, ci), r);
      _mm256_mask_storeu_ps(ci, ymask, r);
    }
  }
}

// Column tiles of 32 over K blocks of kFewKc; later blocks add to C. 1024, not 512 (which kept
// op(A)'s block in L1): one pass over K = 784 instead of two; one thread, separate runs, best
// rounds 94 % of peak against 91-93 % at 100x784x200, 87 against 85.5 % at 100x1536x100.
template <int M>
void few_rows_m(index_t N, index_t K, float alpha, const float* A, index_t lda, const float* B,
                index_t ldb, float beta, float* C, index_t ldc) {
  constexpr index_t kFewKc = 1024;
  for (index_t p = 0; p < K; p += kFewKc) {
    const index_t kc = std::min(kFewKc, K - p);
    const float bt = p == 0 ? beta : 1.0f;
    const float* a = A + p * lda;
    const float* b = B + p * ldb;
    for (index_t j = 0; j < N; j += NR)
      by_column_tail(std::min<index_t>(NR, N - j), [&](auto nz, auto y, __mmask16 last) {
        few_rows_tile<M, decltype(nz)::value, decltype(y)::value>(kc, a, lda, b + j, ldb, alpha, bt, C + j, ldc, last);
      });
  }
}

void few_rows(index_t M, index_t N, index_t K, float alpha, const float* A, index_t lda,
              const float* B, index_t ldb, float beta, float* C, index_t ldc) {
  switch (M) {
#define FASTLAYERS_FEW_CASE(m) \
  case m: return few_rows_m<m>(N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    FASTLAYERS_FEW_CASE(1)
    FASTLAYERS_FEW_CASE(2)
    FASTLAYERS_FEW_CASE(3)
    FASTLAYERS_FEW_CASE(4)
    FASTLAYERS_FEW_CASE(5)
    FASTLAYERS_FEW_CASE(6)
    FASTLAYERS_FEW_CASE(7)
    FASTLAYERS_FEW_CASE(8)
    FASTLAYERS_FEW_CASE(9)
    FASTLAYERS_FEW_CASE(10)
    FASTLAYERS_FEW_CASE(11)
    FASTLAYERS_FEW_CASE(12)
    FASTLAYERS_FEW_CASE(13)
    FASTLAYERS_FEW_CASE(14)
#undef FASTLAYERS_FEW_CASE
    default: break;
  }
}

}  // namespace

// Blocks: kc = 1024 (each C tile is loaded and stored K / 1024 times, not K / 384: +3..5 % at
// 1024^3..2048^3 on Zen 4, measured interleaved), so the B micro-panel (128 KiB) and the A block
// (168 x 1024, 672 KiB) both live in the 1 MiB L2; nc = 1024 keeps the B block at 4 MiB.
KernelInfo kernel_avx512() { return {kernel_14x32, kernel_edge, pack_bt_32, pack_an_14, MR, NR, 1024, 168, 1024, small_m::gemm, dot_gemm, few_rows,
                                    nullptr, nullptr, 0}; }

}  // namespace fastlayers::cpu::gemm_detail
