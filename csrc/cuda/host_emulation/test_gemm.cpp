// Host emulation of the SGEMM kernels against a double-precision loop (see cuda_shim.h).
// Build and run: csrc/cuda/host_emulation/run.sh
#include <cstdio>
#include <cstdlib>
#include <random>

#include "cuda_shim.h"
#include "cuda/gemm_kernels.cuh"

using fastlayers::index_t;
using namespace fastlayers::cuda::detail;

struct Problem {
  bool ta, tb;
  index_t M, N, K, lda, ldb, ldc;
  float alpha, beta;
};

static int failures = 0;

// op(A)(m, k) etc. in double.
static void reference(const Problem& p, const float* A, const float* B, const float* C0, double* out) {
  for (index_t m = 0; m < p.M; ++m)
    for (index_t n = 0; n < p.N; ++n) {
      double acc = 0;
      for (index_t k = 0; k < p.K; ++k) {
        const double a = p.ta ? A[k * p.lda + m] : A[m * p.lda + k];
        const double b = p.tb ? B[n * p.ldb + k] : B[k * p.ldb + n];
        acc += a * b;
      }
      out[m * p.N + n] = p.alpha * acc + (p.beta == 0 ? 0.0 : p.beta * C0[m * p.ldc + n]);
    }
}

template <int BM, int BN, int BK, int TM, int TN, bool TA, bool TB, bool VEC>
static void run_tiled(const Problem& p, const float* A, const float* B, float* C, bool vec_c) {
  const index_t tiles_n = (p.N + BN - 1) / BN;
  const index_t tiles = (p.M + BM - 1) / BM * tiles_n;
  emulate_launch(static_cast<unsigned>(tiles), kGemmThreads, [&] {
    sgemm_tiled<BM, BN, BK, TM, TN, TA, TB, VEC>(p.M, p.N, p.K, p.alpha, A, p.lda, B, p.ldb, p.beta,
                                                 C, p.ldc, tiles_n, vec_c);
  });
}

template <bool TA, bool TB>
static void run_path(int path, const Problem& p, const float* A, const float* B, float* C) {
  const bool vec = p.lda % 4 == 0 && p.ldb % 4 == 0;  // buffers below are 16-byte aligned
  const bool vec_c = p.ldc % 4 == 0;
  if (path == 1) {
    if (vec) run_tiled<128, 128, 8, 8, 8, TA, TB, true>(p, A, B, C, vec_c);
    else run_tiled<128, 128, 8, 8, 8, TA, TB, false>(p, A, B, C, vec_c);
  } else if (path == 2) {
    if (vec) run_tiled<64, 64, 16, 4, 4, TA, TB, true>(p, A, B, C, vec_c);
    else run_tiled<64, 64, 16, 4, 4, TA, TB, false>(p, A, B, C, vec_c);
  } else if (path == 3) {
    const index_t tiles_n = (p.N + 15) / 16;
    const index_t tiles = (p.M + 15) / 16 * tiles_n;
    emulate_launch(static_cast<unsigned>(tiles), kGemmThreads, [&] {
      sgemm_tile16<TA, TB>(p.M, p.N, p.K, p.alpha, A, p.lda, B, p.ldb, p.beta, C, p.ldc, tiles_n);
    });
  } else {
    emulate_launch(3, 64, [&] {
      sgemm_reference_kernel(TA, TB, p.M, p.N, p.K, p.alpha, A, p.lda, B, p.ldb, p.beta, C, p.ldc);
    });
  }
}

