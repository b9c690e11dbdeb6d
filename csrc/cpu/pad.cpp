#include "cpu/pad.h"

#include <algorithm>
#include <cstring>

#include "cpu/row_blocks.h"

namespace fastlayers::cpu {

namespace {

// Multi-index of flat row `row` over dims [0, r - 1) of `sizes`.
inline void unflatten(index_t row, const index_t* sizes, int r, index_t* idx) {
  for (int d = r - 2; d >= 0; --d) {
    idx[d] = row % sizes[d];
    row /= sizes[d];
  }
}

inline void advance(const index_t* sizes, int r, index_t* idx) {
  for (int d = r - 2; d >= 0; --d) {
    if (++idx[d] < sizes[d]) return;
    idx[d] = 0;
  }
}

// The output indices [j0, j1) of the last dimension that read their input column directly.
inline void direct_cols(const PadGeometry& g, index_t& j0, index_t& j1) {
  const int r = g.rank;
  const index_t W = g.out[r - 1], lw = g.lo[r - 1];
  j0 = std::clamp<index_t>(lw, 0, W);
  j1 = std::clamp<index_t>(lw + g.in[r - 1], 0, W);
  if (j1 < j0) j1 = j0;
}

// Adds output row `go` (length W) into input row `acc` (length Wn) through the last dimension's map.
inline void gather_row(const PadGeometry& g, const float* go, float* acc, index_t j0, index_t j1) {
  const int r = g.rank;
  const index_t W = g.out[r - 1], Wn = g.in[r - 1], lw = g.lo[r - 1];
  const float* src = go + lw;
  for (index_t i = j0 - lw; i < j1 - lw; ++i) acc[i] += src[i];
  for (index_t o = 0; o < j0; ++o) {
    const index_t s = pad_source<index_t>(g.mode, o, Wn, lw, W);
    if (s >= 0) acc[s] += go[o];
  }
  for (index_t o = j1; o < W; ++o) {
    const index_t s = pad_source<index_t>(g.mode, o, Wn, lw, W);
    if (s >= 0) acc[s] += go[o];
  }
}

// Sums, into acc, every output row that reads the input row with outer multi-index `idx`: the
// product over the outer dimensions d >= `d` of their pad_sources_of ranges.
void gather_outer(const PadGeometry& g, const index_t* idx, int d, index_t go_off, const float* grad_out,
                  float* acc, index_t j0, index_t j1) {
  const int r = g.rank;
  if (d == r - 1) {
    gather_row(g, grad_out + go_off * g.out[r - 1], acc, j0, j1);
    return;
  }
  if (g.lo[d] == 0 && g.out[d] == g.in[d]) {  // an unpadded dimension (the planes): read straight through
    gather_outer(g, idx, d + 1, go_off * g.out[d] + idx[d], grad_out, acc, j0, j1);
    return;
  }
  index_t a[3], b[3];
  const int k = pad_sources_of<index_t>(g.mode, idx[d], g.in[d], g.lo[d], g.out[d], a, b);
  for (int q = 0; q < k; ++q)
    for (index_t o = a[q]; o < b[q]; ++o) gather_outer(g, idx, d + 1, go_off * g.out[d] + o, grad_out, acc, j0, j1);
}

}  // namespace

void pad_forward(const float* x, float* y, const PadGeometry& g, float value) {
  const int r = g.rank;
  const index_t W = g.out[r - 1], Wn = g.in[r - 1], lw = g.lo[r - 1];
  index_t rows = 1, stride[kPadMaxRank];
  for (int d = 0; d < r - 1; ++d) rows *= g.out[d];
  if (rows == 0 || W == 0) return;
  stride[r - 1] = 1;
  for (int d = r - 2; d >= 0; --d) stride[d] = stride[d + 1] * g.in[d + 1];
  index_t j0, j1;
  direct_cols(g, j0, j1);
  const bool constant = g.mode == kPadConstant;

  for_row_blocks(rows, W, [&](index_t r0, index_t r1) {
    index_t idx[kPadMaxRank] = {};
    unflatten(r0, g.out, r, idx);
    for (index_t row = r0; row < r1; ++row, advance(g.out, r, idx)) {
      float* yr = y + row * W;
      index_t off = 0;
      bool fill = false;
      for (int d = 0; d < r - 1; ++d) {
        const index_t s = pad_source<index_t>(g.mode, idx[d], g.in[d], g.lo[d], g.out[d]);
        if (s < 0) {
          fill = true;
          break;
        }
        off += s * stride[d];
      }
      if (fill) {
        std::fill(yr, yr + W, value);
        continue;
      }
      const float* xr = x + off;
      if (constant) {
        std::fill(yr, yr + j0, value);
        std::fill(yr + j1, yr + W, value);
      } else {
        for (index_t o = 0; o < j0; ++o) yr[o] = xr[pad_source<index_t>(g.mode, o, Wn, lw, W)];
        for (index_t o = j1; o < W; ++o) yr[o] = xr[pad_source<index_t>(g.mode, o, Wn, lw, W)];
      }
      if (j1 > j0) std::memcpy(yr + j0, xr + (j0 - lw), sizeof(float) * (j1 - j0));
    }
  });
}

void pad_backward(const float* grad_out, float* grad_in, const PadGeometry& g) {
  const int r = g.rank;
  if (g.mode == kPadConstant) {
    // The adjoint of a constant pad is the crop back: pad grad_out by the negated pads, zeros where
    // the forward cropped input away.
    PadGeometry inv = g;
    for (int d = 0; d < r; ++d) {
      inv.in[d] = g.out[d];
      inv.out[d] = g.in[d];
      inv.lo[d] = -g.lo[d];
    }
    pad_forward(grad_out, grad_in, inv, 0.0f);
    return;
  }
  const index_t Wn = g.in[r - 1];
  index_t rows = 1;
  for (int d = 0; d < r - 1; ++d) rows *= g.in[d];
  if (rows == 0 || Wn == 0) return;
  index_t j0, j1;
  direct_cols(g, j0, j1);
  for_row_blocks(rows, Wn, [&](index_t r0, index_t r1) {
    index_t idx[kPadMaxRank] = {};
    unflatten(r0, g.in, r, idx);
    for (index_t row = r0; row < r1; ++row, advance(g.in, r, idx)) {
      float* acc = grad_in + row * Wn;
      std::fill(acc, acc + Wn, 0.0f);
      gather_outer(g, idx, 0, 0, grad_out, acc, j0, j1);
    }
  });
}

}  // namespace fastlayers::cpu
