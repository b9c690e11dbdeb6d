// Host emulation of the CUDA pad, interpolate and cat/split kernels (pad_kernels.cuh,
// interpolate_kernels.cuh, concat_kernels.cuh) against plain loops. The backward kernels gather (each
// thread finds the outputs that read its input cell by inverting the per-axis maps); here they are
// checked against a scatter through the forward maps, which shares none of that inversion code.
// See cuda_shim.h for what emulation proves and what it does not. Build and run: run.sh
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "cuda_shim.h"
#include "cuda/concat_kernels.cuh"
#include "cuda/interpolate_kernels.cuh"
#include "cuda/pad_kernels.cuh"

using fastlayers::index_t;
using fastlayers::InterpGeometry;
using fastlayers::PadGeometry;
namespace pd = fastlayers::cuda::pad_detail;
namespace id = fastlayers::cuda::interp_detail;
namespace cd = fastlayers::cuda::concat_detail;

static int failures = 0;
static void expect(bool ok, const char* what, long a, long b, double err) {
  if (!ok) {
    ++failures;
    std::printf("FAIL %s (%ld, %ld): err %g\n", what, a, b, err);
  }
}

// A 2-D grid of 1-D blocks, one block at a time (the shim's emulate_launch3 with gz = 1).
template <class F>
void launch2(unsigned gx, unsigned gy, unsigned block, F fn) {
  emulate_launch3(gx, gy, 1, block, fn);
}

static std::vector<float> randn(index_t n, std::mt19937& rng) {
  std::normal_distribution<float> nd;
  std::vector<float> v(n + 4);
  for (auto& x : v) x = nd(rng);
  return v;
}

static index_t count(const index_t* s, int r) {
  index_t n = 1;
  for (int d = 0; d < r; ++d) n *= s[d];
  return n;
}

// ---------------------------------------------------------------------------------------- pad
struct PadCase {
  int mode, rank;
  index_t in[4], lo[4], hi[4];
};

static void test_pad() {
  using fastlayers::pad_source;
  const PadCase cases[] = {
      {0, 3, {2, 3, 4}, {0, 1, -1}, {0, 2, 2}},          // constant, crop and pad
      {0, 2, {3, 5}, {-2, 1}, {1, -3}},
      {1, 3, {2, 4, 5}, {0, 3, -1}, {0, 2, 4}},          // reflect at its maximum pad
      {2, 3, {2, 3, 3}, {0, 5, 1}, {0, -1, 6}},          // replicate beyond the size
      {3, 3, {1, 4, 5}, {0, 4, -1}, {0, 1, 2}},          // circular: whole period; crop then wrap
      {3, 4, {2, 3, 2, 4}, {0, 1, 2, -2}, {0, 3, 0, 2}},
      {1, 4, {1, 3, 4, 5}, {0, 2, 1, 4}, {0, 0, 3, 2}},
  };
  std::mt19937 rng(7);
  for (const auto& c : cases) {
    PadGeometry g;
    g.rank = c.rank;
    g.mode = c.mode;
    for (int d = 0; d < c.rank; ++d) g.in[d] = c.in[d], g.lo[d] = c.lo[d], g.out[d] = c.in[d] + c.lo[d] + c.hi[d];
    const index_t nin = count(g.in, g.rank), nout = count(g.out, g.rank);
    auto x = randn(nin, rng), go = randn(nout, rng);
    std::vector<float> y(nout + 4, -7.0f), want(nout), gi(nin + 4, -7.0f);
    std::vector<double> gwant(nin, 0.0);
    // Expected: per output element, its source through pad_source (the map itself is checked against
    // the NumPy reference through the CPU kernel, which uses the same header).
    for (index_t e = 0; e < nout; ++e) {
      index_t rem = e, off = 0, stride = 1;
      bool fill = false;
      for (int d = g.rank - 1; d >= 0; --d) {
        const index_t o = rem % g.out[d];
        rem /= g.out[d];
        const index_t s = pad_source<index_t>(g.mode, o, g.in[d], g.lo[d], g.out[d]);
        fill = fill || s < 0;
        off += s * stride;
        stride *= g.in[d];
      }
      want[e] = fill ? 2.5f : x[off];
      if (!fill) gwant[off] += go[e];
    }
    const auto geo = pd::narrow<int>(g);
    emulate_launch(3, 32, [&] { pd::pad_forward_kernel<int>(x.data(), y.data(), geo, static_cast<int>(nout), 2.5f); });
    bool ok = y[nout] == -7.0f;
    for (index_t e = 0; e < nout; ++e) ok = ok && y[e] == want[e];
    expect(ok, "pad_forward", c.mode, c.rank, 0);
    if (c.mode == 0) continue;  // constant backward is the forward with negated pads
    PadGeometry g4;
    g4.rank = 4;
    g4.mode = g.mode;
    const int shift = 4 - g.rank;
    for (int d = 0; d < 4; ++d) {
      g4.in[d] = d >= shift ? g.in[d - shift] : 1;
      g4.out[d] = d >= shift ? g.out[d - shift] : 1;
      g4.lo[d] = d >= shift ? g.lo[d - shift] : 0;
    }
    const auto geo4 = pd::narrow<long>(g4);
    emulate_launch(2, 32, [&] { pd::pad_backward_gather_kernel<long>(go.data(), gi.data(), geo4, static_cast<long>(nin)); });
    double err = 0;
    for (index_t i = 0; i < nin; ++i) err = std::max(err, std::fabs(gi[i] - gwant[i]));
    expect(err < 1e-5 && gi[nin] == -7.0f, "pad_backward", c.mode, c.rank, err);
  }
}

