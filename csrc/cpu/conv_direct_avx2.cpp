// AVX2 build of conv_direct_kernel.h: 4 output channels x 3 vectors of 8 pixels (12 ymm
// accumulators + 3 for x + 1 broadcast of the 16 registers).
#include <immintrin.h>

#include "cpu/conv_direct_kernel.h"

namespace fastlayers::cpu {

namespace {
struct V256 {
  static constexpr int L = 8;
  using reg = __m256;
  static reg zero() { return _mm256_setzero_ps(); }
  static reg loadu(const float* p) { return _mm256_loadu_ps(p); }
  static void storeu(float* p, reg v) { _mm256_storeu_ps(p, v); }
  static reg load(const float* p) { return _mm256_loadu_ps(p); }
  static reg bcast(const float* p) { return _mm256_broadcast_ss(p); }
  static reg fma(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
  static reg add(reg a, reg b) { return _mm256_add_ps(a, b); }
  static reg max0(reg a) { return _mm256_max_ps(a, _mm256_setzero_ps()); }
  static void store(float* p, reg v) { _mm256_store_ps(p, v); }
  static void copy_n(float* dst, const float* src, index_t n) {
    const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    _mm256_maskstore_ps(dst, m, _mm256_maskload_ps(src, m));
  }
};
constexpr int kMR = 4, kNV = 3;
}  // namespace

DirectTiling direct_tiling_avx2() { return {kMR, kNV * V256::L}; }

void direct_blocks_avx2(const DirectImage& d, index_t b0, index_t b1) {
  direct_kernel::blocks<V256, kMR, kNV>(d, b0, b1);
}

index_t direct_bw_lanes_avx2() { return 8; }

void direct_bw_image_avx2(const DirectBwImage& d) { direct_kernel::bw_image<V256, 1>(d); }

}  // namespace fastlayers::cpu
