// SGEMM driver, BLIS/Goto style:
//   for jc (NC columns of C)            B block kc x nc packed once, shared by the team  (~L3)
//     for pc (KC of the inner dimension)
//       for ic (MC rows of C)           A block mc x kc packed per thread                (~L2)
//         for jr (NR columns)           B micro-panel kc x NR reused from L1 / L2
//           for ir (MR rows)            A micro-panels stream from L2
//             micro-kernel: MR x NR tile of C held in registers for the whole kc loop
// Packing absorbs trans_a / trans_b, alpha (folded into A) and the zero padding of edge panels,
// so the micro-kernels only ever see full, aligned, unit-stride panels. beta is applied by the
// first kc block only; later blocks accumulate (beta = 1).
// Where the ISA has kernels that read A in place (AVX2: kernel_rows) and alpha == 1 with A not
// transposed, A is not packed at all and kc grows to kc_rows (no A block to keep in L2): one
// thread, Zen 3, paired medians, 100x784x200 with B packed once: A in place 1.03x, the longer K
// blocks on top 1.04-1.14x; 1024^3 1.07-1.2x.
//
// Shapes the blocking does not suit take a path without B panels first (sgemm_impl, in order):
// a few rows (M <= 4, gemm_small.h), a few columns (N <= 16: dot products of rows), and B in
// place (M <= MR, or B small enough to stay in L2: only op(A) is packed, a row tile at a time).
//
// Threads: one OpenMP team per call; the team packs each B block cooperatively, then splits the
// (ic block, group of jr panels) units statically. Called from inside another parallel region
// (the conv kernels do, per image), the call runs on the calling thread alone.
//
// Workspace: packed buffers are grow-only, 64-byte aligned thread_local arrays, reused by every
// later call on that thread (fresh pages cost ~1.4 us per 4 KiB here).
#include "cpu/gemm.h"

#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "cpu/cpu_features.h"
#include "cpu/gemm_kernel.h"
#include "cpu/gemm_small.h"
#include "cpu/parallel.h"

namespace fastlayers::cpu {
namespace gemm_detail {

// ---- portable micro-kernel (any x86-64 / other CPU; GCC vectorises the j loops with SSE2) -----
namespace {
constexpr int kGenMR = 4, kGenNR = 16;

void kernel_generic_4x16(index_t kc, const float* a, const float* b, float* c, index_t ldc,
                         float beta) {
  float acc[kGenMR][kGenNR] = {};
  for (index_t k = 0; k < kc; ++k) {
    for (int i = 0; i < kGenMR; ++i) {
      const float ai = a[i];
      for (int j = 0; j < kGenNR; ++j) acc[i][j] += ai * b[j];
    }
    a += kGenMR;
    b += kGenNR;
  }
  for (int i = 0; i < kGenMR; ++i) {
    float* ci = c + i * ldc;
    if (beta == 0.0f) {
      for (int j = 0; j < kGenNR; ++j) ci[j] = acc[i][j];
    } else {
      for (int j = 0; j < kGenNR; ++j) ci[j] = acc[i][j] + beta * ci[j];
    }
  }
}
}  // namespace

KernelInfo kernel_generic() {
  return {kernel_generic_4x16, nullptr, nullptr, nullptr, kGenMR, kGenNR, 256, 128, 2048, small_m::gemm, nullptr, nullptr,
          nullptr, nullptr, 0};
}

namespace {

KernelInfo select_kernel() {
#if defined(__x86_64__) || defined(_M_X64)
  switch (active_isa()) {
    case Isa::avx512: return kernel_avx512();
    case Isa::avx2: return kernel_avx2();
    default: break;
  }
#endif
  return kernel_generic();
}

// Grow-only, 64-byte aligned scratch owned by one thread.
class Workspace {
 public:
  ~Workspace() { std::free(ptr_); }
  float* get(std::size_t n) {
    if (n > cap_) {
      std::free(ptr_);
      const std::size_t bytes = ((n * sizeof(float) + 63) / 64) * 64;
      ptr_ = static_cast<float*>(std::aligned_alloc(64, bytes));
      if (ptr_ == nullptr) throw std::bad_alloc();
      cap_ = bytes / sizeof(float);
    }
    return ptr_;
  }

