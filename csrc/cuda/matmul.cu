#include "cuda/gemm.h"
#include "cuda/matmul.h"

namespace fastlayers::cuda {

void sgemm_batched(bool trans_a, bool trans_b, index_t M, index_t N, index_t K, float alpha,
                   const float* A, index_t lda, const float* B, index_t ldb, float beta, float* C,
                   index_t ldc, int nd, const index_t* shape, const index_t* sa, const index_t* sb,
                   const index_t* sc, float* workspace, index_t workspace_floats, cudaStream_t stream) {
  index_t count = 1;
  for (int k = 0; k < nd; ++k) count *= shape[k];
  if (count <= 0 || M <= 0 || N <= 0) return;
  for (index_t i = 0; i < count; ++i) {
    index_t rest = i, oa = 0, ob = 0, oc = 0;
    for (int k = nd - 1; k >= 0; --k) {
      const index_t v = rest % shape[k];
      rest /= shape[k];
      oa += v * sa[k];
      ob += v * sb[k];
      oc += v * sc[k];
    }
    // One workspace serves every entry: the launches are ordered on the stream.
    sgemm(trans_a, trans_b, M, N, K, alpha, A + oa, lda, B + ob, ldb, beta, C + oc, ldc, workspace,
          workspace_floats, stream);
  }
}

}  // namespace fastlayers::cuda
