#include "cpu/plan/plan.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <new>
#include <stdexcept>
#include <string>

#include "cpu/align.h"
#include "cpu/conv.h"
#include "cpu/conv_hwc.h"
#include "cpu/conv_smallc.h"
#include "cpu/conv_winograd.h"
#include "cpu/conv_pixels.h"
#include "cpu/conv_winograd_c16.h"
#include "cpu/cpu_features.h"
#include "cpu/gemm.h"
#include "cpu/parallel.h"
#include "cpu/pool.h"
#include "cpu/pool_2x2.h"

namespace fastlayers::cpu::plan {

namespace {

inline float act(Act a, float v) {
  // ReLU as the op: NaN stays NaN.
  return a == Act::relu ? (v > 0.0f ? v : (v != v ? v : 0.0f)) : v;
}

// dst[i] = act(z[i] + res[i]) (or act(z[i]) without a residual) over [i0, i1); dst may be z.
void residual_act(float* dst, const float* z, const float* res, Act a, index_t i0, index_t i1) {
  if (res != nullptr) {
#pragma omp simd
    for (index_t i = i0; i < i1; ++i) dst[i] = act(a, z[i] + res[i]);
  } else {
#pragma omp simd
    for (index_t i = i0; i < i1; ++i) dst[i] = act(a, z[i]);
  }
}

float* alloc_floats(index_t n) {
  if (n <= 0) return nullptr;
  void* p = std::aligned_alloc(64, static_cast<size_t>((n * 4 + 63) / 64 * 64));
  if (p == nullptr) throw std::bad_alloc();
  return static_cast<float*>(p);
}

index_t conv_in_floats(const Conv2dShape& s) { return s.N * s.C * s.H * s.W; }
index_t conv_out_floats(const Conv2dShape& s) { return s.N * s.K * s.P * s.Q; }

// Whether the direct kernel (conv_smallc.h) can run this forward convolution with packed filters
// (packed once here, so from 256 channels up as well: smallc_applies_prepacked):
// conv2d_forward's own order is Winograd, then 1x1 as a plain GEMM on x, then the direct kernel.
bool smallc_possible(const Conv2dShape& s) {
  const bool direct = s.R == 1 && s.S == 1 && s.stride_h == 1 && s.stride_w == 1 && s.pad_h == 0 && s.pad_w == 0;
  return !direct && smallc_applies_prepacked(s);
}

// A development switch's first character ('0' off, '1' forced; '\0' when unset), read at plan build.
char plan_switch(const char* name) {
  const char* e = std::getenv(name);
  return e != nullptr ? e[0] : '\0';
}

// Whether the channels-in-lanes Winograd (conv_winograd_c16.h) takes this conv: up to 128 x 128
// channels, where its transformed filters (36 C K floats, 2.3 MB at 128 x 128) stay near the core
// while an image's tiles read them. Plan step alone, min of 15 interleaved runs, the plan's path
// before (direct kernel or per-call Winograd) / this one, ms:
// - 1 thread: 16 -> 16 on 28x28, batch 64, 2.51 / 1.38; 32 -> 32 on 14x14 2.32 / 1.36; 64 -> 64
//   on 7x7 2.41 / 0.99; the CNN's 32 -> 64 5x5 on 12x12, batch 100, 5.94 / 3.70; 64 -> 64 on
//   56x56, batch 1, 2.08 / 0.81, batch 8 15.2 / 6.5; 128 -> 128 on 28x28, batch 1, 2.16 / 0.97.
// - 2 threads: 64 -> 64 on 56x56 1.17 / 0.48; 128 -> 128 on 28x28 batch 16 13.0 / 7.4.
// - Past it the filters are streamed from memory for each image: 256 -> 256 on 14x14 at batch 1
//   2.13 / 2.81 (1 thread), 512 -> 512 on 7x7 at batch 4 4.6 / 11.0 (2 threads).
// FASTLAYERS_PLAN_WINO16=0 (read at plan build; a development switch for A/B runs) turns it off.
bool wino16_preferred(const Conv2dShape& s) {
  if (plan_switch("FASTLAYERS_PLAN_WINO16") == '0') return false;
  return winograd_c16_possible(s) && s.C * s.K <= 128 * 128;
}

// Whether the HWC direct kernel (conv_hwc.h) takes this conv: as hwc_by_default (AVX2 machines, the
// layers Winograd and the pixels kernel do not take, not 1x1), where conv2d_forward had only
// im2col + GEMM. FASTLAYERS_PLAN_HWC (read at plan build): 0 off, 1 on wherever it can run.
bool hwc_preferred(const Conv2dShape& s) {
  const char e = plan_switch("FASTLAYERS_PLAN_HWC");
  if (e == '0') return false;
  return e == '1' ? hwc_possible(s) : hwc_by_default(s);
}

// Whether the plan may put on conv_hwc a conv that hwc_preferred leaves to another kernel (a
// pooled one-channel conv, hwc_pooled_preferred; a conv joining HWC values, Step::hwc_if_chained):
// on AVX2, where conv_hwc can run it with at most 2^17 filter floats (as hwc_by_default).
// FASTLAYERS_PLAN_HWC=0 turns this off as well.
bool hwc_beyond_default(const Conv2dShape& s) {
  return plan_switch("FASTLAYERS_PLAN_HWC") != '0' && active_isa() == Isa::avx2 && hwc_possible(s) &&
         hwc_filter_floats(s) <= (index_t{1} << 17);
}

// Whether a conv followed by a 2x2 pool runs on the HWC kernel, pooled in HWC (OutPool): one input
// channel too. The CNN's conv1 (1 -> 32 5x5 on 28x28, + max pool + ReLU), plan step, paired medians
// of 40 interleaved runs, pixels kernel + pool epilogue / this: batch 100 5.43 / 2.97 ms at 1 thread
// (1.82x), 3.01 / 1.44 ms at 2 (2.06x); batch 1 42 / 29 us.
bool hwc_pooled_preferred(const Step& s) {
  return s.epi.pool != PoolKind::none && s.epi.residual < 0 && s.conv.R * s.conv.S > 1 && hwc_beyond_default(s.conv);
}

// Whether the pixels-in-lanes direct kernel (conv_pixels.h) takes this conv: every layer it can
// run (at most 25 taps). FASTLAYERS_PLAN_PIXCONV=0 (read at plan build) turns it off.
bool pixconv_preferred(const Conv2dShape& s) {
  if (plan_switch("FASTLAYERS_PLAN_PIXCONV") == '0') return false;
  return pixconv_possible(s);
}

}  // namespace

// out[n][c] = the mean of in[n][i][c] over the hw pixels i, for images of hw x channels floats in
// HWC (an HWC value, choose_hwc_values), summed in double as global_avg_pool2d_forward does.
static void global_avg_pool_hwc(const float* in, float* out, index_t images, index_t hw, index_t channels) {
  std::vector<double> sum(static_cast<size_t>(channels));
  for (index_t n = 0; n < images; ++n) {
    std::fill(sum.begin(), sum.end(), 0.0);
    const float* img = in + n * hw * channels;
    for (index_t i = 0; i < hw; ++i)
      for (index_t c = 0; c < channels; ++c) sum[c] += img[i * channels + c];
    for (index_t c = 0; c < channels; ++c) out[n * channels + c] = static_cast<float>(sum[c] / static_cast<double>(hw));
  }
}

void Plan::Free::operator()(float* p) const { std::free(p); }

int Plan::add_value(index_t floats, index_t offset) {
  if (finalized_) throw std::invalid_argument("plan: add_value after finalize");
  if (floats < 1) throw std::invalid_argument("plan: a value needs at least one float, got " + std::to_string(floats));
  if (offset < -2) throw std::invalid_argument("plan: offset must be >= 0, -1 (input) or -2 (output)");
  for (const Value& v : values_)
    if (offset < 0 && v.offset == offset)
      throw std::invalid_argument(offset == -1 ? "plan: two input values" : "plan: two output values");
  values_.push_back({floats, offset});
  return static_cast<int>(values_.size()) - 1;
}

index_t Plan::input_floats() const {
  for (const Value& v : values_)
    if (v.offset == -1) return v.floats;
  return 0;
}

index_t Plan::output_floats() const {
  for (const Value& v : values_)
    if (v.offset == -2) return v.floats;
  return 0;
}

index_t Plan::weight_floats() const {
  index_t n = 0;
  for (const Step& s : steps_) n += s.w.size() + s.b.size() + s.packed.size() + s.scale.size();
  return n;
}

std::vector<std::string> Plan::conv_algorithms() const {
  std::vector<std::string> out;
  for (const Step& s : steps_)
    out.push_back(s.kind != StepKind::conv ? ""
                  : s.wino16                 ? "winograd_c16"
                  : s.pixconv                ? "pixels"
                  : s.hwc                    ? "hwc"
                  : s.smallc                 ? "direct"
                                             : "conv2d_forward");
  return out;
}

int Plan::add_step(Step s) {
  if (finalized_) throw std::invalid_argument("plan: add_step after finalize");
  const int nv = static_cast<int>(values_.size());
  auto id = [&](int v, const char* what, bool optional) {
    if (optional && v == -1) return;
    if (v < 0 || v >= nv) throw std::invalid_argument(std::string("plan: ") + what + " is not a value id: " + std::to_string(v));
  };
  auto floats = [&](int v) { return values_[v].floats; };
  auto need = [&](bool ok, const std::string& why) {
    if (!ok) throw std::invalid_argument("plan: step " + std::to_string(steps_.size()) + ": " + why);
  };
  id(s.in, "in", false);
  id(s.out, "out", false);
  id(s.in2, "in2", true);
  id(s.tmp, "tmp", true);
  id(s.epi.residual, "residual", true);
  need(values_[s.out].offset != -1, "writes the model's input");
  if (s.tmp >= 0) need(values_[s.tmp].offset >= 0, "tmp must be an arena value");
  const bool pooled = s.epi.pool != PoolKind::none;
  switch (s.kind) {
    case StepKind::conv: {
      const Conv2dShape& c = s.conv;
      need(conv2d_shape_error(c) == nullptr, "invalid conv geometry");
      need(floats(s.in) == conv_in_floats(c), "conv input size");
      need(static_cast<index_t>(s.w.size()) == c.K * (c.C / c.groups) * c.R * c.S, "conv weight size");
      need(s.b.empty() || static_cast<index_t>(s.b.size()) == c.K, "conv bias size");
      s.C = c.K;
      s.HW = c.P * c.Q;
      if (pooled) {
        need(s.tmp >= 0 && floats(s.tmp) == conv_out_floats(c), "a fused pool needs tmp of the conv's output size");
        need(c.P >= 2 && c.Q >= 2, "a fused 2x2 pool needs outputs of at least 2x2");
        need(floats(s.out) == c.N * c.K * (c.P / 2) * (c.Q / 2), "pooled output size");
      } else {
        need(s.tmp == -1, "tmp without a fused pool");
        need(floats(s.out) == conv_out_floats(c), "conv output size");
      }
      if (s.epi.residual >= 0) need(floats(s.epi.residual) == conv_out_floats(c), "residual size");
      break;
    }
    case StepKind::linear:
      need(s.M >= 1 && s.N >= 1 && s.K >= 1, "dense sizes");
      need(floats(s.in) == s.M * s.K && floats(s.out) == s.M * s.N, "dense input/output size");
      need(static_cast<index_t>(s.w.size()) == s.N * s.K, "dense weight size");
      need(s.b.empty() || static_cast<index_t>(s.b.size()) == s.N, "dense bias size");
      need(!pooled && s.epi.residual == -1 && s.tmp == -1, "a dense step fuses an activation only");
      break;
    case StepKind::pool: {
      const Pool2dGeometry& g = s.pool;
      need(g.planes >= 1 && g.h >= 1 && g.w >= 1 && g.kh >= 1 && g.kw >= 1 && g.sh >= 1 && g.sw >= 1, "pool sizes");
      need(g.ph >= 0 && g.pw >= 0 && 2 * g.ph <= g.kh && 2 * g.pw <= g.kw, "pool padding");
      need(g.h + 2 * g.ph >= g.kh && g.w + 2 * g.pw >= g.kw, "pool window larger than the input");
      need(s.pool_kind == PoolKind::max || s.pool_kind == PoolKind::avg, "pool kind");
      need(g.dh == 1 && g.dw == 1 && g.oh == (g.h + 2 * g.ph - g.kh) / g.sh + 1 && g.ow == (g.w + 2 * g.pw - g.kw) / g.sw + 1,
           "pool: dilation 1, floor-mode output size");
      need(floats(s.in) == g.planes * g.h * g.w && floats(s.out) == g.planes * g.oh * g.ow, "pool sizes");
      need(!pooled && s.epi.residual == -1, "a pool step fuses an activation only");
      break;
    }
    case StepKind::global_avg_pool:
      need(s.C >= 1 && s.HW >= 1 && floats(s.in) == s.C * s.HW && floats(s.out) == s.C, "global pool sizes");
      need(!pooled && s.epi.residual == -1, "a global pool step fuses an activation only");
      break;
    case StepKind::add:
      need(s.in2 >= 0 && floats(s.in) == s.M && floats(s.in2) == s.M && floats(s.out) == s.M, "add sizes");
      need(!pooled && s.epi.residual == -1, "an add step fuses an activation only");
      break;
    case StepKind::act:
    case StepKind::copy:
      need(floats(s.in) == s.M && floats(s.out) == s.M, "elementwise sizes");
      need(!pooled && s.epi.residual == -1, "fuses nothing");
      break;
    case StepKind::affine:
      need(s.C >= 1 && s.HW >= 1 && s.M >= 1 && floats(s.in) == s.M * s.C * s.HW && floats(s.out) == floats(s.in),
           "affine sizes");
      need(static_cast<index_t>(s.scale.size()) == s.C && static_cast<index_t>(s.b.size()) == s.C, "affine scale/shift");
      need(!pooled && s.epi.residual == -1, "an affine step fuses an activation only");
      break;
    default:
      need(false, "unknown step kind");
  }
  steps_.push_back(std::move(s));
  return static_cast<int>(steps_.size()) - 1;
}

void Plan::finalize(index_t arena_floats, int threads, index_t batch, bool per_thread) {
  if (finalized_) throw std::invalid_argument("plan: finalize called twice");
  if (input_floats() == 0 || output_floats() == 0) throw std::invalid_argument("plan: needs an input and an output value");
  if (batch < 1) throw std::invalid_argument("plan: batch must be >= 1, got " + std::to_string(batch));
  for (const Value& v : values_) {
    if (v.offset >= 0 && v.offset + v.floats > arena_floats)
      throw std::invalid_argument("plan: a value lies past the arena's end");
    if (v.floats % batch != 0) throw std::invalid_argument("plan: a value's floats are not a multiple of the batch");
  }
  // Every count a step scales by its chunk's images (run_step) must hold whole images.
  for (size_t i = 0; i < steps_.size(); ++i) {
    const Step& s = steps_[i];
    const index_t count = s.kind == StepKind::conv              ? s.conv.N
                          : s.kind == StepKind::pool            ? s.pool.planes
                          : s.kind == StepKind::global_avg_pool ? s.C
                                                                : s.M;
    if (count % batch != 0 || (s.kind == StepKind::conv && count != batch))
      throw std::invalid_argument("plan: step " + std::to_string(i) + " does not hold whole images of a batch of " +
                                  std::to_string(batch));
  }
  batch_ = batch;
  threads_ = std::max(threads, 1);
  // Whether the HWC kernels (conv_winograd_c16, conv_hwc) pool a following 2x2 pool before their
  // transpose back to NCHW (OutPool) rather than writing the full-size result for the epilogue to
  // pool. FASTLAYERS_PLAN_FUSED_POOL=0 turns it off, for A/B runs and tests.
  fused_pool_ = plan_switch("FASTLAYERS_PLAN_FUSED_POOL") != '0';
  per_thread_ = per_thread && threads_ > 1;
  scratches_ = per_thread_ ? threads_ : 1;
  // Workspace floats: slices for the team (steps splitting a chunk), or for one thread (per_thread).
  const index_t team = per_thread_ ? 1 : threads_;
  index_t ws = 0;
  for (Step& s : steps_) {
    if (s.kind == StepKind::linear) {
      // w^T in the SGEMM's panels, once (64-byte aligned inside the vector: the kernels' aligned
      // loads), instead of packed again on every call.
      s.packed.assign(static_cast<size_t>(sgemm_packed_b_floats(s.K, s.N) + kAlignSlackFloats), 0.0f);
      sgemm_pack_b(true, s.K, s.N, s.w.data(), s.K, align64(s.packed.data()));
      s.packed_cols = sgemm_packed_b_cols();
      std::vector<float>().swap(s.w);
      continue;
    }
    if (s.kind != StepKind::conv) continue;
    s.wino16 = wino16_preferred(s.conv);
    const bool hwc_pooled = !s.wino16 && hwc_pooled_preferred(s);
    s.pixconv = !s.wino16 && !hwc_pooled && pixconv_preferred(s.conv);
    // Tentatively on conv_hwc, kept there only if it joins an HWC value (choose_hwc_values; else
    // given back to the pixels kernel below). The small ResNet's first conv (1 -> 16 3x3) and its
    // 1x1 stride-2 projections then join, all nine of its values HWC; its plan at batch 64, 1
    // thread, paired medians of 40 interleaved runs (another job loading the machine), pixels
    // kernel / this: 20.6 / 18.3 ms (1.13x) - the projections 1.91x and 1.58x, the first conv 0.91x.
    s.hwc_if_chained = s.pixconv && hwc_beyond_default(s.conv);
    if (s.hwc_if_chained) {
      s.pixconv = false;
      ws = std::max(ws, team * pixconv_slice_floats(s.conv));
    }
    s.hwc = !s.wino16 && !s.pixconv && (hwc_pooled || s.hwc_if_chained || hwc_preferred(s.conv));
    s.smallc = !s.wino16 && !s.pixconv && !s.hwc && smallc_possible(s.conv);
    if (s.hwc) {
      s.packed.assign(static_cast<size_t>(hwc_filter_floats(s.conv)), 0.0f);
      hwc_prepare(s.conv, s.w.data(), s.packed.data());
      ws = std::max(ws, team * hwc_slice_floats(s.conv));
      continue;
    }
    if (s.pixconv) {
      ws = std::max(ws, team * pixconv_slice_floats(s.conv));
      continue;
    }
    if (s.wino16) {
      s.packed.assign(static_cast<size_t>(winograd_c16_filter_floats(s.conv)), 0.0f);
      winograd_c16_prepare(s.conv, s.w.data(), s.packed.data());
      ws = std::max(ws, team * winograd_c16_slice_floats(s.conv));
      continue;
    }
    if (s.smallc) {
      s.packed.assign(static_cast<size_t>(smallc_shared_floats(s.conv, ConvPass::forward)), 0.0f);
      smallc_prepare_forward(s.conv, s.w.data(), s.packed.data());
      ws = std::max(ws, team * smallc_slice_floats(s.conv, ConvPass::forward));
    }
    const index_t need = conv2d_workspace_floats(s.conv, ConvPass::forward, static_cast<int>(team));
    if (need < 0) throw std::invalid_argument("plan: a conv's workspace size overflows");
    ws = std::max(ws, need);
  }
  arena_floats_ = round16(arena_floats);  // each thread's arena on whole cache lines
  workspace_floats_ = round16(ws);
  arena_.reset(alloc_floats(arena_floats_ * scratches_));
  workspace_.reset(alloc_floats(workspace_floats_ * scratches_));
  finalized_ = true;
  choose_conv_paths();
  choose_hwc_values();
  for (Step& s : steps_)
    if (s.hwc_if_chained && !s.x_hwc && !s.y_hwc) {  // no HWC value next to it: the pixels kernel
      s.hwc = false, s.pixconv = true;
      std::vector<float>().swap(s.packed);
    }
  // A conv on a direct kernel with packed filters (conv_smallc, conv_hwc) reads only those from
  // here on: the plain copy goes (ResNet-18 at batch 1 would otherwise hold its 3x3 filters twice,
  // 89 MB instead of 50).
  for (Step& s : steps_)
    if (s.kind == StepKind::conv && (s.smallc || s.hwc)) std::vector<float>().swap(s.w);
}

int Plan::hwc_values() const {  // each HWC value has one producer
  return static_cast<int>(std::count_if(steps_.begin(), steps_.end(), [](const Step& s) { return s.y_hwc; }));
}

std::vector<std::string> Plan::hwc_layouts() const {
  std::vector<std::string> out;
  for (const Step& s : steps_) out.push_back(std::string(s.x_hwc ? "x" : "") + (s.y_hwc ? "y" : ""));
  return out;
}

// The one place where the plan overrides conv2d_forward's choice of algorithm: conv.cpp tries
// Winograd first, but on small images the direct kernel with packed filters was faster here (one
// thread, interleaved medians, Winograd / direct): 3x3 p1 C=K=64 on 7x7 at batch 1 466 / 57-76 us
// (Winograd's per-call filter transform and blocks of 32 tiles for 4 real ones), C=K=32 14x14
// 143-277 / 48-63 us, C=K=16 28x28 97-149 / 48-64 us; batch 64: 11.7 / 7.4, 8.4 / 6.9, 17.6 / 11.1 ms;
// C=K=128 28x28 batch 4 23.3 / 21.1 ms. On 56x56 (layer c, batch 8) the two tied (47.7 / 50.6 ms),
// so larger images keep conv2d_forward's choice, except at batch 1: ResNet-18's 64 -> 64 on 56x56
// (zoo, batch 1, 2 threads) took 1.16-1.22 ms per conv this way against 1.4-1.8 ms by Winograd,
// the whole model 21.3-22.1 against 22.9-24.0 ms (1 thread 38.6 against 39.8-45.5 ms). A rule
// rather than a timing at build, so that a plan gives the same bits on every run. Revisit when the conv dispatch changes (new 3x3 kernels).
// Re-measured on Zen 5 (this session's machine), forward ms Winograd / direct: C=K=64 on 7x7 at
// N=64 2.00 / 2.82 (1 thread), 1.19-1.50 / 1.41-1.72 (2 threads); at N=32 1.18 / 1.34 and
// 0.90 / 0.79; N=16 0.72 / 0.67 and 0.41 / 0.36; C=K=16 and 32 the direct kernel at every batch:
// so from 64 channels and N*P*Q >= 3000 pixels Winograd keeps those layers.
static bool prefer_direct_over_winograd(const Conv2dShape& s) {
  if (s.C / s.groups >= 64 && s.N * s.P * s.Q >= 3000 && s.N > 1) return false;
  return s.P * s.Q <= 28 * 28 || s.N == 1;
}

void Plan::choose_conv_paths() {
  for (Step& s : steps_) {
    if (s.kind != StepKind::conv || !s.smallc) continue;
    if (winograd_applies(s.conv, ConvPass::forward) && !prefer_direct_over_winograd(s.conv)) {
      s.smallc = false;
      std::vector<float>().swap(s.packed);
    }
  }
}

// Values kept in HWC between HWC kernels (ImageIo): an arena value written by a Winograd c16 or
// conv_hwc step with no pool (whose residual, if any, is an HWC value too), and read only as the
// input of such steps or of a global average pool, or as the residual of such a step that writes
// an HWC value itself. Found as a fixed point: every candidate in, then those that break a rule
// out until none does. The small ResNet: each block's inner value, between its two convs (the
// others are written or read by the pixels kernel). FASTLAYERS_PLAN_HWC_VALUES=0 (read at plan
// build) keeps every value in NCHW.
void Plan::choose_hwc_values() {
  if (plan_switch("FASTLAYERS_PLAN_HWC_VALUES") == '0') return;
  auto hwc_kernel = [](const Step& s) { return s.kind == StepKind::conv && (s.wino16 || s.hwc); };
  const int nv = static_cast<int>(values_.size());
  std::vector<int> producer(nv, -1);
  std::vector<char> hwc(nv, 0);
  for (int v = 0; v < nv; ++v) {
    if (values_[v].offset < 0) continue;  // the caller's x and y stay NCHW
    bool ok = true;
    for (size_t i = 0; i < steps_.size(); ++i) {
      const Step& s = steps_[i];
      if (s.out != v && s.tmp != v) continue;
      ok = ok && producer[v] < 0 && s.out == v && hwc_kernel(s) && s.epi.pool == PoolKind::none;
      producer[v] = static_cast<int>(i);
    }
    hwc[v] = ok && producer[v] >= 0;
  }
  for (bool changed = true; changed;) {
    changed = false;
    for (int v = 0; v < nv; ++v) {
      if (!hwc[v]) continue;
      const Step& p = steps_[producer[v]];
      bool ok = p.epi.residual < 0 || hwc[p.epi.residual];
      int readers = 0;
      for (const Step& s : steps_) {
        if (s.in == v) {
          ok = ok && (hwc_kernel(s) || s.kind == StepKind::global_avg_pool);
          ++readers;
        }
        if (s.in2 == v) ok = false;
        if (s.epi.residual == v) {
          ok = ok && hwc_kernel(s) && s.out >= 0 && hwc[s.out] && s.epi.pool == PoolKind::none;
          ++readers;
        }
      }
      if (!ok || readers == 0) hwc[v] = 0, changed = true;
    }
  }
  for (int v = 0; v < nv; ++v) {
    if (!hwc[v]) continue;
    steps_[producer[v]].y_hwc = true;
    for (Step& s : steps_)
      if (s.in == v) {
        s.x_hwc = true;
        if (s.kind == StepKind::global_avg_pool) s.K = steps_[producer[v]].conv.K;
      }
  }
}

float* Plan::at(int value, const ChunkIo& io) const {
  const index_t off = values_[value].offset;
  if (off == -1) return const_cast<float*>(io.x);  // read only: no step writes the input (add_step)
  if (off == -2) return io.y;
  return io.arena + off;
}

// out planes [p0, p1) (each HW = P*Q floats of z, or (P/2)*(Q/2) of out with a fused pool).
void Plan::epilogue(const Step& s, const float* z, float* out, const float* res, index_t p0, index_t p1,
                    bool act_done) const {
  const Act a = s.epi.act;
  const index_t HW = s.HW;
  if (s.epi.pool == PoolKind::none) {
    residual_act(out, z, res, a, p0 * HW, p1 * HW);
    return;
  }
  // With a 2x2 pool: residual and act (when it comes first) in place on z, then the pool kernels
  // (csrc/cpu/pool.h, vectorised), then act on the pooled planes (when it comes after). A single
  // scalar pass computing all of it per output measured 15-20x slower than these three vector
  // passes (LeNet conv1 at batch 64: 14.3 ms against 0.7 ms for the conv itself).
  const index_t P = s.conv.P, Q = s.conv.Q, P2 = P / 2, Q2 = Q / 2;
  float* zp = const_cast<float*>(z);  // the step's own scratch (tmp): rewriting it is fine
  const Act before_pool = s.epi.act_first && !act_done ? a : Act::none;
  if (res != nullptr || before_pool != Act::none) residual_act(zp, zp, res, before_pool, p0 * HW, p1 * HW);
  const Pool2dGeometry g{p1 - p0, P, Q, 2, 2, 2, 2, 0, 0, 1, 1, P2, Q2};
  float* o = out + p0 * P2 * Q2;
  if (s.epi.pool == PoolKind::max)
    max_pool2d_forward(z + p0 * HW, o, nullptr, g);
  else
    avg_pool2d_forward(z + p0 * HW, o, g, true, 0.0);
  if (a != Act::none && !s.epi.act_first) {
    const index_t n = (p1 - p0) * P2 * Q2;
#pragma omp simd
    for (index_t i = 0; i < n; ++i) o[i] = act(a, o[i]);
  }
}

std::vector<index_t> Plan::chunk_bounds(index_t images, int threads) const {
  if (images < 1) return {0};
  // Steps splitting a chunk over the team: in units of `unit` images (the thread count when the
  // batch is a multiple of it, else 1), the fewest chunks of at most batch_ / unit units each, the
  // units spread evenly over them. Per thread: the fewest chunks of at most batch_ images, their
  // count rounded up to a multiple of the threads (each thread as many), as even as can be.
  // Written with no product that could overflow 64 bits, whatever `images` is.
  auto ceil_div = [](index_t a, index_t b) { return a / b + (a % b != 0); };
  const index_t unit = !per_thread_ && threads > 1 && batch_ % threads == 0 ? threads : 1;
  const index_t units = ceil_div(images, unit);
  index_t chunks = ceil_div(units, batch_ / unit);
  if (per_thread_ && threads > 1) chunks = std::min(images, ceil_div(chunks, threads) * threads);
  // q units per chunk, and one more in the last r: the last chunk, which may lose part of a unit
  // to `images`, is then one of the larger.
  const index_t q = units / chunks, r = units % chunks;
  std::vector<index_t> bounds(static_cast<size_t>(chunks) + 1);
  for (index_t i = 0; i <= chunks; ++i)
    bounds[i] = std::min(images, unit * (q * i + std::max<index_t>(0, i - (chunks - r))));
  return bounds;
}

template <class RunStep>
bool Plan::run_chunks(const float* x, float* y, int threads, index_t images, RunStep step) {
  if (!finalized_ || images < 0) return false;
  ThreadCap cap(threads > 0 ? threads : 0);
  const int T = std::min(max_threads(), threads_);
  const index_t in_image = input_floats() / batch_, out_image = output_floats() / batch_;
  const std::vector<index_t> bounds = chunk_bounds(images > 0 ? images : batch_, T);
  const index_t chunks = static_cast<index_t>(bounds.size()) - 1;
  auto chunk = [&](index_t k, index_t scratch) {
    const index_t n0 = bounds[k];
    const ChunkIo io{x + n0 * in_image, y + n0 * out_image, arena_.get() + scratch * arena_floats_,
                     workspace_.get() + scratch * workspace_floats_};
    for (size_t i = 0; i < steps_.size(); ++i)
      if (!step(i, io, bounds[k + 1] - n0)) return false;
    return true;
  };
  // Per thread, each thread's steps run their kernels on that thread alone (its workspace is sized
  // for one), here too when one thread runs them all (no team to start: also in a forked child).
  if (!per_thread_ || T == 1 || chunks == 1) {
    ThreadCap alone(per_thread_ ? 1 : 0);
    for (index_t k = 0; k < chunks; ++k)
      if (!chunk(k, 0)) return false;
    return true;
  }
  // Each thread its own chunks, the next one as it finishes one.
  bool ok = true;
#pragma omp parallel num_threads(static_cast<int>(std::min<index_t>(T, chunks)))
  {
    ThreadCap alone(1);
    const index_t t = omp_get_thread_num();
#pragma omp for schedule(dynamic, 1)
    for (index_t k = 0; k < chunks; ++k)
      if (!chunk(k, t)) {
#pragma omp atomic write
        ok = false;
      }
  }
  return ok;
}

bool Plan::run(const float* x, float* y, int threads, index_t images) {
  std::lock_guard<std::mutex> lock(mu_);
  return run_chunks(x, y, threads, images,
                    [&](size_t i, const ChunkIo& io, index_t n) { return run_step(steps_[i], io, n); });
}

// The per-image kernels (conv_winograd_c16, conv_pixels, conv_hwc) into z, with the residual `res` (or null)
// and ReLU fused when asked: images over the threads, or with fewer images than threads the team
// splits each image.
void Plan::per_image_into(const Step& s, const Conv2dShape& c, float* ws, const float* in, float* z, const float* res,
                          bool relu, const std::function<void(index_t)>& after_image, OutPool pool) {
  const float* b = s.b.empty() ? nullptr : s.b.data();
  const int T = std::min(max_threads(), threads_);
  const index_t slice = s.wino16 ? winograd_c16_slice_floats(c) : s.hwc ? hwc_slice_floats(c) : pixconv_slice_floats(c);
  const index_t in_img = c.C * c.H * c.W;
  const index_t out_img = pool.kind != OutPool::none ? c.K * (c.P / 2) * (c.Q / 2) : c.K * c.P * c.Q;
  ImageIo io;
  io.pool = pool;
  io.x_hwc = s.x_hwc;
  io.y_hwc = s.y_hwc;
  auto image = [&](index_t n, float* ws, int t, int team) {
    const float* r = res != nullptr ? res + n * out_img : nullptr;
    if (s.wino16)
      winograd_c16_forward_image(c, in + n * in_img, s.packed.data(), s.w.data(), b, r, relu, z + n * out_img, ws, t,
                                 team, io);
    else if (s.hwc)
      hwc_forward_image(c, in + n * in_img, s.packed.data(), b, r, relu, z + n * out_img, ws, t, team, io);
    else
      pixconv_forward_image(c, in + n * in_img, s.w.data(), b, r, relu, z + n * out_img, ws, t, team);
  };
  for_each_image(c.N, T, ws, slice, image, [&](index_t n) {
    if (after_image) after_image(n);
  });
}

// The conv alone (bias included) into z: conv2d_forward, or the direct kernel with the packed filters.
bool Plan::conv_into(const Step& s, const Conv2dShape& c, float* ws, const float* in, float* z) {
  const float* b = s.b.empty() ? nullptr : s.b.data();
  if (!s.smallc && !s.wino16 && !s.pixconv && !s.hwc) return conv2d_forward(c, in, s.w.data(), b, z, ws, workspace_floats_);
  const int T = std::min(max_threads(), threads_);
  if (s.wino16 || s.pixconv || s.hwc) {
    per_image_into(s, c, ws, in, z, nullptr, false);
    return true;
  }
  const index_t Cg = c.C / c.groups, Kg = c.K / c.groups, HWin = c.H * c.W, PQ = c.P * c.Q;
  const index_t slice = smallc_slice_floats(c, ConvPass::forward);
  auto image = [&](index_t n, float* slice_ws, bool inner) {
    for (index_t g = 0; g < c.groups; ++g)
      smallc_forward_image(c, in + (n * c.C + g * Cg) * HWin, s.packed.data(), g, b != nullptr ? b + g * Kg : nullptr,
                           z + (n * c.K + g * Kg) * PQ, slice_ws, inner);
  };
  if (T > 1 && c.N >= T) {
#pragma omp parallel num_threads(T)
    {
      const int t = omp_get_thread_num(), nt = omp_get_num_threads();
      for (index_t n = c.N * t / nt; n < c.N * (t + 1) / nt; ++n) image(n, ws + t * slice, false);
    }
  } else {
    for (index_t n = 0; n < c.N; ++n) image(n, ws, T > 1);
  }
  return true;
}

bool Plan::run_profiled(const float* x, float* y, int threads, std::vector<double>& seconds, index_t images) {
  std::lock_guard<std::mutex> lock(mu_);
  seconds.assign(steps_.size(), 0.0);
  double* sum = seconds.data();
  return run_chunks(x, y, threads, images, [&](size_t i, const ChunkIo& io, index_t n) {
    const auto t0 = std::chrono::steady_clock::now();
    const bool ok = run_step(steps_[i], io, n);
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
#pragma omp atomic update
    sum[i] += dt;  // per_thread: the threads' seconds added up
    return ok;
  });
}

bool Plan::run_step(const Step& s, const ChunkIo& io, index_t n) {
  const float* in = at(s.in, io);
  float* out = at(s.out, io);
  const float* res = s.epi.residual >= 0 ? at(s.epi.residual, io) : nullptr;
  const int T = std::min(max_threads(), threads_);
  const bool trivial = s.epi.act == Act::none && res == nullptr && s.epi.pool == PoolKind::none;
  // Epilogue over all planes, split over the threads when there is enough of it.
  auto epilogue_all = [&](const float* z, index_t planes) {
    if (trivial) return;
    const index_t work = planes * s.HW;
    if (T > 1 && work > kParallelGrain) {
    // One contiguous range of planes per thread: a call per plane cost more than the pool itself
    // (the CNN's conv2 + pool + ReLU at batch 64, 2 threads: 2.97 ms, against 1.18 without the pool).
#pragma omp parallel num_threads(T)
      {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        epilogue(s, z, out, res, planes * t / nt, planes * (t + 1) / nt);
      }
    } else {
      epilogue(s, z, out, res, 0, planes);
    }
  };
  switch (s.kind) {
    case StepKind::conv: {
      Conv2dShape c = s.conv;
      c.N = n;
      float* z = s.tmp >= 0 ? at(s.tmp, io) : out;
      const float* b = s.b.empty() ? nullptr : s.b.data();
      if (s.wino16 || s.pixconv || s.hwc) {
        if (s.epi.pool == PoolKind::none) {  // residual and ReLU inside the kernel
          per_image_into(s, c, io.ws, in, out, res, s.epi.act == Act::relu);
        } else if ((s.wino16 || s.hwc) && res == nullptr && fused_pool_) {  // pooled in HWC, then transposed
          OutPool pool;
          pool.kind = s.epi.pool == PoolKind::max ? OutPool::max : OutPool::avg;
          pool.relu_first = s.epi.act_first;
          per_image_into(s, c, io.ws, in, out, nullptr, s.epi.act == Act::relu, {}, pool);
        } else {  // each image's pool (and the rest) while its output is in cache
          // A ReLU before the pool goes into the kernel's stores, not a pass of its own over z
          // (LeNet-5's conv1 + ReLU + avg pool, batch 64, 1 thread: 0.37 -> 0.33 ms).
          const bool relu_in_kernel = res == nullptr && s.epi.act == Act::relu && s.epi.act_first;
          per_image_into(s, c, io.ws, in, z, nullptr, relu_in_kernel,
                         [&](index_t n) { epilogue(s, z, out, res, n * c.K, (n + 1) * c.K, relu_in_kernel); });
        }
        return true;
      }
      if (!s.smallc || trivial || !(T > 1 && c.N >= T)) {  // the conv, then the epilogue over all planes
        if (!conv_into(s, c, io.ws, in, z)) return false;
        epilogue_all(z, c.N * c.K);
        return true;
      }
      const index_t Cg = c.C / c.groups, Kg = c.K / c.groups, HWin = c.H * c.W, PQ = c.P * c.Q;
      const index_t slice = smallc_slice_floats(c, ConvPass::forward);
      auto image = [&](index_t n, float* ws, bool inner) {
        for (index_t g = 0; g < c.groups; ++g)
          smallc_forward_image(c, in + (n * c.C + g * Cg) * HWin, s.packed.data(), g, b != nullptr ? b + g * Kg : nullptr,
                               z + (n * c.K + g * Kg) * PQ, ws, inner);
      };
      // Images over the threads, each image's epilogue while its output is in cache.
#pragma omp parallel num_threads(T)
      {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        float* ws = io.ws + t * slice;
        for (index_t n = c.N * t / nt; n < c.N * (t + 1) / nt; ++n) {
          image(n, ws, false);
          epilogue(s, z, out, res, n * c.K, (n + 1) * c.K);
        }
      }
      return true;
    }
    case StepKind::linear: {
      const index_t M = scaled(s.M, n);
      sgemm_prepacked_b(false, M, s.N, s.K, 1.0f, in, s.K, align64(s.packed.data()), s.packed_cols, 0.0f, out, s.N);
      const float* b = s.b.empty() ? nullptr : s.b.data();
      if (b == nullptr && s.epi.act == Act::none) return true;
      const index_t N = s.N;
      auto rows = [&](index_t r0, index_t r1) {
        for (index_t r = r0; r < r1; ++r) {
          float* o = out + r * N;
          if (b != nullptr) {
#pragma omp simd
            for (index_t j = 0; j < N; ++j) o[j] = act(s.epi.act, o[j] + b[j]);
          } else {
#pragma omp simd
            for (index_t j = 0; j < N; ++j) o[j] = act(s.epi.act, o[j]);
          }
        }
      };
      if (T > 1 && M * N > kParallelGrain) {
#pragma omp parallel for schedule(static) num_threads(T)
        for (index_t r = 0; r < M; ++r) rows(r, r + 1);
      } else {
        rows(0, M);
      }
      return true;
    }
    case StepKind::pool: {
      Pool2dGeometry g = s.pool;
      g.planes = scaled(g.planes, n);
      if (s.pool_kind == PoolKind::max)
        max_pool2d_forward(in, out, nullptr, g);
      else
        avg_pool2d_forward(in, out, g, s.count_include_pad, 0.0);
      if (s.epi.act != Act::none) {
        const index_t m = g.planes * g.oh * g.ow;
#pragma omp simd
        for (index_t i = 0; i < m; ++i) out[i] = act(s.epi.act, out[i]);
      }
      return true;
    }
    case StepKind::global_avg_pool: {
      const index_t planes = scaled(s.C, n);
      if (s.x_hwc)
        global_avg_pool_hwc(in, out, planes / s.K, s.HW, s.K);
      else
        global_avg_pool2d_forward(in, out, planes, s.HW);
      if (s.epi.act != Act::none)
        for (index_t i = 0; i < planes; ++i) out[i] = act(s.epi.act, out[i]);
      return true;
    }
    case StepKind::add: {
      const float* in2 = at(s.in2, io);
      parallel_ranges(scaled(s.M, n), kParallelGrain, [&](index_t lo, index_t hi) {
#pragma omp simd
        for (index_t i = lo; i < hi; ++i) out[i] = act(s.epi.act, in[i] + in2[i]);
      });
      return true;
    }
    case StepKind::act:
      parallel_ranges(scaled(s.M, n), kParallelGrain, [&](index_t lo, index_t hi) {
#pragma omp simd
        for (index_t i = lo; i < hi; ++i) out[i] = act(s.epi.act, in[i]);
      });
      return true;
    case StepKind::copy:
      if (out != in) std::copy_n(in, scaled(s.M, n), out);
      return true;
    case StepKind::affine: {
      const index_t planes = scaled(s.M, n) * s.C, HW = s.HW;
      auto body = [&](index_t p) {
        const float sc = s.scale[p % s.C], sh = s.b[p % s.C];
        const float* src = in + p * HW;
        float* dst = out + p * HW;
#pragma omp simd
        for (index_t i = 0; i < HW; ++i) dst[i] = act(s.epi.act, src[i] * sc + sh);
      };
      if (T > 1 && planes * HW > kParallelGrain) {
#pragma omp parallel for schedule(static) num_threads(T)
        for (index_t p = 0; p < planes; ++p) body(p);
      } else {
        for (index_t p = 0; p < planes; ++p) body(p);
      }
      return true;
    }
  }
  return false;
}

}  // namespace fastlayers::cpu::plan
