// Host emulation of the SGEMM dispatch and kernels (csrc/cuda/gemm_launch.h, gemm_kernels.cuh)
// against a double-precision loop: every forced path (five warp tiles, the narrow kernel plain and
// transposed, the reference), split-K with its reduction, the auto plan, all four transposes,
// tight and padded leading dimensions (scalar and float4 loads), alpha/beta, and C's padding
// columns untouched. See cuda_shim.h for what the emulation proves.
// Build and run: csrc/cuda/host_emulation/run.sh
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <vector>

#include "cuda_shim.h"
#include "cuda/gemm_launch.h"

using fastlayers::index_t;
namespace gp = fastlayers::cuda::gemm_plan;
namespace gd = fastlayers::cuda::gemm_dispatch;

struct Problem {
  bool ta, tb;
  index_t M, N, K, lda, ldb, ldc;
  float alpha, beta;
};

static int failures = 0, cases = 0;

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

static std::unique_ptr<float[]> alloc(index_t n) { return std::unique_ptr<float[]>(new (std::align_val_t(16)) float[n + 64]); }

// path, splits as sgemm_path takes them; workspace: exactly what the plan wants (or `ws_floats`
// when >= 0: less forces fewer splits).
static void check(int path, index_t splits, const Problem& p, std::mt19937& rng, index_t ws_floats = -1) {
  std::normal_distribution<float> nd;
  const index_t a_rows = p.ta ? p.K : p.M, b_rows = p.tb ? p.N : p.K;
  auto A = alloc(a_rows * p.lda), B = alloc(b_rows * p.ldb), C = alloc(p.M * p.ldc);
  for (index_t i = 0; i < a_rows * p.lda + 64; ++i) A[i] = nd(rng);
  for (index_t i = 0; i < b_rows * p.ldb + 64; ++i) B[i] = nd(rng);
  for (index_t i = 0; i < p.M * p.ldc + 64; ++i) C[i] = p.beta == 0 ? NAN : nd(rng);
  std::vector<float> C0(C.get(), C.get() + p.M * p.ldc + 64);
  std::vector<double> want(p.M * p.N);
  reference(p, A.get(), B.get(), C0.data(), want.data());

  const fastlayers::cuda::DeviceProfile dev;
  const gp::Plan plan = gd::plan_for(path, splits, p.M, p.N, p.K, nullptr, 0, dev);
  index_t ws_n = ws_floats >= 0 ? ws_floats : gp::choose(path, p.M, p.N, p.K, splits, dev).workspace_floats();
  std::vector<float> ws(ws_n + 1, NAN);
  EmulatedLaunch launch;
  const gd::GemmArgs g{p.ta, p.tb, p.M, p.N, p.K, p.alpha, A.get(), p.lda, B.get(), p.ldb, p.beta, C.get(), p.ldc};
  gd::run(launch, path, splits, g, ws_n ? ws.data() : nullptr, ws_n, dev);
  (void)plan;

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
  ++cases;
  const bool split_ran = launch.launches.count("sgemm (split-K sum)") > 0;
  // A forced split count that the problem allows must really run split (K > one slice per split).
  const bool split_expected = splits > 1 && ws_floats < 0 && path != gp::kReference && p.K > 32 * splits;
  if (worst > tol || bad_pad || (split_expected && !split_ran)) {
    ++failures;
    std::printf("FAIL path %s splits %ld ta %d tb %d M %ld N %ld K %ld lda %ld ldb %ld ldc %ld beta %g: err %g pad %d split %d\n",
                gp::path_name(path), (long)splits, p.ta, p.tb, (long)p.M, (long)p.N, (long)p.K, (long)p.lda,
                (long)p.ldb, (long)p.ldc, p.beta, worst, bad_pad, split_ran);
  }
}

static Problem make(index_t M, index_t N, index_t K, int t, int pad, int salt) {
  Problem p{};
  p.ta = t & 1, p.tb = t & 2;
  p.M = M, p.N = N, p.K = K;
  // pad 0: tight leading dimensions (often not % 4: scalar loads); pad 1: rounded up to % 4 + 4.
  auto ld = [&](index_t cols) { return pad ? (cols + 3) / 4 * 4 + 4 : cols; };
  p.lda = ld(p.ta ? p.M : p.K);
  p.ldb = ld(p.tb ? p.K : p.N);
  p.ldc = ld(p.N);
  p.alpha = (salt % 3 == 0) ? 1.0f : -0.75f;
  p.beta = (salt % 2 == 0) ? 0.0f : 0.5f;
  return p;
}

int main() {
  std::mt19937 rng(7);
  const index_t sizes[][3] = {{1, 1, 1},   {1, 7, 3},     {5, 1, 9},    {16, 16, 16}, {17, 33, 5},
                              {64, 64, 16}, {65, 63, 17}, {130, 129, 21}, {3, 200, 40}, {140, 5, 33},
                              {37, 45, 70}};
  const int paths[] = {gp::kTile128, gp::kTile64, gp::kTile32, gp::kTile16x64, gp::kTile16x8, gp::kNarrow, gp::kReference};
  int salt = 0;
  for (int path : paths)
    for (auto& s : sizes)
      for (int t = 0; t < 4; ++t) {
        // The 256-thread tile is slow to emulate: half the transposes on the larger sizes.
        if (path == gp::kTile128 && s[0] * s[1] > 2000 && (t + salt) % 2) continue;
        check(path, 1, make(s[0], s[1], s[2], t, (salt++) % 2, salt), rng);
      }
  // Split-K: every kernel with 3 splits (some splits short or empty), on shapes with K long enough.
  const index_t split_sizes[][3] = {{33, 20, 200}, {70, 9, 131}, {9, 70, 97}};
  for (int path : paths)
    for (auto& s : split_sizes)
      for (int t = 0; t < 4; ++t) check(path, 3, make(s[0], s[1], s[2], t, (salt++) % 2, salt), rng);
  // The narrow kernel transposed on a wide problem (M <= 32 < N) and forced on columns past 32.
  for (int t = 0; t < 4; ++t) {
    check(gp::kNarrow, 0, make(10, 75, 40, t, t % 2, salt++), rng);
    check(gp::kNarrow, 2, make(70, 45, 90, t, t % 2, salt++), rng);
  }
  // Auto plans on the dense-layer shapes (batch 100: forward, grad_x, grad_w of 1024-200-10 in
  // small), with the plan's workspace, with too little (fewer splits) and with none.
  const index_t dense[][5] = {{100, 20, 96, 0, 1}, {100, 96, 20, 0, 0}, {20, 96, 100, 1, 0},
                              {100, 10, 20, 0, 1}, {10, 20, 100, 1, 0}, {8, 256, 300, 1, 0}};
  for (auto& s : dense) {
    const int t = int(s[3]) | int(s[4]) << 1;
    check(gp::kAuto, 0, make(s[0], s[1], s[2], t, 1, salt++), rng);
    check(gp::kAuto, 4, make(s[0], s[1], s[2], t, 0, salt++), rng, s[0] * s[1] * 2);  // room for 2 of 4 splits
    check(gp::kAuto, 0, make(s[0], s[1], s[2], t, 1, salt++), rng, 0);
  }
  check(gp::kAuto, 0, make(4, 5, 0, 0, 0, 1), rng);  // K == 0: C = beta * C
  check(gp::kAuto, 0, make(4, 5, 0, 3, 1, 2), rng);
  std::printf("%d cases, %d failures\n", cases, failures);
  return failures != 0;
}
