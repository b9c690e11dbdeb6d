#include "cpu/interpolate.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "cpu/parallel.h"

namespace fastlayers::cpu {

namespace {

// Per output index of one axis: the two input cells and their weights (nearest: one cell, weight 1).
struct Taps {
  std::vector<index_t> i0, i1;
  std::vector<float> w0, w1;
};

Taps forward_taps(int mode, index_t in, index_t out, float scale, bool align) {
  Taps t;
  t.i0.resize(out), t.i1.resize(out), t.w0.resize(out), t.w1.resize(out);
  for (index_t o = 0; o < out; ++o) {
    if (mode != kInterpLinear) {
      t.i0[o] = t.i1[o] = nearest_source<index_t>(o, in, out, scale, mode == kInterpNearest);
      t.w0[o] = 1.0f, t.w1[o] = 0.0f;
    } else {
      linear_source<index_t>(o, in, out, scale, align, t.i0[o], t.i1[o], t.w0[o], t.w1[o]);
    }
  }
  return t;
}

// Per input index of one axis: the outputs that read it and their weights, as CSR (ptr has in + 1).
struct Gather {
  std::vector<index_t> ptr, out_index;
  std::vector<float> weight;
};

Gather backward_taps(int mode, index_t in, index_t out, float scale, bool align) {
  Gather t;
  t.ptr.assign(in + 1, 0);
  for (index_t i = 0; i < in; ++i) {
    index_t lo, hi;
    outputs_reading<index_t>(mode, i, in, out, scale, align, lo, hi);
    for (index_t o = lo; o < hi; ++o) {
      const float w = axis_weight<index_t>(mode, o, i, in, out, scale, align);
      if (w != 0.0f || mode != kInterpLinear) {
        t.out_index.push_back(o);
        t.weight.push_back(w);
      }
    }
    t.ptr[i + 1] = static_cast<index_t>(t.out_index.size());
  }
  return t;
}

template <class F>
void for_row_ranges(index_t rows, index_t row_len, F f) {
  if (rows <= 0) return;
  if (rows * std::max<index_t>(row_len, 1) <= kParallelGrain || rows == 1 || omp_get_max_threads() == 1) {
    f(index_t{0}, rows);
    return;
  }
#pragma omp parallel
  {
    const index_t nt = omp_get_num_threads(), t = omp_get_thread_num();
    const index_t r0 = rows * t / nt, r1 = rows * (t + 1) / nt;
    if (r0 < r1) f(r0, r1);
  }
}

}  // namespace

void interpolate_forward(const float* x, float* y, const InterpGeometry& g) {
  const index_t rows = g.planes * g.out_h, ow = g.out_w, iw = g.in_w;
  if (rows == 0 || ow == 0) return;
  const Taps th = forward_taps(g.mode, g.in_h, g.out_h, g.scale_h, g.align_corners);
  const Taps tw = forward_taps(g.mode, g.in_w, g.out_w, g.scale_w, g.align_corners);
  const bool nearest = g.mode != kInterpLinear;
  const bool twice = g.mode == kInterpNearest && ow == 2 * iw;  // 2-D nearest's o/2 shortcut
  for_row_ranges(rows, ow, [&](index_t r0, index_t r1) {
    for (index_t row = r0; row < r1; ++row) {
      const index_t p = row / g.out_h, oh = row % g.out_h;
      float* yr = y + row * ow;
      const float* x0 = x + (p * g.in_h + th.i0[oh]) * iw;
      if (nearest) {
        if (row > r0 && oh > 0 && th.i0[oh] == th.i0[oh - 1]) {  // same source row as the row above
          std::memcpy(yr, yr - ow, sizeof(float) * ow);
        } else if (twice) {
          for (index_t j = 0; j < iw; ++j) yr[2 * j] = yr[2 * j + 1] = x0[j];
        } else {
          const index_t* src = tw.i0.data();
          for (index_t j = 0; j < ow; ++j) yr[j] = x0[src[j]];
        }
        continue;
      }
      const float* x1 = x + (p * g.in_h + th.i1[oh]) * iw;
      const float h0 = th.w0[oh], h1 = th.w1[oh];
      const index_t *a = tw.i0.data(), *b = tw.i1.data();
      const float *wa = tw.w0.data(), *wb = tw.w1.data();
      for (index_t j = 0; j < ow; ++j) {
        // PyTorch's order: each row's two taps, then the two rows.
        const float top = x0[a[j]] * wa[j] + x0[b[j]] * wb[j];
        const float bottom = x1[a[j]] * wa[j] + x1[b[j]] * wb[j];
        yr[j] = top * h0 + bottom * h1;
      }
    }
  });
}

void interpolate_backward(const float* grad_out, float* grad_in, const InterpGeometry& g) {
  const index_t rows = g.planes * g.in_h, iw = g.in_w, ow = g.out_w;
  if (rows == 0 || iw == 0) return;
  const Gather gh = backward_taps(g.mode, g.in_h, g.out_h, g.scale_h, g.align_corners);
  const Gather gw = backward_taps(g.mode, g.in_w, g.out_w, g.scale_w, g.align_corners);
  const bool twice = g.mode == kInterpNearest && ow == 2 * iw;
  for_row_ranges(rows, iw, [&](index_t r0, index_t r1) {
    for (index_t row = r0; row < r1; ++row) {
      const index_t p = row / g.in_h, h = row % g.in_h;
      float* acc = grad_in + row * iw;
      std::fill(acc, acc + iw, 0.0f);
      for (index_t k = gh.ptr[h]; k < gh.ptr[h + 1]; ++k) {
        const float* go = grad_out + (p * g.out_h + gh.out_index[k]) * ow;
        const float wh = gh.weight[k];
        if (twice) {  // nearest 2x: each input column sums two neighbouring outputs
          for (index_t j = 0; j < iw; ++j) acc[j] += wh * (go[2 * j] + go[2 * j + 1]);
          continue;
        }
        for (index_t j = 0; j < iw; ++j) {
          float s = 0.0f;
          for (index_t t = gw.ptr[j]; t < gw.ptr[j + 1]; ++t) s += gw.weight[t] * go[gw.out_index[t]];
          acc[j] += wh * s;
        }
      }
    }
  });
}

}  // namespace fastlayers::cpu