// -------------------------------------------------------------------------------- interpolate
static void test_interpolate() {
  using namespace fastlayers;
  struct Case {
    index_t planes, ih, iw, oh, ow;
    int mode;
    bool align;
    float sh, sw;
  };
  const Case cases[] = {
      {2, 3, 5, 6, 10, kInterpNearest, false, 0.5f, 0.5f},           // 2x: the o/2 shortcut
      {2, 5, 5, 5, 10, kInterpNearest, false, 1.0f / 1.2f, 1.0f / 2.1f},  // shortcuts with factors != 1, 2
      {1, 7, 4, 3, 9, kInterpNearest, false, 7.0f / 3, 4.0f / 9},    // down and up
      {2, 1, 5, 1, 10, kInterpNearest1d, false, 1.0f, 1.0f / 2.1f},  // 1-D: formula only
      {2, 4, 5, 8, 10, kInterpLinear, false, 0.5f, 0.5f},
      {1, 4, 5, 7, 3, kInterpLinear, true, 3.0f / 6, 4.0f / 2},
      {1, 9, 6, 4, 1, kInterpLinear, true, 8.0f / 3, 0.0f},          // one output column
      {3, 6, 7, 2, 3, kInterpLinear, false, 3.0f, 7.0f / 3},          // downsampling
      {1, 5, 5, 5, 11, kInterpLinear, false, 1.0f, 5.0f / 11},        // out == in on one axis
  };
  std::mt19937 rng(11);
  for (const auto& c : cases) {
    const InterpGeometry g{c.planes, c.ih, c.iw, c.oh, c.ow, c.mode, c.align, c.sh, c.sw};
    const index_t nin = c.planes * c.ih * c.iw, nout = c.planes * c.oh * c.ow;
    auto x = randn(nin, rng), go = randn(nout, rng);
    std::vector<float> y(nout + 4, -7.0f), gi(nin + 4, -7.0f);
    std::vector<double> want(nout), gwant(nin, 0.0);
    for (index_t p = 0; p < c.planes; ++p)
      for (index_t oh = 0; oh < c.oh; ++oh)
        for (index_t ow = 0; ow < c.ow; ++ow) {
          const index_t e = (p * c.oh + oh) * c.ow + ow;
          index_t h[2], w[2];
          float wh[2], ww[2];
          if (c.mode == kInterpLinear) {
            linear_source<index_t>(oh, c.ih, c.oh, c.sh, c.align, h[0], h[1], wh[0], wh[1]);
            linear_source<index_t>(ow, c.iw, c.ow, c.sw, c.align, w[0], w[1], ww[0], ww[1]);
          } else {
            h[0] = h[1] = nearest_source<index_t>(oh, c.ih, c.oh, c.sh, c.mode == kInterpNearest);
            w[0] = w[1] = nearest_source<index_t>(ow, c.iw, c.ow, c.sw, c.mode == kInterpNearest);
            wh[0] = ww[0] = 1.0f, wh[1] = ww[1] = 0.0f;
          }
          double v = 0;
          for (int a = 0; a < 2; ++a)
            for (int b = 0; b < 2; ++b) {
              const index_t at = (p * c.ih + h[a]) * c.iw + w[b];
              v += double(wh[a]) * ww[b] * x[at];
              gwant[at] += double(wh[a]) * ww[b] * go[e];
            }
          want[e] = v;
        }
    const auto geo = id::narrow<int>(g);
    emulate_launch(3, 32, [&] { id::interpolate_forward_kernel<int>(x.data(), y.data(), geo, static_cast<int>(nout)); });
    double err = 0;
    for (index_t e = 0; e < nout; ++e) err = std::max(err, std::fabs(y[e] - want[e]));
    expect(err < 1e-5 && y[nout] == -7.0f, "interpolate_forward", c.mode, c.oh * 100 + c.ow, err);
    emulate_launch(2, 32, [&] { id::interpolate_backward_kernel<int>(go.data(), gi.data(), geo, static_cast<int>(nin)); });
    err = 0;
    for (index_t i = 0; i < nin; ++i) err = std::max(err, std::fabs(gi[i] - gwant[i]));
    expect(err < 1e-4 && gi[nin] == -7.0f, "interpolate_backward", c.mode, c.oh * 100 + c.ow, err);
  }
}

