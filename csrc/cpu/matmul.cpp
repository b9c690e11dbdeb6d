#include "cpu/matmul.h"

#include <omp.h>

#include "cpu/gemm.h"
#include "cpu/parallel.h"

namespace fastlayers::cpu {
namespace {

// Products run side by side, one per thread (sgemm called inside a parallel region runs on the
// calling thread), instead of one after another on the whole team: always below kAloneFlops
// (sgemm would use one thread for them anyway), and below kSmallProduct when there are at least as
// many products as threads — one parallel region instead of one per product, whose barriers cost
// the most on a loaded machine (32 products of 128x256x128: 249 ms one after another on 2 threads
// of a shared 2-core machine, against PyTorch's 16 ms).
constexpr index_t kAloneFlops = index_t{1} << 18;
constexpr index_t kSmallProduct = index_t{1} << 27;

struct Offsets {
  index_t a, b, c;
};

Offsets offsets(index_t i, int nd, const index_t* shape, const index_t* sa, const index_t* sb,
                const index_t* sc) {
  Offsets o{0, 0, 0};
  for (int k = nd - 1; k >= 0; --k) {
    const index_t v = i % shape[k];
    i /= shape[k];
    o.a += v * sa[k];
    o.b += v * sb[k];
    o.c += v * sc[k];
  }
  return o;
}

}  // namespace

void sgemm_batched(bool trans_a, bool trans_b, index_t M, index_t N, index_t K, float alpha,
                   const float* A, index_t lda, const float* B, index_t ldb, float beta, float* C,
                   index_t ldc, int nd, const index_t* shape, const index_t* sa, const index_t* sb,
                   const index_t* sc) {
  index_t count = 1;
  bool shared_c = false;  // some C matrices receive several products: keep them in order
  for (int k = 0; k < nd; ++k) {
    count *= shape[k];
    shared_c = shared_c || (sc[k] == 0 && shape[k] > 1);
  }
  if (count <= 0 || M <= 0 || N <= 0) return;
  auto one = [&](index_t i) {
    const Offsets o = offsets(i, nd, shape, sa, sb, sc);
    sgemm(trans_a, trans_b, M, N, K, alpha, A + o.a, lda, B + o.b, ldb, beta, C + o.c, ldc);
  };
  const index_t flops = M * N * K, threads = max_threads();
  if (!shared_c && count > 1 && threads > 1 &&
      (flops < kAloneFlops || (count >= threads && flops < kSmallProduct))) {
#pragma omp parallel for schedule(static) num_threads(max_threads())
    for (index_t i = 0; i < count; ++i) one(i);
    return;
  }
  for (index_t i = 0; i < count; ++i) one(i);
}

}  // namespace fastlayers::cpu
