// The ISA-neutral half of the direct small-channel convolution (conv_smallc.h): when it applies,
// its workspace, and the dispatch to the AVX-512 kernels (conv_smallc_avx512.cpp).
#include "cpu/conv_smallc.h"

#include <algorithm>
#include <cstdlib>

#include "cpu/cpu_features.h"

namespace fastlayers::cpu {

#if defined(__x86_64__) || defined(_M_X64)
void smallc_pack_weights_avx512(const Conv2dShape& s, const SmallCPlan& pl, const float* w, float* wp);
void smallc_forward_image_avx512(const Conv2dShape& s, const SmallCPlan& pl, const float* x, const float* wp,
                                 const float* bias, float* y, float* slice, bool parallel);
void smallc_backward_weight_avx512(const Conv2dShape& s, const SmallCPlan& pl, const float* grad_out,
                                   const float* x, index_t images, float* grad_w, bool overwrite, float* slice,
                                   bool parallel);
#endif

namespace {
constexpr index_t kBlock = 48;      // wide pixels per forward block (3 vectors)
constexpr index_t kMaxCRS = 4096;   // the kernels keep the tap offsets on the stack
}  // namespace

SmallCPlan smallc_plan(const Conv2dShape& s) {
  SmallCPlan pl{};
  const index_t sh = s.stride_h, sw = s.stride_w, Cg = s.C / s.groups;
  pl.Hq = s.P + ((s.R - 1) * s.dil_h) / sh;
  pl.Wq = s.Q + ((s.S - 1) * s.dil_w) / sw;
  pl.jw = s.P * pl.Wq;
  pl.jw_pad = (pl.jw + kBlock - 1) / kBlock * kBlock;
  // A tile past the last real pixel reads up to kBlock floats beyond the last plane.
  pl.xs_floats = Cg * sh * sw * pl.Hq * pl.Wq + kBlock;
  pl.CRS = Cg * s.R * s.S;
  pl.Hp = (s.P - 1) * sh + (s.R - 1) * s.dil_h + 1;
  pl.Wp = (s.Q - 1) * sw + (s.S - 1) * s.dil_w + 1;
  pl.xp_floats = (s.pad_h > 0 || s.pad_w > 0) ? Cg * pl.Hp * pl.Wp : 0;
  pl.Kv = (s.K / s.groups + 15) / 16 * 16;
  // grad_out^T in blocks of ~16 KiB (whole output rows), so it stays in L1 across the tap tiles.
  pl.rows_block = std::clamp<index_t>(4096 / std::max<index_t>(1, s.Q * pl.Kv), 1, s.P);
  return pl;
}

// Measured (benchmarks/conv_tune.py, see conv.cpp's header): a direct path wins for the first
// layers, where C/groups is 1-4 and im2col + a K = C*R*S GEMM is mostly overhead. With more
// channels the GEMM's blocking wins, so the path stays off there. The wide numbering computes
// Wq/Q of the needed columns: skip shapes where that waste is large.
bool smallc_applies(const Conv2dShape& s, ConvPass pass) {
#if defined(__x86_64__) || defined(_M_X64)
  if (pass == ConvPass::backward_data || active_isa() != Isa::avx512) return false;
  if (const char* e = std::getenv("FASTLAYERS_CONV_SMALLC"); e != nullptr && e[0] == '0') return false;
  const SmallCPlan pl = smallc_plan(s);
  const index_t Cg = s.C / s.groups;
  if (Cg > 4) return false;
  if (pass == ConvPass::backward_weight) return s.dil_w == 1;  // taps at unit offsets (bw_tile)
  return pl.CRS <= kMaxCRS && 5 * pl.Wq <= 6 * s.Q + 8;
#else
  (void)s;
  (void)pass;
  return false;
#endif
}

index_t smallc_shared_floats(const Conv2dShape& s, ConvPass pass) {
  if (pass != ConvPass::forward) return 0;
  const SmallCPlan pl = smallc_plan(s);
  return s.groups * pl.Kv * pl.CRS;
}

index_t smallc_slice_floats(const Conv2dShape& s, ConvPass pass) {
  const SmallCPlan pl = smallc_plan(s);
  if (pass != ConvPass::backward_weight) return pl.xs_floats + 16;  // + alignment slack
  return pl.xp_floats + pl.rows_block * s.Q * pl.Kv + pl.CRS * pl.Kv + 48;  // + alignment slack
}

void smallc_pack_weights(const Conv2dShape& s, const float* w, float* wp) {
#if defined(__x86_64__) || defined(_M_X64)
  smallc_pack_weights_avx512(s, smallc_plan(s), w, wp);
#else
  (void)s, (void)w, (void)wp;
  std::abort();  // smallc_applies is false here
#endif
}

void smallc_forward_image(const Conv2dShape& s, const float* x, const float* wp, const float* bias, float* y,
                          float* slice, bool parallel) {
#if defined(__x86_64__) || defined(_M_X64)
  smallc_forward_image_avx512(s, smallc_plan(s), x, wp, bias, y, slice, parallel);
#else
  (void)s, (void)x, (void)wp, (void)bias, (void)y, (void)slice, (void)parallel;
  std::abort();
#endif
}

void smallc_backward_weight(const Conv2dShape& s, const float* grad_out, const float* x, index_t images,
                            float* grad_w, bool overwrite, float* slice, bool parallel) {
#if defined(__x86_64__) || defined(_M_X64)
  smallc_backward_weight_avx512(s, smallc_plan(s), grad_out, x, images, grad_w, overwrite, slice, parallel);
#else
  (void)s, (void)grad_out, (void)x, (void)images, (void)grad_w, (void)overwrite, (void)slice, (void)parallel;
  std::abort();
#endif
}

}  // namespace fastlayers::cpu
