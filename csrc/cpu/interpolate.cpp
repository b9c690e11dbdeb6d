#include "cpu/interpolate.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "cpu/row_blocks.h"

namespace fastlayers::cpu {

namespace {

// One axis of a call: per output index o, the two input cells it reads and their weights (nearest:
// one cell, weight 1, i1 = i0); per input index i, the outputs that read it (CSR: ptr has in + 1
// entries); and, when out = f * in for an integer 2 <= f <= 8, the periodic interior: for j in
// [jlo, jhi), output f*j + r reads j + d[r] (weight a[r]) and j + d[r] + e[r] (weight b[r]), the
// same pattern for every j, so the loops there need no per-element tables (U-Net's scale_factor=2).
struct Axis {
  index_t in = 0, out = 0;
  bool nearest = false;  // copies (no arithmetic: an inf stays inf)
  std::vector<index_t> i0, i1;
  std::vector<float> w0, w1;
  std::vector<index_t> ptr, out_index;
  std::vector<float> weight;
  index_t f = 0, jlo = 0, jhi = 0;
  index_t d[8] = {}, e[8] = {};
  float a[8] = {}, b[8] = {};
};

bool follows_pattern(const Axis& x, index_t j) {
  for (index_t r = 0; r < x.f; ++r) {
    const index_t o = x.f * j + r;
    if (x.i0[o] != j + x.d[r] || x.i1[o] != x.i0[o] + x.e[r] || x.w0[o] != x.a[r] || x.w1[o] != x.b[r])
      return false;
  }
  return true;
}

Axis make_axis(int mode, index_t in, index_t out, float scale, bool align, bool with_gather) {
  Axis x;
  x.in = in, x.out = out;
  x.nearest = mode != kInterpLinear;
  x.i0.resize(out), x.i1.resize(out), x.w0.resize(out), x.w1.resize(out);
  for (index_t o = 0; o < out; ++o) {
    if (mode != kInterpLinear) {
      x.i0[o] = x.i1[o] = nearest_source<index_t>(o, in, out, scale, mode == kInterpNearest);
      x.w0[o] = 1.0f, x.w1[o] = 0.0f;
    } else {
      linear_source<index_t>(o, in, out, scale, align, x.i0[o], x.i1[o], x.w0[o], x.w1[o]);
    }
  }
  if (with_gather) {
    x.ptr.assign(in + 1, 0);
    for (index_t i = 0; i < in; ++i) {
      index_t lo, hi;
      outputs_reading<index_t>(mode, i, in, out, scale, align, lo, hi);
      for (index_t o = lo; o < hi; ++o) {
        const float w = axis_weight<index_t>(mode, o, i, in, out, scale, align);
        if (w != 0.0f || mode != kInterpLinear) {
          x.out_index.push_back(o);
          x.weight.push_back(w);
        }
      }
      x.ptr[i + 1] = static_cast<index_t>(x.out_index.size());
    }
  }
  if (in >= 8 && out % in == 0 && out / in >= 2 && out / in <= 8) {
    x.f = out / in;
    const index_t jm = in / 2;
    for (index_t r = 0; r < x.f; ++r) {
      const index_t o = x.f * jm + r;
      x.d[r] = x.i0[o] - jm, x.e[r] = x.i1[o] - x.i0[o], x.a[r] = x.w0[o], x.b[r] = x.w1[o];
    }
    x.jlo = x.jhi = jm;
    while (x.jlo > 0 && follows_pattern(x, x.jlo - 1)) --x.jlo;
    while (x.jhi < in && follows_pattern(x, x.jhi)) ++x.jhi;
  }
  return x;
}

// Forward along one row: dst[o] = src[i0[o]] * w0[o] + src[i1[o]] * w1[o] (PyTorch's order), or
// the copy src[i0[o]] for nearest.
void taps_range(const Axis& x, const float* src, float* dst, index_t o0, index_t o1) {
  if (x.nearest) {
    for (index_t o = o0; o < o1; ++o) dst[o] = src[x.i0[o]];
    return;
  }
  for (index_t o = o0; o < o1; ++o) dst[o] = src[x.i0[o]] * x.w0[o] + src[x.i1[o]] * x.w1[o];
}

template <int F>
void forward_periodic(const Axis& x, const float* src, float* dst) {
  const index_t f = F ? F : x.f;
  if (x.nearest) {
    for (index_t j = x.jlo; j < x.jhi; ++j)
      for (index_t r = 0; r < f; ++r) dst[f * j + r] = src[j + x.d[r]];
    return;
  }
  for (index_t j = x.jlo; j < x.jhi; ++j)
    for (index_t r = 0; r < f; ++r)  // F constant: an interleaved store group the compiler vectorizes
      dst[f * j + r] = src[j + x.d[r]] * x.a[r] + src[j + x.d[r] + x.e[r]] * x.b[r];
}

void forward_row(const Axis& x, const float* src, float* dst) {
  if (!x.f || x.jhi <= x.jlo) {
    taps_range(x, src, dst, 0, x.out);
    return;
  }
  taps_range(x, src, dst, 0, x.f * x.jlo);
  switch (x.f) {
    case 2: forward_periodic<2>(x, src, dst); break;
    case 3: forward_periodic<3>(x, src, dst); break;
    case 4: forward_periodic<4>(x, src, dst); break;
    default: forward_periodic<0>(x, src, dst);
  }
  taps_range(x, src, dst, x.f * x.jhi, x.out);
}

// Backward along one row: dst[i] = sum over the outputs o that read i of their weight * src[o].
void gather_range(const Axis& x, const float* src, float* dst, index_t i0, index_t i1) {
  for (index_t i = i0; i < i1; ++i) {
    float s = 0.0f;
    for (index_t k = x.ptr[i]; k < x.ptr[i + 1]; ++k) s += x.weight[k] * src[x.out_index[k]];
    dst[i] = s;
  }
}

// In the periodic interior, input j is read by outputs f*(j - d[r]) + r (weight a[r]) and
// f*(j - d[r] - e[r]) + r (weight b[r]): up to 2f terms at fixed offsets from f*j (zero weights are
// left out, as in the CSR tables: an output adds nothing to a cell it reads with weight 0).
template <int F, int T>
void gather_periodic(const float* src, float* dst, index_t j0, index_t j1, const index_t* off, const float* c,
                     int terms, index_t fr) {
  const index_t f = F ? F : fr;
  if (F && T) {
    for (index_t j = j0; j < j1; ++j) {
      float s = 0.0f;
      for (int t = 0; t < T; ++t) s += c[t] * src[f * j + off[t]];
      dst[j] = s;
    }
    return;
  }
  for (index_t j = j0; j < j1; ++j) {
    float s = 0.0f;
    for (int t = 0; t < terms; ++t) s += c[t] * src[f * j + off[t]];
    dst[j] = s;
  }
}

void gather_row(const Axis& x, const float* src, float* dst) {
  // Inputs whose every reading output lies in the periodic interior.
  index_t lo = x.in, hi = 0;
  index_t off[16];
  float c[16];
  int terms = 0;
  if (x.f) {
    index_t dmax = 0, dmin = 0;
    for (index_t r = 0; r < x.f; ++r) {
      dmax = std::max(dmax, x.d[r] + x.e[r]);
      dmin = std::min(dmin, x.d[r]);
      if (x.a[r] != 0.0f) off[terms] = r - x.f * x.d[r], c[terms++] = x.a[r];
      if (x.b[r] != 0.0f) off[terms] = r - x.f * (x.d[r] + x.e[r]), c[terms++] = x.b[r];
    }
    lo = x.jlo + dmax, hi = x.jhi + dmin;
  }
  if (hi <= lo) {
    gather_range(x, src, dst, 0, x.in);
    return;
  }
  gather_range(x, src, dst, 0, lo);
  if (x.nearest && x.f == 2 && terms == 2 && off[0] == 0 && off[1] == 1) {  // nearest 2x: pairs of outputs
    for (index_t j = lo; j < hi; ++j) dst[j] = src[2 * j] + src[2 * j + 1];
  } else if (x.f == 2 && terms == 4)
    gather_periodic<2, 4>(src, dst, lo, hi, off, c, terms, 2);  // bilinear 2x
  else if (x.f == 2 && terms == 2)
    gather_periodic<2, 2>(src, dst, lo, hi, off, c, terms, 2);  // nearest 2x
  else
    gather_periodic<0, 0>(src, dst, lo, hi, off, c, terms, x.f);
  gather_range(x, src, dst, hi, x.in);
}

}  // namespace

void interpolate_forward(const float* x, float* y, const InterpGeometry& g) {
  const index_t rows = g.planes * g.out_h, ow = g.out_w, iw = g.in_w;
  if (rows == 0 || ow == 0) return;
  const Axis ah = make_axis(g.mode, g.in_h, g.out_h, g.scale_h, g.align_corners, false);
  const Axis aw = make_axis(g.mode, g.in_w, g.out_w, g.scale_w, g.align_corners, false);
  const bool nearest = g.mode != kInterpLinear;
  for_row_blocks(rows, ow, [&](index_t r0, index_t r1) {
    if (nearest) {
      for (index_t row = r0; row < r1; ++row) {
        const index_t p = row / g.out_h, oh = row % g.out_h;
        float* yr = y + row * ow;
        if (row > r0 && oh > 0 && ah.i0[oh] == ah.i0[oh - 1])  // same source row as the row above
          std::memcpy(yr, yr - ow, sizeof(float) * ow);
        else
          forward_row(aw, x + (p * g.in_h + ah.i0[oh]) * iw, yr);
      }
      return;
    }
    // Linear, separable: each input row is interpolated along W once into a small cache (the two most
    // recent rows: upsampling reads each one for several output rows), then each output row blends
    // two cached rows. Same arithmetic as PyTorch: (x[a]*wa + x[b]*wb) per row, then rows*h weights.
    std::vector<float> cache(2 * ow);
    index_t cached[2] = {-1, -1};  // flat input row (plane * in_h + h) held by each slot
    auto row_of = [&](index_t flat, int keep) -> const float* {
      for (int s = 0; s < 2; ++s)
        if (cached[s] == flat) return cache.data() + s * ow;
      const int s = keep == 0 ? 1 : 0;  // never evict the slot the caller still needs
      cached[s] = flat;
      forward_row(aw, x + flat * iw, cache.data() + s * ow);
      return cache.data() + s * ow;
    };
    for (index_t row = r0; row < r1; ++row) {
      const index_t p = row / g.out_h, oh = row % g.out_h;
      const index_t f0 = p * g.in_h + ah.i0[oh], f1 = p * g.in_h + ah.i1[oh];
      const float* t0 = row_of(f0, cached[1] == f1 ? 1 : 0);
      const float* t1 = row_of(f1, t0 == cache.data() ? 0 : 1);
      const float h0 = ah.w0[oh], h1 = ah.w1[oh];
      float* yr = y + row * ow;
      for (index_t j = 0; j < ow; ++j) yr[j] = t0[j] * h0 + t1[j] * h1;
    }
  });
}

namespace {

// Backward with whole planes per thread, separable: grad_in = A_hᵀ · grad_out · A_w per plane (A_h,
// A_w the per-axis interpolation matrices). Linear upsampling folds the rows first (each output row
// added, weighted, into the one or two input rows it reads: vector adds over out_w) into an
// in_h x out_w buffer, then gathers the columns of in_h rows (not out_h). Otherwise each output row is
// gathered along W first and added into its input rows (nearest: the gather is a few adds).
// Deterministic: a fixed order per plane.
void backward_by_planes(const float* grad_out, float* grad_in, const InterpGeometry& g, const Axis& ah,
                        const Axis& aw, bool parallel) {
  const index_t ih = g.in_h, iw = g.in_w, ow = g.out_w, plane_in = ih * iw, plane_out = g.out_h * ow;
  const bool rows_first = g.mode == kInterpLinear && g.out_h >= ih;
#pragma omp parallel if (parallel) num_threads(max_threads())
  {
    std::vector<float> buf(rows_first ? ih * ow : iw);
#pragma omp for schedule(dynamic, 1)
    for (index_t p = 0; p < g.planes; ++p) {
      float* gi = grad_in + p * plane_in;
      const float* gp = grad_out + p * plane_out;
      if (rows_first) {
        float* v = buf.data();
        std::fill(v, v + ih * ow, 0.0f);
        for (index_t oh = 0; oh < g.out_h; ++oh) {
          const float* go = gp + oh * ow;
          float* r0 = v + ah.i0[oh] * ow;
          const float w0 = ah.w0[oh], w1 = ah.w1[oh];
          for (index_t j = 0; j < ow; ++j) r0[j] += w0 * go[j];
          if (w1 != 0.0f) {
            float* r1 = v + ah.i1[oh] * ow;
            for (index_t j = 0; j < ow; ++j) r1[j] += w1 * go[j];
          }
        }
        for (index_t h = 0; h < ih; ++h) gather_row(aw, v + h * ow, gi + h * iw);
        continue;
      }
      std::fill(gi, gi + plane_in, 0.0f);
      float* t = buf.data();
      for (index_t oh = 0; oh < g.out_h; ++oh) {
        gather_row(aw, gp + oh * ow, t);
        float* r0 = gi + ah.i0[oh] * iw;
        const float w0 = ah.w0[oh], w1 = ah.w1[oh];
        for (index_t j = 0; j < iw; ++j) r0[j] += w0 * t[j];
        if (w1 != 0.0f) {
          float* r1 = gi + ah.i1[oh] * iw;
          for (index_t j = 0; j < iw; ++j) r1[j] += w1 * t[j];
        }
      }
    }
  }
}

}  // namespace

void interpolate_backward(const float* grad_out, float* grad_in, const InterpGeometry& g) {
  const index_t rows = g.planes * g.in_h, iw = g.in_w, ow = g.out_w;
  if (rows == 0 || iw == 0) return;
  const Axis aw = make_axis(g.mode, g.in_w, g.out_w, g.scale_w, g.align_corners, true);
  const bool small = g.planes * g.out_h * ow <= kParallelGrain || max_threads() == 1;
  if (g.mode == kInterpLinear && (small || g.planes >= 2 * max_threads())) {
    const Axis ah = make_axis(g.mode, g.in_h, g.out_h, g.scale_h, g.align_corners, false);
    backward_by_planes(grad_out, grad_in, g, ah, aw, !small);  // small: one thread, no team wake-up
    return;
  }
  // Nearest (every output row feeds one input row), or few planes: split the input rows over the
  // threads; each gathers the output rows that read it, the first written straight into grad_in.
  const Axis ah = make_axis(g.mode, g.in_h, g.out_h, g.scale_h, g.align_corners, true);
  for_row_blocks(rows, iw, [&](index_t r0, index_t r1) {
    std::vector<float> t(iw);
    for (index_t row = r0; row < r1; ++row) {
      const index_t p = row / g.in_h, h = row % g.in_h;
      float* acc = grad_in + row * iw;
      const index_t k0 = ah.ptr[h], k1 = ah.ptr[h + 1];
      if (k0 == k1) {
        std::fill(acc, acc + iw, 0.0f);
        continue;
      }
      for (index_t k = k0; k < k1; ++k) {
        const float* go = grad_out + (p * g.out_h + ah.out_index[k]) * ow;
        const float wh = ah.weight[k];
        gather_row(aw, go, k == k0 ? acc : t.data());
        if (k == k0) {
          if (wh != 1.0f)
            for (index_t j = 0; j < iw; ++j) acc[j] *= wh;
        } else {
          for (index_t j = 0; j < iw; ++j) acc[j] += wh * t[j];
        }
      }
    }
  });
}

}  // namespace fastlayers::cpu
