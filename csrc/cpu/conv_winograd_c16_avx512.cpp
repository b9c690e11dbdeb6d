// AVX-512 instance of the channels-in-lanes Winograd kernels (conv_winograd_c16_kernels.h).
// Compiled with -mavx512f ...; conv_winograd_c16.cpp calls these only when active_isa() says avx512.
#include "cpu/simd_avx512.h"
#include "cpu/conv_winograd_c16_kernels.h"

namespace fastlayers::cpu {

void winograd_c16_prepare_avx512(const Conv2dShape& s, int alpha, const float* w, float* U) {
  wino16::prepare_any<simd::Avx512>(s, alpha, w, U);
}

void winograd_c16_prepare_transposed_avx512(const Conv2dShape& s, int alpha, const float* w, float* Ut) {
  wino16::prepare_transposed_any<simd::Avx512>(s, alpha, w, Ut);
}

void winograd_c16_backward_data_image_avx512(const Conv2dShape& s, const WinoC16Geom& g, const float* grad_out,
                                          const float* Ut, float* grad_x, float* ws) {
  wino16::backward_data_any<simd::Avx512>(s, g, grad_out, Ut, grad_x, ws);
}

void winograd_c16_weight_grad_transform_avx512(const Conv2dShape& s, int alpha, const float* Mw, float* grad_w,
                                              index_t k0, index_t k1) {
  wino16::weight_grad_transform_any<simd::Avx512>(s, alpha, Mw, grad_w, k0, k1);
}

void winograd_c16_backward_weight_images_avx512(const Conv2dShape& s, const WinoC16Geom& g, const float* x,
                                                const float* grad_out, index_t n0, index_t n1, float* Mw, float* ws) {
  wino16::backward_weight_any<simd::Avx512>(s, g, x, grad_out, n0, n1, Mw, ws);
}

void winograd_c16_forward_image_avx512(const Conv2dShape& s, const WinoC16Geom& g, const float* x, const float* U,
                                       const float* w, const float* bias, const float* res, bool relu, float* y,
                                       float* ws, int t, int team, ImageIo io) {
  wino16::forward_image_any<simd::Avx512>(s, g, x, U, w, bias, res, relu, y, ws, t, team, io);
}

}  // namespace fastlayers::cpu
