// AVX2 (+ FMA) instance of the pixels-in-lanes direct convolution (conv_pixels_kernels.h).
// Compiled with -mavx2 -mfma; conv_pixels.cpp calls these when active_isa() says avx2.
#include "cpu/simd_avx2.h"
#include "cpu/conv_pixels_kernels.h"

namespace fastlayers::cpu {

void pixconv_forward_image_avx2(const Conv2dShape& s, const float* x, const float* w, const float* bias,
                                const float* res, bool relu, float* y, float* ws, int t, int team) {
  pixconv::forward_image<simd::Avx2>(s, x, w, bias, res, relu, y, ws, t, team);
}

// Backward-weight's partial sums for images [n0, n1) into acc (K * TAPS * 16 floats, added to).
void pixconv_backward_weight_images_avx2(const Conv2dShape& s, const float* x, const float* grad_out, index_t n0,
                                         index_t n1, float* acc, float* ws) {
  pixconv::bw_images<simd::Avx2>(s, x, grad_out, n0, n1, acc, ws);
}

}  // namespace fastlayers::cpu
