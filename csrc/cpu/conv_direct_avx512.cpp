// AVX-512 build of conv_direct_kernel.h: 8 output channels x 3 vectors of 16 pixels (24 zmm
// accumulators; per tap 3 loads + 8 broadcasts feed 24 FMAs).
#include <immintrin.h>

#include "cpu/conv_direct_kernel.h"

namespace fastlayers::cpu {

namespace {
struct V512 {
  static constexpr int L = 16;
  using reg = __m512;
  static reg zero() { return _mm512_setzero_ps(); }
  static reg loadu(const float* p) { return _mm512_loadu_ps(p); }
  static void storeu(float* p, reg v) { _mm512_storeu_ps(p, v); }
  static reg load(const float* p) { return _mm512_loadu_ps(p); }
  static reg bcast(const float* p) { return _mm512_set1_ps(*p); }
  static reg fma(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
  static reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
  static reg max0(reg a) { return _mm512_max_ps(a, _mm512_setzero_ps()); }
  static void store(float* p, reg v) { _mm512_store_ps(p, v); }
  static void copy_n(float* dst, const float* src, index_t n) {
    const __mmask16 m = static_cast<__mmask16>((1u << n) - 1u);
    _mm512_mask_storeu_ps(dst, m, _mm512_maskz_loadu_ps(m, src));
  }
};
constexpr int kMR = 8, kNV = 3;
}  // namespace

DirectTiling direct_tiling_avx512() { return {kMR, kNV * V512::L}; }

void direct_blocks_avx512(const DirectImage& d, index_t b0, index_t b1) {
  direct_kernel::blocks<V512, kMR, kNV>(d, b0, b1);
}

index_t direct_bw_lanes_avx512() { return 16; }

void direct_bw_image_avx512(const DirectBwImage& d) { direct_kernel::bw_image<V512, 2>(d); }

}  // namespace fastlayers::cpu
