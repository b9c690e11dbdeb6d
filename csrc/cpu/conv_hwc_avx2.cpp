// AVX2 (+ FMA) instance of the HWC direct convolution (conv_hwc_kernels.h). Compiled with
// -mavx2 -mfma; conv_hwc.cpp calls it when active_isa() says avx2.
#include "cpu/simd_avx2.h"
#include "cpu/conv_hwc_kernels.h"

namespace fastlayers::cpu {

void hwc_forward_image_avx2(const Conv2dShape& s, const float* x, const float* Wk, const float* bias, const float* res,
                            bool relu, float* y, float* ws, int t, int team, ImageIo io) {
  hwc::forward_image<simd::Avx2>(s, x, Wk, bias, res, relu, y, ws, t, team, io);
}

// Backward-weight: one image's contribution added to Wt (R*S x C x K).
void hwc_backward_weight_image_avx2(const Conv2dShape& s, const float* x, const float* grad_out, float* Wt,
                                    float* ws) {
  hwc::backward_weight_image<simd::Avx2>(s, x, grad_out, Wt, ws);
}

// Backward-data of a stride-2 layer: grad_x of one image, overwritten.
void hwc_backward_data_image_avx2(const Conv2dShape& s, const HwcBdGeom& g, const float* grad_out, const float* Wp,
                                  float* grad_x, float* ws) {
  hwc::backward_data_image<simd::Avx2>(s, g, grad_out, Wp, grad_x, ws);
}

}  // namespace fastlayers::cpu
