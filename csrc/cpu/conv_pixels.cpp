// The pixels-in-lanes direct convolution (conv_pixels.h): where it applies and the dispatch to its
// AVX-512 kernel.
#include "cpu/conv_pixels.h"

#include <cstdlib>

#include "cpu/cpu_features.h"

namespace fastlayers::cpu {

#if defined(__x86_64__) || defined(_M_X64)
index_t pixconv_padded_floats_avx512(const Conv2dShape& s);
void pixconv_forward_image_avx512(const Conv2dShape& s, const float* x, const float* w, const float* bias,
                                  const float* res, bool relu, float* y, float* ws, int t, int team);
#endif

bool pixconv_possible(const Conv2dShape& s) {
#if defined(__x86_64__) || defined(_M_X64)
  if (active_isa() != Isa::avx512) return false;
  const bool stride = s.stride_h == s.stride_w && (s.stride_h == 1 || s.stride_h == 2);
  return stride && s.groups == 1 && s.dil_h == 1 && s.dil_w == 1 && s.C * s.R * s.S <= 25 && s.K > 0 && s.P > 0 &&
         s.Q > 0;
#else
  (void)s;
  return false;
#endif
}

index_t pixconv_slice_floats(const Conv2dShape& s) {
#if defined(__x86_64__) || defined(_M_X64)
  return pixconv_padded_floats_avx512(s);
#else
  (void)s;
  return 0;
#endif
}

void pixconv_forward_image(const Conv2dShape& s, const float* x, const float* w, const float* bias, const float* res,
                           bool relu, float* y, float* ws, int t, int team) {
#if defined(__x86_64__) || defined(_M_X64)
  pixconv_forward_image_avx512(s, x, w, bias, res, relu, y, ws, t, team);
#else
  (void)s, (void)x, (void)w, (void)bias, (void)res, (void)relu, (void)y, (void)ws, (void)t, (void)team;
  std::abort();  // pixconv_possible is false here
#endif
}

}  // namespace fastlayers::cpu