static void check(int path, const Problem& p, std::mt19937& rng) {
  std::normal_distribution<float> nd;
  const index_t a_rows = p.ta ? p.K : p.M, b_rows = p.tb ? p.N : p.K;
  // One guard float past each buffer's last row: written only by a bounds bug.
  std::vector<float, std::allocator<float>> dummy;
  auto alloc = [](index_t n) {
    return std::unique_ptr<float[]>(new (std::align_val_t(16)) float[n + 64]);
  };
  auto A = alloc(a_rows * p.lda), B = alloc(b_rows * p.ldb), C = alloc(p.M * p.ldc);
  for (index_t i = 0; i < a_rows * p.lda + 64; ++i) A[i] = nd(rng);
  for (index_t i = 0; i < b_rows * p.ldb + 64; ++i) B[i] = nd(rng);
  for (index_t i = 0; i < p.M * p.ldc + 64; ++i) C[i] = p.beta == 0 ? NAN : nd(rng);
  std::vector<float> C0(C.get(), C.get() + p.M * p.ldc + 64);
  std::vector<double> want(p.M * p.N);
  reference(p, A.get(), B.get(), C0.data(), want.data());
  if (!p.ta && !p.tb) run_path<false, false>(path, p, A.get(), B.get(), C.get());
  if (!p.ta && p.tb) run_path<false, true>(path, p, A.get(), B.get(), C.get());
  if (p.ta && !p.tb) run_path<true, false>(path, p, A.get(), B.get(), C.get());
  if (p.ta && p.tb) run_path<true, true>(path, p, A.get(), B.get(), C.get());
  double worst = 0;
  bool bad_pad = false;
  for (index_t m = 0; m < p.M; ++m) {
    for (index_t n = 0; n < p.N; ++n) {
      const double d = std::fabs(C[m * p.ldc + n] - want[m * p.N + n]);
      worst = std::isnan(d) ? INFINITY : std::max(worst, d);
    }
    for (index_t n = p.N; n < p.ldc; ++n)  // padding columns of C: must be untouched
      if (!(std::isnan(C[m * p.ldc + n]) && std::isnan(C0[m * p.ldc + n])) && C[m * p.ldc + n] != C0[m * p.ldc + n]) bad_pad = true;
  }
  for (index_t i = p.M * p.ldc; i < p.M * p.ldc + 64; ++i)
    if (!(std::isnan(C[i]) && std::isnan(C0[i])) && C[i] != C0[i]) bad_pad = true;
  const double tol = 1e-5 * std::sqrt(double(p.K) + 1) * 8 * (1 + std::fabs(p.alpha) + std::fabs(p.beta));
  if (worst > tol || bad_pad) {
    ++failures;
    std::printf("FAIL path %d ta %d tb %d M %ld N %ld K %ld lda %ld ldb %ld ldc %ld beta %g: err %g pad %d\n",
                path, p.ta, p.tb, (long)p.M, (long)p.N, (long)p.K, (long)p.lda, (long)p.ldb, (long)p.ldc,
                p.beta, worst, bad_pad);
  }
}

int main() {
  std::mt19937 rng(7);
  int cases = 0;
  const index_t sizes[][3] = {{1, 1, 1}, {1, 7, 3}, {5, 1, 9}, {16, 16, 16}, {17, 33, 5},
                              {64, 64, 16}, {65, 63, 17}, {128, 128, 8}, {130, 129, 21},
                              {3, 200, 40}, {140, 5, 33}, {131, 257, 9}};
  for (int path = 1; path <= 4; ++path)
    for (auto& s : sizes)
      for (int t = 0; t < 4; ++t)
        for (int pad = 0; pad < 2; ++pad) {
          Problem p{};
          p.ta = t & 1;
          p.tb = t & 2;
          p.M = s[0];
          p.N = s[1];
          p.K = s[2];
          // pad 0: tight leading dimensions (often not % 4); pad 1: rounded up to % 4 + 4.
          auto ld = [&](index_t cols) { return pad ? (cols + 3) / 4 * 4 + 4 : cols; };
          p.lda = ld(p.ta ? p.M : p.K);
          p.ldb = ld(p.tb ? p.K : p.N);
          p.ldc = ld(p.N);
          p.alpha = (cases % 3 == 0) ? 1.0f : -0.75f;
          p.beta = (cases % 2 == 0) ? 0.0f : 0.5f;
          check(path, p, rng);
          ++cases;
        }
  std::printf("%d cases, %d failures\n", cases, failures);
  return failures != 0;
}