 private:
  float* ptr_ = nullptr;
  std::size_t cap_ = 0;
};

float* workspace_a(std::size_t n) {
  thread_local Workspace ws;
  return ws.get(n);
}
float* workspace_b(std::size_t n) {
  thread_local Workspace ws;
  return ws.get(n);
}

index_t ceil_div(index_t a, index_t b) { return (a + b - 1) / b; }
index_t round_up(index_t a, index_t b) { return ceil_div(a, b) * b; }

// Packs rows [i0, i0+m) (m <= MR) x cols [p0, p0+kc) of alpha*op(A) into Ap (kc x MR, k-major).
void pack_a_panel(bool trans_a, const float* A, index_t lda, index_t i0, index_t m, index_t p0,
                  index_t kc, float alpha, int MR, PackAnPanel pack_an, float* Ap) {
  if (!trans_a && pack_an != nullptr) {
    pack_an(kc, A + i0 * lda + p0, lda, alpha, m, Ap);
  } else if (!trans_a) {
    for (index_t i = 0; i < m; ++i) {
      const float* src = A + (i0 + i) * lda + p0;
      for (index_t k = 0; k < kc; ++k) Ap[k * MR + i] = alpha * src[k];
    }
    for (index_t i = m; i < MR; ++i)
      for (index_t k = 0; k < kc; ++k) Ap[k * MR + i] = 0.0f;
  } else {
    for (index_t k = 0; k < kc; ++k) {
      const float* src = A + (p0 + k) * lda + i0;
      float* dst = Ap + k * MR;
      for (index_t i = 0; i < m; ++i) dst[i] = alpha * src[i];
      for (index_t i = m; i < MR; ++i) dst[i] = 0.0f;
    }
  }
}

// Packs cols [j0, j0+n) (n <= NR) x rows [p0, p0+kc) of op(B) into Bp (kc x NR, k-major).
void pack_b_panel(bool trans_b, const float* B, index_t ldb, index_t j0, index_t n, index_t p0,
                  index_t kc, int NR, PackBtPanel pack_bt, float* Bp) {
  if (!trans_b) {
    for (index_t k = 0; k < kc; ++k) {
      const float* src = B + (p0 + k) * ldb + j0;
      float* dst = Bp + k * NR;
      std::memcpy(dst, src, sizeof(float) * n);
      for (index_t j = n; j < NR; ++j) dst[j] = 0.0f;
    }
  } else if (n == NR && pack_bt != nullptr) {
    pack_bt(kc, B + j0 * ldb + p0, ldb, Bp);
  } else {
    for (index_t j = 0; j < n; ++j) {
      const float* src = B + (j0 + j) * ldb + p0;
      for (index_t k = 0; k < kc; ++k) Bp[k * NR + j] = src[k];
    }
    for (index_t j = n; j < NR; ++j)
      for (index_t k = 0; k < kc; ++k) Bp[k * NR + j] = 0.0f;
  }
}

// Panels [p0, p1) of the B block (rows [pc, pc+kc), columns [jc, jc+ncur)), op(B) = B: row by
// row, so each row of B is read as one contiguous run. Panel by panel, a 32-column strip down
// kc rows touches a page per row and defeats the prefetchers (8 x 4096 x 4096: 22 % slower).
void pack_b_rows(const float* B, index_t ldb, index_t pc, index_t kc, index_t jc, index_t ncur,
                 index_t p0, index_t p1, int NR, float* Bp) {
  for (index_t k = 0; k < kc; ++k) {
    const float* src = B + (pc + k) * ldb + jc;
    for (index_t p = p0; p < p1; ++p) {
      const index_t n = std::min<index_t>(NR, ncur - p * NR);
      float* dst = Bp + (p * kc + k) * NR;
      std::memcpy(dst, src + p * NR, sizeof(float) * n);
      for (index_t j = n; j < NR; ++j) dst[j] = 0.0f;
    }
  }
}

void scale_c(index_t M, index_t N, float beta, float* C, index_t ldc) {
  for (index_t i = 0; i < M; ++i) {
    float* c = C + i * ldc;
    if (beta == 0.0f) {
      for (index_t j = 0; j < N; ++j) c[j] = 0.0f;
    } else {
      for (index_t j = 0; j < N; ++j) c[j] *= beta;
    }
  }
}

// B (K x N floats) at most this big is used in place by every row tile (it stays in the 1 MiB
// L2 of Zen 4; measured 2..14 % faster than packing it up to 100 x 200 x 784).
constexpr index_t kInPlaceB = 160 * 1024;

// Below this many multiply-adds one thread is faster than waking the team.
constexpr index_t kParallelFlops = index_t{1} << 18;

struct Plan {
  KernelInfo ki;
  index_t kc, mc, nc;  // block sizes actually used (balanced so the last block is not a sliver)
  bool a_in_place;     // the kernels read A's rows in place (kernel_rows): nothing packed for A
  index_t n_ic;        // number of mc row blocks
  index_t n_jch;       // jr panels of a B block are split into this many groups (threading)
};

// Where the B block's panels come from: packed here from the matrix B (sgemm), packed by the
// callback `pb` (sgemm_packed_b), or already packed whole by sgemm_pack_b (then B points at the
// panels and nothing is packed: no copy, and no barrier, since each thread keeps the same C tiles
// for every block). A template parameter so that each instantiation carries only its own source.
enum class BFrom { matrix, callback, prepacked };

template <BFrom kFrom>
void run_team(const Plan& pl, int tid, int nt, bool trans_a, bool trans_b, index_t M, index_t N,
              index_t K, float alpha, const float* A, index_t lda, const float* B, index_t ldb,
              float beta, float* C, index_t ldc, float* Bp, const SgemmBPacker* pb) {
  const KernelInfo& ki = pl.ki;
  const int MR = ki.mr, NR = ki.nr;
  const bool a_in_place = pl.a_in_place;  // alpha == 1, A as stored: no A panels to pack
  float* Ap = a_in_place ? nullptr : workspace_a(static_cast<std::size_t>(pl.mc * pl.kc));
  alignas(64) float tile[32 * 64];  // scratch for edge tiles (MR x NR <= 32 x 64)

  for (index_t jc = 0; jc < N; jc += pl.nc) {
    const index_t ncur = std::min(pl.nc, N - jc);
    const index_t np = ceil_div(ncur, NR);
    for (index_t pc = 0; pc < K; pc += pl.kc) {
      const index_t kcur = std::min(pl.kc, K - pc);
      const float b_beta = pc == 0 ? beta : 1.0f;
      // The team packs the B block together, split by panels.
      const index_t p0 = tid * np / nt, p1 = (tid + 1) * np / nt;
      if constexpr (kFrom == BFrom::matrix) {
        if (!trans_b) {
          pack_b_rows(B, ldb, pc, kcur, jc, ncur, p0, p1, NR, Bp);
        } else {
          for (index_t p = p0; p < p1; ++p)
            pack_b_panel(trans_b, B, ldb, jc + p * NR, std::min<index_t>(NR, ncur - p * NR), pc, kcur,
                         NR, ki.pack_bt, Bp + p * NR * kcur);
        }
      } else if constexpr (kFrom == BFrom::callback) {
        for (index_t p = p0; p < p1; ++p)
          pb->pack(pb->ctx, pc, kcur, jc + p * NR, std::min<index_t>(NR, ncur - p * NR), NR,
                   Bp + p * NR * kcur);
      }
      if (nt > 1 && kFrom != BFrom::prepacked) {
#pragma omp barrier
      }
      const index_t units = pl.n_ic * pl.n_jch;
      index_t last_ic = -1;
      for (index_t u = tid * units / nt; u < (tid + 1) * units / nt; ++u) {
        const index_t ic = u / pl.n_jch, jch = u % pl.n_jch;
        // Block ic holds micro-panels [ic * P / n_ic, (ic + 1) * P / n_ic): sizes differ by at
        // most one panel, so the threads' shares do too (whole mc blocks plus a sliver at the
        // end left one thread idle up to 17 % of the time at 1024^3 on 2 threads). Panel q holds
        // rows [row(q), row(q + 1)), of nearly equal heights: M = 100 runs 8 panels of 12-13 rows,
        // not 7 of 14 and one of 2 (4 FMAs a step against a whole B micro-panel's loads).
        const index_t P = ceil_div(M, MR);
        auto row = [&](index_t q) { return q * M / P; };
        const index_t q0 = ic * P / pl.n_ic, mp = (ic + 1) * P / pl.n_ic - q0;
        if (mp <= 0) continue;
        if (ic != last_ic && !a_in_place) {
          for (index_t q = 0; q < mp; ++q)
            pack_a_panel(trans_a, A, lda, row(q0 + q), row(q0 + q + 1) - row(q0 + q), pc, kcur, alpha, MR,
                         ki.pack_an, Ap + q * MR * kcur);
          last_ic = ic;
        }
        for (index_t jr = jch * np / pl.n_jch; jr < (jch + 1) * np / pl.n_jch; ++jr) {
          const index_t n = std::min<index_t>(NR, ncur - jr * NR);
          // Prepacked: panel jc / NR + jr holds all K rows, NR floats each; this block's rows start at pc.
          const float* bp = kFrom == BFrom::prepacked ? B + ((jc / NR + jr) * K + pc) * NR : Bp + jr * NR * kcur;
          for (index_t ir = 0; ir < mp; ++ir) {
            const index_t r0 = row(q0 + ir), m = row(q0 + ir + 1) - r0;
            float* c = C + r0 * ldc + jc + jr * NR;
            if (a_in_place) {
              const float* a = A + r0 * lda + pc;
              if (m == MR && n == NR)
                ki.kernel_rows(kcur, a, lda, bp, c, ldc, b_beta);
              else
                ki.edge_rows(kcur, a, lda, bp, c, ldc, b_beta, m, n);
              continue;
            }
            const float* ap = Ap + ir * MR * kcur;
            if (m == MR && n == NR) {
              ki.kernel(kcur, ap, bp, c, ldc, b_beta);
            } else if (ki.edge != nullptr) {
              ki.edge(kcur, ap, bp, c, ldc, b_beta, m, n);
            } else {
              ki.kernel(kcur, ap, bp, tile, NR, 0.0f);
              for (index_t i = 0; i < m; ++i) {
                float* ci = c + i * ldc;
                const float* ti = tile + i * NR;
                if (b_beta == 0.0f) {
                  for (index_t j = 0; j < n; ++j) ci[j] = ti[j];
                } else {
                  for (index_t j = 0; j < n; ++j) ci[j] = ti[j] + b_beta * ci[j];
                }
              }
            }
          }
        }
      }
      // The next pc/jc iteration overwrites the shared B block.
      if (nt > 1 && kFrom != BFrom::prepacked && (pc + pl.kc < K || jc + pl.nc < N)) {
#pragma omp barrier
      }
    }
  }
}

void sgemm_impl(bool trans_a, bool trans_b, index_t M, index_t N, index_t K, float alpha,
                const float* A, index_t lda, const float* B, index_t ldb, float beta, float* C,
                index_t ldc, const SgemmBPacker* pb, bool b_prepacked = false) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.0f) {  // BLAS semantics: A and B are not read
    scale_c(M, N, beta, C, ldc);
    return;
  }
  Plan pl;
  pl.ki = select_kernel();
  const KernelInfo& ki = pl.ki;
  int nt = omp_in_parallel() ? 1 : max_threads();
  if (M * N * K < kParallelFlops) nt = 1;
  const bool plain_b = pb == nullptr && !b_prepacked;  // B a matrix, so the unpacked paths may run

