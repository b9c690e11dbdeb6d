// SGEMM entry points: argument checks, the current device's profile, and the dispatch of
// gemm_launch.h run with a CUDA-stream launcher (every launch checked).
#include <stdexcept>
#include <string>

#include "cuda/device_info.h"
#include "cuda/gemm.h"
#include "cuda/gemm_launch.h"
#include "cuda/stream_launch.h"

namespace fastlayers::cuda {

index_t sgemm_workspace_floats(bool /*trans_a*/, bool /*trans_b*/, index_t M, index_t N, index_t K) {
  if (M <= 0 || N <= 0 || K <= 0) return 0;
  return gemm_plan::choose(gemm_plan::kAuto, M, N, K, 0, current_device_profile("sgemm")).workspace_floats();
}

void sgemm_path(int path, index_t splits, bool trans_a, bool trans_b, index_t M, index_t N, index_t K, float alpha,
                const float* A, index_t lda, const float* B, index_t ldb, float beta, float* C, index_t ldc,
                float* workspace, index_t workspace_floats, cudaStream_t stream) {
  if (path < 0 || path >= gemm_plan::kPathCount)
    throw std::invalid_argument("fastlayers.sgemm: unknown kernel path " + std::to_string(path));
  if (splits < 0 || splits > gemm_plan::kMaxSplits)
    throw std::invalid_argument("fastlayers.sgemm: splits must be in [0, 32], got " + std::to_string(splits));
  if (M <= 0 || N <= 0) return;
  StreamLaunch launch{stream};
  const gemm_dispatch::GemmArgs g{trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc};
  gemm_dispatch::run(launch, path, splits, g, workspace, workspace_floats,
                     K > 0 && path != gemm_plan::kReference ? current_device_profile("sgemm") : DeviceProfile{});
}

void sgemm(bool trans_a, bool trans_b, index_t M, index_t N, index_t K, float alpha, const float* A, index_t lda,
           const float* B, index_t ldb, float beta, float* C, index_t ldc, float* workspace,
           index_t workspace_floats, cudaStream_t stream) {
  sgemm_path(gemm_plan::kAuto, 0, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, workspace,
             workspace_floats, stream);
}

}  // namespace fastlayers::cuda
