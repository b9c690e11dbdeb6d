// SGEMM launchers: pick a kernel (csrc/cuda/gemm_kernels.cuh), check alignment for the float4
// paths, launch on the caller's stream and check the launch.
#include <atomic>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "cuda/check.h"
#include "cuda/gemm.h"
#include "cuda/gemm_kernels.cuh"
#include "cuda/launch.h"

namespace fastlayers::cuda {
namespace {

using namespace detail;

// ---------------------------------------------------------------------------------------------
// Launchers
// ---------------------------------------------------------------------------------------------
struct GemmArgs {
  bool ta, tb;
  index_t M, N, K;
  float alpha;
  const float* A;
  index_t lda;
  const float* B;
  index_t ldb;
  float beta;
  float* C;
  index_t ldc;
};

bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

index_t ceil_div(index_t a, index_t b) { return (a + b - 1) / b; }

// Blocks go on gridDim.x (up to 2^31 - 1), one per output tile, row-major over tiles.
void check_tiles(index_t tiles) {
  if (tiles > 2147483647LL)
    throw std::runtime_error("fastlayers.sgemm: the problem needs more than 2^31 - 1 tiles");
}

template <int BM, int BN, int BK, int TM, int TN, bool TA, bool TB>
void launch_tiled_t(const GemmArgs& g, cudaStream_t stream) {
  const index_t tiles_n = ceil_div(g.N, BN);
  const index_t tiles = ceil_div(g.M, BM) * tiles_n;
  check_tiles(tiles);
  // float4 loads need 16-byte aligned rows: base pointers aligned and leading dimensions % 4.
  const bool vec = aligned16(g.A) && aligned16(g.B) && g.lda % 4 == 0 && g.ldb % 4 == 0;
  const bool vec_c = aligned16(g.C) && g.ldc % 4 == 0;
  if (vec)
    sgemm_tiled<BM, BN, BK, TM, TN, TA, TB, true><<<static_cast<unsigned>(tiles), kGemmThreads, 0,
                                                    stream>>>(
        g.M, g.N, g.K, g.alpha, g.A, g.lda, g.B, g.ldb, g.beta, g.C, g.ldc, tiles_n, vec_c);
  else
    sgemm_tiled<BM, BN, BK, TM, TN, TA, TB, false><<<static_cast<unsigned>(tiles), kGemmThreads,
                                                     0, stream>>>(
        g.M, g.N, g.K, g.alpha, g.A, g.lda, g.B, g.ldb, g.beta, g.C, g.ldc, tiles_n, vec_c);
}

template <int BM, int BN, int BK, int TM, int TN>
void launch_tiled(const GemmArgs& g, cudaStream_t stream) {
  if (!g.ta && !g.tb) launch_tiled_t<BM, BN, BK, TM, TN, false, false>(g, stream);
  else if (!g.ta && g.tb) launch_tiled_t<BM, BN, BK, TM, TN, false, true>(g, stream);
  else if (g.ta && !g.tb) launch_tiled_t<BM, BN, BK, TM, TN, true, false>(g, stream);
  else launch_tiled_t<BM, BN, BK, TM, TN, true, true>(g, stream);
}

void launch_tile16(const GemmArgs& g, cudaStream_t stream) {
  const index_t tiles_n = ceil_div(g.N, 16);
  const index_t tiles = ceil_div(g.M, 16) * tiles_n;
  check_tiles(tiles);
  const unsigned grid = static_cast<unsigned>(tiles);
#define FL_TILE16(TA, TB)                                                                       \
  sgemm_tile16<TA, TB><<<grid, kGemmThreads, 0, stream>>>(g.M, g.N, g.K, g.alpha, g.A, g.lda, \
                                                          g.B, g.ldb, g.beta, g.C, g.ldc, tiles_n)
  if (!g.ta && !g.tb) FL_TILE16(false, false);
  else if (!g.ta && g.tb) FL_TILE16(false, true);
  else if (g.ta && !g.tb) FL_TILE16(true, false);
  else FL_TILE16(true, true);
#undef FL_TILE16
}

void launch_reference(const GemmArgs& g, cudaStream_t stream) {
  sgemm_reference_kernel<<<grid_for(g.M * g.N), kThreadsPerBlock, 0, stream>>>(
      g.ta, g.tb, g.M, g.N, g.K, g.alpha, g.A, g.lda, g.B, g.ldb, g.beta, g.C, g.ldc);
}

// Multiprocessors of the current device, cached per device (read once; the attribute query
// is cheap but not free).
int multiprocessors() {
  constexpr int kMaxDevices = 64;
  static std::atomic<int> cache[kMaxDevices];  // 0 = not read yet (static storage starts zeroed)
  int device = 0;
  check(cudaGetDevice(&device), "sgemm");
  if (device >= 0 && device < kMaxDevices && cache[device] > 0) return cache[device];
  int sms = 0;
  check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device), "sgemm");
  if (sms < 1) sms = 1;
  if (device >= 0 && device < kMaxDevices) cache[device] = sms;
  return sms;
}

SgemmPath choose_path(const GemmArgs& g) {
  const index_t sms = multiprocessors();
  // 128x128 tiles once there are enough of them to give every SM a block; otherwise 64x64
  // (4x the blocks) while both sides are at least half a tile; thin problems go to 16x16.
  if (ceil_div(g.M, 128) * ceil_div(g.N, 128) >= sms) return SgemmPath::Tile128;
  if (g.M >= 32 && g.N >= 32) return SgemmPath::Tile64;
  return SgemmPath::Tile16;
}

}  // namespace

void sgemm_path(SgemmPath path, bool trans_a, bool trans_b, index_t M, index_t N, index_t K,
                float alpha, const float* A, index_t lda, const float* B, index_t ldb, float beta,
                float* C, index_t ldc, cudaStream_t stream) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    scale_matrix_kernel<<<grid_for(M * N), kThreadsPerBlock, 0, stream>>>(M, N, beta, C, ldc);
    check_launch("sgemm");
    return;
  }
  const GemmArgs g{trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc};
  if (path == SgemmPath::Auto) path = choose_path(g);
  switch (path) {
    case SgemmPath::Tile128: launch_tiled<128, 128, 8, 8, 8>(g, stream); break;
    case SgemmPath::Tile64: launch_tiled<64, 64, 16, 4, 4>(g, stream); break;
    case SgemmPath::Tile16: launch_tile16(g, stream); break;
    case SgemmPath::Reference: launch_reference(g, stream); break;
    default: throw std::invalid_argument("fastlayers.sgemm: unknown kernel path");
  }
  check_launch("sgemm");
}

void sgemm(bool trans_a, bool trans_b, index_t M, index_t N, index_t K, float alpha,
           const float* A, index_t lda, const float* B, index_t ldb, float beta, float* C,
           index_t ldc, cudaStream_t stream) {
  sgemm_path(SgemmPath::Auto, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc,
             stream);
}

}  // namespace fastlayers::cuda