  // A few rows (batch-1 inference): no packing, columns split over the team when worth it.
  if (M <= kSmallM && !trans_a && plain_b) {
    if (nt == 1 || N < 32 * nt) {
      ki.small(trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
      return;
    }
#pragma omp parallel num_threads(nt)
    {
      const index_t t = omp_get_thread_num(), T = omp_get_num_threads();
      const index_t per = round_up(ceil_div(N, T), 16);
      const index_t j0 = std::min(N, t * per), j1 = std::min(N, j0 + per);
      if (j0 < j1)
        ki.small(trans_b, M, j1 - j0, K, alpha, A, lda, trans_b ? B + j0 * ldb : B + j0, ldb, beta, C + j0, ldc);
    }
    return;
  }

  // A few columns (the dense 200 -> 10 layer): dot products of rows of A with rows of op(B)^T,
  // no packing of A and no 32-wide B panel padded with zeros. op(B) = B (K x N) is transposed
  // into scratch first: N x K, small next to the M x N x K product (and within the usual B
  // block: the workspace bound in gemm.h).
  if (N <= kSmallN && !trans_a && plain_b && ki.small_n != nullptr &&
      (trans_b || N * K <= ki.kc * ki.nc)) {
    const float* Bt = B;
    index_t ldbt = ldb;
    if (!trans_b) {
      float* w = workspace_b(static_cast<std::size_t>(N * K));
      for (index_t k = 0; k < K; ++k)
        for (index_t j = 0; j < N; ++j) w[j * K + k] = B[k * ldb + j];
      Bt = w;
      ldbt = K;
    }
    if (nt == 1 || M < 32) {
      ki.small_n(M, N, K, alpha, A, lda, Bt, ldbt, beta, C, ldc);
      return;
    }
#pragma omp parallel num_threads(nt)
    {
      const index_t t = omp_get_thread_num(), T = omp_get_num_threads();
      const index_t i0 = t * M / T, i1 = (t + 1) * M / T;
      if (i0 < i1) ki.small_n(i1 - i0, N, K, alpha, A + i0 * lda, lda, Bt, ldbt, beta, C + i0 * ldc, ldc);
    }
    return;
  }

  // B in place (op(B) = B) when it is small enough to stay in L2 (the 200 -> 10 layer's weight
  // gradient, 10 x 200 from (100 x 10)^T x 100 x 200, and its input gradient, 100 x 10 x 200):
  // no B panels, no NC/KC blocking, only each row tile of op(A) packed (with alpha) on the thread
  // that uses it, or used as stored for one transposed row tile. (A larger B, even used once,
  // is better packed: 32-column strips of it down 512 rows touch a page per row, 14 x 2048 x 2048
  // ran at 60 % of OpenBLAS.) Packed op(A) must fit the usual A block (the workspace bound in
  // gemm.h).
  const bool one_tile = M <= ki.mr;
  if (!trans_b && plain_b && ki.few_rows != nullptr && K * N <= kInPlaceB &&
      ((one_tile && trans_a) || K * ki.mr <= ki.mc * ki.kc)) {
    if (one_tile && trans_a) {
      if (nt == 1 || N < 2 * ki.nr) {
        ki.few_rows(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
      }
#pragma omp parallel num_threads(nt)
      {
        const index_t t = omp_get_thread_num(), T = omp_get_num_threads();
        const index_t per = round_up(ceil_div(N, T), ki.nr);
        const index_t j0 = std::min(N, t * per), j1 = std::min(N, j0 + per);
        if (j0 < j1) ki.few_rows(M, j1 - j0, K, alpha, A, lda, B + j0, ldb, beta, C + j0, ldc);
      }
      return;
    }
    const index_t tiles = ceil_div(M, ki.mr), col_tiles = ceil_div(N, ki.nr);
    // Row tiles [q0, q1) x column tiles [c0, c1).
    auto run_tiles = [&](index_t q0, index_t q1, index_t c0, index_t c1) {
      const index_t j0 = c0 * ki.nr, n = std::min(N, c1 * ki.nr) - j0;
      if (q0 >= q1 || n <= 0) return;
      float* w = workspace_a(static_cast<std::size_t>(K * ki.mr));
      for (index_t q = q0; q < q1; ++q) {
        // Tiles of nearly equal height (M = 100: 4 x 13 + 4 x 12, not 7 x 14 + 2: a 2-row tile
        // streams all of B from L2 for 4 FMAs a step, bound by L2 bandwidth, not the FMAs).
        const index_t i0 = q * M / tiles, m = (q + 1) * M / tiles - i0;
        pack_a_panel(trans_a, A, lda, i0, m, 0, K, alpha, ki.mr, ki.pack_an, w);
        ki.few_rows(m, n, K, 1.0f, w, ki.mr, B + j0, ldb, beta, C + i0 * ldc + j0, ldc);
      }
    };
    if (nt == 1 || (tiles < 2 && col_tiles < 2)) {
      run_tiles(0, tiles, 0, col_tiles);
      return;
    }
    // Split the side that shares out more evenly (100 x 784 on 2 threads: rows 56 + 44 in 8
    // tiles, columns 384 + 400 in 25), rows unless columns are 2 % better: a column split packs
    // all of op(A) on each thread (300 x 784 x 100: 4 % slower split by columns, 400 + 384,
    // than by rows, 154 + 146).
#pragma omp parallel num_threads(nt)
    {
      const index_t t = omp_get_thread_num(), T = omp_get_num_threads();
      auto largest_share = [T](index_t units, index_t unit, index_t total) {
        index_t most = 0;
        for (index_t u = 0; u < T; ++u)
          most = std::max(most, std::min(total, (u + 1) * units / T * unit) - u * units / T * unit);
        return static_cast<double>(most) / static_cast<double>(total);
      };
      const bool by_cols = largest_share(col_tiles, ki.nr, N) < largest_share(tiles, ki.mr, M) - 0.02;
      if (by_cols)
        run_tiles(0, tiles, t * col_tiles / T, (t + 1) * col_tiles / T);
      else
        run_tiles(t * tiles / T, (t + 1) * tiles / T, 0, col_tiles);
    }
    return;
  }

  // Balanced blocks: e.g. K = 400 with KC = 384 becomes two blocks of 200, not 384 + 16.
  // Reading A in place there is no mc x kc A block to keep in L2, so K is cut in fewer, longer
  // blocks (each kc block stores and reloads C and calls the kernel once per tile), and nc shrinks
  // to keep the B block, and so the workspace, the same size.
  pl.a_in_place = ki.kernel_rows != nullptr && !trans_a && alpha == 1.0f;
  pl.kc = ceil_div(K, ceil_div(K, pl.a_in_place ? ki.kc_rows : ki.kc));
  const index_t nc_max = std::max<index_t>(ki.nr, ki.kc * ki.nc / std::max(pl.kc, ki.kc) / ki.nr * ki.nr);
  pl.nc = round_up(ceil_div(N, ceil_div(N, nc_max)), ki.nr);
  const index_t np = ceil_div(std::min(pl.nc, N), ki.nr);
  index_t n_ic = ceil_div(M, ki.mc);
  if (nt > 1 && np < nt) n_ic = std::max<index_t>(n_ic, std::min<index_t>(nt, ceil_div(M, ki.mr)));
  // Several row blocks anyway: make their count a multiple of the team so each thread takes
  // whole blocks (no A block packed twice, no split jr range).
  if (nt > 1 && n_ic > 1) n_ic = std::min(round_up(n_ic, nt), ceil_div(M, ki.mr));
  pl.n_ic = n_ic;  // <= ceil(M / MR): no block is empty
  pl.mc = round_up(ceil_div(M, n_ic), ki.mr);  // the largest block
  // Enough (ic, jr-group) units to keep every thread busy, in equal shares where possible.
  pl.n_jch = 1;
  if (nt > 1) {
    index_t g = nt;
    for (index_t a = pl.n_ic % g; a != 0;) {  // gcd(n_ic, nt)
      const index_t t = g % a;
      g = a;
      a = t;
    }
    pl.n_jch = std::min<index_t>(np, nt / g);
  }
  float* Bp = b_prepacked ? nullptr : workspace_b(static_cast<std::size_t>(pl.kc * pl.nc));
  auto team = [&](int tid, int T) {
    if (b_prepacked)
      run_team<BFrom::prepacked>(pl, tid, T, trans_a, false, M, N, K, alpha, A, lda, B, 0, beta, C, ldc, Bp, pb);
    else if (pb != nullptr)
      run_team<BFrom::callback>(pl, tid, T, trans_a, false, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, Bp, pb);
    else
      run_team<BFrom::matrix>(pl, tid, T, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, Bp, pb);
  };
  if (nt == 1) {
    team(0, 1);
  } else {
#pragma omp parallel num_threads(nt)
    team(omp_get_thread_num(), omp_get_num_threads());
  }
}

// C[0:m, 0:n] (n <= NR) = packed rows (row tiles K * MR apart from a0) x one K x NR panel bp.
void row_tiles(const KernelInfo& ki, index_t m, index_t n, index_t K, const float* a0, const float* bp, float beta,
               float* C, index_t ldc) {
  const int MR = ki.mr, NR = ki.nr;
  alignas(64) float tile[32 * 64];
  for (index_t i = 0; i < m; i += MR) {
    const index_t mm = std::min<index_t>(MR, m - i);
    float* c = C + i * ldc;
    if (mm == MR && n == NR) {
      ki.kernel(K, a0 + i * K, bp, c, ldc, beta);
    } else if (ki.edge != nullptr) {
      ki.edge(K, a0 + i * K, bp, c, ldc, beta, mm, n);
    } else {
      ki.kernel(K, a0 + i * K, bp, tile, NR, 0.0f);
      for (index_t r = 0; r < mm; ++r)
        for (index_t q = 0; q < n; ++q)
          c[r * ldc + q] = beta == 0.0f ? tile[r * NR + q] : tile[r * NR + q] + beta * c[r * ldc + q];
    }
  }
}

// Rows [i0, i0+m) of the product with op(A) packed by sgemm_pack_a, B in place, one thread.
void prepacked_a_impl(index_t i0, index_t m, index_t N, index_t K, const float* Ap, const float* B,
                      index_t ldb, float beta, float* C, index_t ldc) {
  if (m <= 0 || N <= 0) return;
  if (K <= 0) {
    scale_c(m, N, beta, C, ldc);
    return;
  }
  const KernelInfo ki = select_kernel();
  const int MR = ki.mr, NR = ki.nr;
  const float* a0 = Ap + i0 * K;  // i0 is a multiple of MR: panel i0 / MR
  if (ki.few_rows != nullptr) {
    for (index_t i = 0; i < m; i += MR)
      ki.few_rows(std::min<index_t>(MR, m - i), N, K, 1.0f, a0 + i * K, MR, B, ldb, beta, C + i * ldc, ldc);
    return;
  }
  // No B-in-place kernel for this ISA: pack one NR-column panel of B at a time (any K).
  float* bp = workspace_b(static_cast<std::size_t>(K * NR));
  for (index_t j = 0; j < N; j += NR) {
    const index_t n = std::min<index_t>(NR, N - j);
    pack_b_panel(false, B, ldb, j, n, 0, K, NR, nullptr, bp);
    row_tiles(ki, m, n, K, a0, bp, beta, C + j, ldc);
  }
}

}  // namespace
}  // namespace gemm_detail

index_t sgemm_packed_a_rows() { return gemm_detail::select_kernel().mr; }

index_t sgemm_packed_a_floats(index_t M, index_t K) {
  return gemm_detail::round_up(M, sgemm_packed_a_rows()) * K;
}

// Panel q holds rows [q*MR, q*MR + MR) as K x MR (k-major), zero-padded: the layout of sgemm's
// A blocks with kc = K, so the same micro-kernels read it.
void sgemm_pack_a(bool trans_a, index_t M, index_t K, float alpha, const float* A, index_t lda, float* Ap) {
  const gemm_detail::KernelInfo ki = gemm_detail::select_kernel();
  for (index_t i = 0; i < M; i += ki.mr)
    gemm_detail::pack_a_panel(trans_a, A, lda, i, std::min<index_t>(ki.mr, M - i), 0, K, alpha, ki.mr,
                              ki.pack_an, Ap + i * K);
}

void sgemm_prepacked_a(index_t M, index_t i0, index_t m, index_t N, index_t K, const float* Ap,
                       const float* B, index_t ldb, float beta, float* C, index_t ldc) {
  gemm_detail::prepacked_a_impl(i0, std::min(m, M - i0), N, K, Ap, B, ldb, beta, C, ldc);
}

index_t sgemm_packed_b_cols() { return gemm_detail::select_kernel().nr; }

index_t sgemm_packed_b_floats(index_t K, index_t N) {
  return gemm_detail::round_up(N, sgemm_packed_b_cols()) * K;
}

// Panel p holds columns [p*NR, p*NR + NR) of op(B) as K x NR (k-major), zero-padded: the layout of
// sgemm's B blocks with kc = K, so any kc block of a panel is contiguous.
void sgemm_pack_b(bool trans_b, index_t K, index_t N, const float* B, index_t ldb, float* Bp) {
  const gemm_detail::KernelInfo ki = gemm_detail::select_kernel();
  for (index_t j = 0; j < N; j += ki.nr)
    gemm_detail::pack_b_panel(trans_b, B, ldb, j, std::min<index_t>(ki.nr, N - j), 0, K, ki.nr, ki.pack_bt,
                              Bp + j * K);
}

namespace {
// Panels of another width (packed under another ISA): repacked block by block to the active one.
struct RepackCtx {
  const float* Bp;
  index_t K, nr_packed;
};
void repack_panels(const void* ctx, index_t k0, index_t kc, index_t j0, index_t n, int nr, float* dst) {
  const RepackCtx& r = *static_cast<const RepackCtx*>(ctx);
  for (index_t k = 0; k < kc; ++k) {
    for (index_t j = 0; j < n; ++j) {
      const index_t col = j0 + j, p = col / r.nr_packed;
      dst[k * nr + j] = r.Bp[(p * r.K + k0 + k) * r.nr_packed + col % r.nr_packed];
    }
    for (index_t j = n; j < nr; ++j) dst[k * nr + j] = 0.0f;
  }
}
}  // namespace

void sgemm_prepacked_b(bool trans_a, index_t M, index_t N, index_t K, float alpha, const float* A,
                       index_t lda, const float* Bp, index_t packed_cols, float beta, float* C, index_t ldc) {
  if (packed_cols == sgemm_packed_b_cols()) {
    gemm_detail::sgemm_impl(trans_a, false, M, N, K, alpha, A, lda, Bp, 0, beta, C, ldc, nullptr, true);
    return;
  }
  const RepackCtx ctx{Bp, K, packed_cols};
  sgemm_packed_b(trans_a, M, N, K, alpha, A, lda, SgemmBPacker{repack_panels, &ctx}, beta, C, ldc);
}

bool sgemm_prepacked_a_reads_b_in_place() { return gemm_detail::select_kernel().few_rows != nullptr; }

void sgemm_prepacked_ab(index_t M, index_t i0, index_t m, index_t N, index_t K, const float* Ap, const float* Bp,
                        float beta, float* C, index_t ldc) {
  m = std::min(m, M - i0);
  if (m <= 0 || N <= 0) return;
  if (K <= 0) return gemm_detail::scale_c(m, N, beta, C, ldc);
  const gemm_detail::KernelInfo ki = gemm_detail::select_kernel();
  for (index_t j = 0; j < N; j += ki.nr)  // panel j / NR starts at (j / NR) * K * NR = j * K
    gemm_detail::row_tiles(ki, m, std::min<index_t>(ki.nr, N - j), K, Ap + i0 * K, Bp + j * K, beta, C + j, ldc);
}

void sgemm(bool trans_a, bool trans_b, index_t M, index_t N, index_t K, float alpha,
           const float* A, index_t lda, const float* B, index_t ldb, float beta, float* C,
           index_t ldc) {
  gemm_detail::sgemm_impl(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, nullptr);
}

void sgemm_packed_b(bool trans_a, index_t M, index_t N, index_t K, float alpha, const float* A,
                    index_t lda, const SgemmBPacker& B, float beta, float* C, index_t ldc) {
  gemm_detail::sgemm_impl(trans_a, false, M, N, K, alpha, A, lda, nullptr, 0, beta, C, ldc, &B);
}

}  // namespace fastlayers::cpu