// ---------------------------------------------------------------------------------- cat/split
static void test_cat() {
  std::mt19937 rng(5);
  const std::vector<std::vector<index_t>> width_sets = {{3, 4}, {8, 4, 12}, {1}, {5, 0, 2}, {4, 8}};
  for (const auto& widths : width_sets)
    for (index_t outer : {1, 3, 7})
      for (int vec = 0; vec < 2; ++vec) {
        bool can_vec = true;
        for (index_t w : widths) can_vec = can_vec && w % 4 == 0;
        if (vec && !can_vec) continue;
        const int k = static_cast<int>(widths.size()), div = vec ? 4 : 1;
        index_t total = 0;
        std::vector<index_t> offsets;
        for (index_t w : widths) offsets.push_back(total), total += w;
        std::vector<std::vector<float>> pieces;
        for (index_t w : widths) pieces.push_back(randn(outer * w + 4, rng));
        cd::Pieces<int> pc{};
        for (int p = 0; p < k; ++p) {
          pc.ptr[p] = pieces[p].data();
          pc.width[p] = static_cast<int>(widths[p] / div);
          pc.offset[p] = static_cast<int>(offsets[p] / div);
        }
        pc.total = static_cast<int>(total / div);
        pc.outer = static_cast<int>(outer);
        std::vector<float> whole(outer * total + 4, -7.0f);
        launch2(2, k, 16, [&] {
          if (vec) cd::cat_kernel<true, float4, int>(pc, reinterpret_cast<float4*>(whole.data()));
          else cd::cat_kernel<true, float, int>(pc, whole.data());
        });
        bool ok = whole[outer * total] == -7.0f;
        for (index_t r = 0; r < outer; ++r)
          for (int p = 0; p < k; ++p)
            for (index_t c = 0; c < widths[p]; ++c)
              ok = ok && whole[r * total + offsets[p] + c] == pieces[p][r * widths[p] + c];
        expect(ok, "cat_forward", total, outer * 2 + vec, 0);
        // split back into fresh pieces
        std::vector<std::vector<float>> back;
        for (index_t w : widths) back.push_back(std::vector<float>(outer * w + 4, -7.0f));
        for (int p = 0; p < k; ++p) pc.ptr[p] = back[p].data();
        launch2(2, k, 16, [&] {
          if (vec) cd::cat_kernel<false, float4, int>(pc, reinterpret_cast<float4*>(whole.data()));
          else cd::cat_kernel<false, float, int>(pc, whole.data());
        });
        ok = true;
        for (int p = 0; p < k; ++p) {
          ok = ok && back[p][outer * widths[p]] == -7.0f;
          for (index_t e = 0; e < outer * widths[p]; ++e) ok = ok && back[p][e] == pieces[p][e];
        }
        expect(ok, "cat_backward", total, outer * 2 + vec, 0);
      }
}

int main() {
  test_pad();
  test_interpolate();
  test_cat();
  std::printf("%d failures\n", failures);
  return failures != 0;
}
