#include "cpu/pool.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "cpu/cpu_features.h"
#include "cpu/parallel.h"
#include "cpu/pool_2x2.h"
#include "cpu/pool_rows.h"

namespace fastlayers::cpu {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// The input cells a window covers along one axis: lo, lo + step, ... < hi (empty when lo >= hi).
struct Span {
  index_t lo, hi;
  bool empty() const { return lo >= hi; }
};

// The first of start, start + step, ... that is >= 0 (the first cell past the left padding).
inline index_t first_real(index_t start, index_t step) {
  return start >= 0 ? start : start + (-start + step - 1) / step * step;
}

inline Span rows_of(const Pool2dGeometry& g, index_t i) {
  const index_t hs = i * g.sh - g.ph;
  return {first_real(hs, g.dh), std::min(hs + g.ekh(), g.h)};
}

inline Span cols_of(const Pool2dGeometry& g, index_t j) {
  const index_t ws = j * g.sw - g.pw;
  return {first_real(ws, g.dw), std::min(ws + g.ekw(), g.w)};
}

// The same for the undilated windows of the average and Lp pools (no division, no branch).
inline Span rows_of1(const Pool2dGeometry& g, index_t i) {
  const index_t hs = i * g.sh - g.ph;
  return {std::max<index_t>(hs, 0), std::min(hs + g.kh, g.h)};
}

inline Span cols_of1(const Pool2dGeometry& g, index_t j) {
  const index_t ws = j * g.sw - g.pw;
  return {std::max<index_t>(ws, 0), std::min(ws + g.kw, g.w)};
}

inline index_t count(const Span& s, index_t step) { return s.empty() ? 0 : (s.hi - s.lo + step - 1) / step; }

// PyTorch's count_include_pad extent of window i along one axis: clipped to the padded input only.
inline double pool_extent(index_t i, index_t s, index_t p, index_t k, index_t n) {
  const index_t start = i * s - p;
  return static_cast<double>(std::min(start + k, n + p) - start);
}

// Flat in-plane index of a window's winner (row-major scan, pool_beats), -1 for a window with no cell.
inline index_t first_max(const float* plane, const Pool2dGeometry& g, const Span& rows, const Span& cols) {
  if (rows.empty() || cols.empty()) return -1;
  index_t best_at = rows.lo * g.w + cols.lo;
  float best = plane[best_at];
  for (index_t r = rows.lo; r < rows.hi; r += g.dh)
    for (index_t c = cols.lo; c < cols.hi; c += g.dw)
      if (pool_beats(plane[r * g.w + c], best)) {
        best = plane[r * g.w + c];
        best_at = r * g.w + c;
      }
  return best_at;
}

// Output columns [lo, hi) whose windows lie wholly inside the plane horizontally: there the inner
// loops need no clipping and run over j with a fixed stride, which the compiler vectorises.
struct Interior {
  index_t lo, hi;
};

inline Interior interior_cols(const Pool2dGeometry& g) {
  const index_t lo = std::min(g.ow, (g.pw + g.sw - 1) / g.sw);  // first j with j*sw - pw >= 0
  const index_t room = g.w + g.pw - g.ekw();                    // last start column is room - pw
  const index_t hi = room < 0 ? 0 : std::min(g.ow, room / g.sw + 1);
  return {lo, std::max(lo, hi)};
}

// The interior inner loops, one window cell against n outputs spaced `stride` input columns apart.
// Stride 1 and 2 (nearly every pool) are compile-time constants so GCC turns the strided loads into
// vector loads and shuffles; other strides load element by element.
template <int kStride>
void max_step(const float* src, float* acc, index_t n, index_t stride) {
  const index_t s = kStride ? kStride : stride;
  for (index_t jj = 0; jj < n; ++jj) {
    const float v = src[jj * s];
    acc[jj] = pool_beats(v, acc[jj]) ? v : acc[jj];
  }
}

template <int kStride>
void argmax_step(const float* src, float* best, std::int32_t* loc, std::int32_t cell, index_t n,
                 index_t stride) {
  const index_t s = kStride ? kStride : stride;
  for (index_t jj = 0; jj < n; ++jj) {
    const float v = src[jj * s];
    const bool wins = pool_beats(v, best[jj]);
    best[jj] = wins ? v : best[jj];
    loc[jj] = wins ? cell : loc[jj];
  }
}

template <int kStride>
void sum_step(const float* src, float* acc, index_t n, index_t stride) {
  const index_t s = kStride ? kStride : stride;
  for (index_t jj = 0; jj < n; ++jj) acc[jj] += src[jj * s];
}

template <class F>
F by_stride(index_t stride, F one, F two, F any) {
  return stride == 1 ? one : stride == 2 ? two : any;
}

// y[j] = max of window (i, j) for j in [0, ow). The interior scans the window cells in row-major
// order in the outer loops and j in the inner one: the same order per window as first_max, but
// branch-free selects over a contiguous output row instead of unpredictable branches.
void row_max(const float* plane, const Pool2dGeometry& g, const Interior& in, index_t i, float* y) {
  const Span rows = rows_of(g, i);
  if (rows.empty()) return std::fill(y, y + g.ow, kNegInf);  // only with dilation: no input row
  auto edge = [&](index_t j) {
    const index_t at = first_max(plane, g, rows, cols_of(g, j));
    y[j] = at < 0 ? kNegInf : plane[at];
  };
  for (index_t j = 0; j < in.lo; ++j) edge(j);
  for (index_t j = in.hi; j < g.ow; ++j) edge(j);
  if (in.lo >= in.hi) return;
  const index_t n = in.hi - in.lo, c0 = in.lo * g.sw - g.pw, w = g.w;
  float* acc = y + in.lo;
  for (index_t jj = 0; jj < n; ++jj) acc[jj] = plane[rows.lo * w + c0 + jj * g.sw];
  const auto step = by_stride(g.sw, &max_step<1>, &max_step<2>, &max_step<0>);
  for (index_t r = rows.lo; r < rows.hi; r += g.dh)
    for (index_t c = 0; c < g.kw; ++c) step(plane + r * w + c0 + c * g.dw, acc, n, g.sw);
}

// The max of a window's values, whatever the scan order: NaN if any is NaN (a NaN in `acc` stays).
inline float nan_max(float acc, float v) { return (v > acc || v != v) ? v : acc; }

// Scratch floats per thread for row_max_vh, or 0 when the geometry is too wide for it (a huge
// padded kernel): then row_max, which needs none, runs.
inline index_t vh_scratch(const Pool2dGeometry& g) {
  const index_t need = std::max(g.pw + g.w, (g.ow - 1) * g.sw + g.ekw());
  return need <= 4 * (g.w + 64) ? need : 0;
}

template <int kStride>
void hmax_step(const float* src, float* y, index_t n, index_t stride) {
  const index_t s = kStride ? kStride : stride;
  for (index_t j = 0; j < n; ++j) y[j] = nan_max(y[j], src[j * s]);
}

template <int kStride>
void hcopy_step(const float* src, float* y, index_t n, index_t stride) {
  const index_t s = kStride ? kStride : stride;
  for (index_t j = 0; j < n; ++j) y[j] = src[j * s];
}

// Output row i of the max pool's values, separably: the vertical max over the window's input rows
// into a row padded with -inf (padding never wins), then the horizontal max over the kw taps. Each
// pass is a contiguous or fixed-stride loop with no edge cases, and the value of a max does not
// depend on the order its cells are visited in (NaN if any cell is NaN; which of +0/-0 may differ
// from a row-major scan, an equal value). Scratch: vh_scratch(g) floats.
void row_max_vh(const float* plane, const Pool2dGeometry& g, index_t i, float* y, float* buf) {
  const Span rows = rows_of(g, i);
  if (rows.empty()) return std::fill(y, y + g.ow, kNegInf);  // only with dilation: no input row
  const index_t w = g.w, len = vh_scratch(g);
  float* v = buf + g.pw;  // v[c] = column c's max, c in [-pw, len - pw)
  std::fill(buf, v, kNegInf);
  std::copy(plane + rows.lo * w, plane + rows.lo * w + w, v);
  for (index_t r = rows.lo + g.dh; r < rows.hi; r += g.dh) {
    const float* src = plane + r * w;
    for (index_t c = 0; c < w; ++c) v[c] = nan_max(v[c], src[c]);
  }
  std::fill(v + w, buf + len, kNegInf);
  // window j covers buf[j*sw + b*dw], b < kw
  by_stride(g.sw, &hcopy_step<1>, &hcopy_step<2>, &hcopy_step<0>)(buf, y, g.ow, g.sw);
  const auto step = by_stride(g.sw, &hmax_step<1>, &hmax_step<2>, &hmax_step<0>);
  for (index_t b = 1; b < g.kw; ++b) step(buf + b * g.dw, y, g.ow, g.sw);
}

// Per-thread scratch of row_argmax: one output row's running maxima and winners' cell numbers, and
// the in-plane offset of each cell number (so forming an index costs no integer division).
struct ArgmaxScratch {
  std::vector<float> best;
  std::vector<std::int32_t> loc;
  std::vector<index_t> offset;
  ArgmaxScratch(const Pool2dGeometry& g, const Interior& in) : best(g.ow), loc(g.ow) {
    if (in.lo >= in.hi) return;  // no interior window: no cell numbers
    const index_t rows = std::min(g.kh, (g.h + g.dh - 1) / g.dh);
    if (rows > std::numeric_limits<std::int32_t>::max() / g.kw) return;  // (a > 8 GB window) 64-bit path
    offset.resize(rows * g.kw);
    for (index_t rr = 0; rr < rows; ++rr)
      for (index_t b = 0; b < g.kw; ++b) offset[rr * g.kw + b] = rr * g.dh * g.w + b * g.dw;
  }
};

// at[j] = in-plane index of the winner of window (i, j) for j in [0, ow) (-1: no cell). The interior
// tracks the winner's cell number within its window as int32, the width of a float, so the select
// vectorises (AVX2 where the CPU has it); the in-plane index is formed once at the end.
void row_argmax(const float* plane, const Pool2dGeometry& g, const Interior& in, index_t i, ArgmaxScratch& s,
                index_t* at) {
  const Span rows = rows_of(g, i);
  if (rows.empty()) return std::fill(at, at + g.ow, index_t{-1});
  for (index_t j = 0; j < in.lo; ++j) at[j] = first_max(plane, g, rows, cols_of(g, j));
  for (index_t j = in.hi; j < g.ow; ++j) at[j] = first_max(plane, g, rows, cols_of(g, j));
  if (in.lo >= in.hi) return;
  const index_t n = in.hi - in.lo, c0 = in.lo * g.sw - g.pw, w = g.w;
  if (s.offset.empty()) {  // cell numbers would not fit in int32
    for (index_t j = in.lo; j < in.hi; ++j) at[j] = first_max(plane, g, rows, cols_of(g, j));
    return;
  }
  const float* base = plane + rows.lo * w + c0;
  std::int32_t* l = s.loc.data() + in.lo;
  if (!(active_isa() != Isa::generic &&
        avx2::max_pool_row_argmax(base, w, count(rows, g.dh), g.dh, g.sw, g.dw, g.kw, n, l))) {
    float* b = s.best.data() + in.lo;
    for (index_t jj = 0; jj < n; ++jj) {
      b[jj] = base[jj * g.sw];
      l[jj] = 0;
    }
    const auto step = by_stride(g.sw, &argmax_step<1>, &argmax_step<2>, &argmax_step<0>);
    std::int32_t cell = 0;
    for (index_t r = rows.lo; r < rows.hi; r += g.dh)
      for (index_t c = 0; c < g.kw; ++c, ++cell) step(plane + r * w + c0 + c * g.dw, b, l, cell, n, g.sw);
  }
  const index_t first = rows.lo * w + c0, sw = g.sw;
  const index_t* __restrict off = s.offset.data();
  index_t* __restrict out = at + in.lo;
  for (index_t jj = 0; jj < n; ++jj) out[jj] = first + jj * sw + off[l[jj]];
}

// The winners of a whole plane, a row of windows at a time, with no edge cases: the plane is copied
// once into rows padded with -inf (padding never beats a real cell) and the AVX2 argmax runs over
// every window of a row. The one case the padding could get wrong, a window whose real cells are all
// -inf with a padded cell scanned first, shows as a winner in the padding and is redone by first_max.
// Portable ISA, strides other than 1 and 2, rows of fewer than 8 windows or a geometry too wide for
// the copy: row_argmax. One object per thread; call plane() once per plane, then row() per row.
class PlaneArgmax {
 public:
  PlaneArgmax(const Pool2dGeometry& g, const Interior& in)
      : g_(g), in_(in), scratch_(g, in), len_(vh_scratch(g)), loc_(g.ow) {
    // (the padded copy of one plane stays below 16 MB a thread; taller planes use row_argmax)
    active_ = active_isa() != Isa::generic && (g.sw == 1 || g.sw == 2) && g.ow >= 8 && len_ > 0 &&
              g.h <= (index_t{1} << 22) / len_ &&
              std::min(g.kh, (g.h + g.dh - 1) / g.dh) <= std::numeric_limits<std::int32_t>::max() / g.kw;
    if (!active_) return;
    buf_.assign(g.h * len_ + 16, kNegInf);  // + the last overlapping AVX2 load; the padding stays -inf
    const index_t rows = std::min(g.kh, (g.h + g.dh - 1) / g.dh);
    row_off_.resize(rows * g.kw);
    col_off_.resize(rows * g.kw);
    for (index_t rr = 0; rr < rows; ++rr)
      for (index_t b = 0; b < g.kw; ++b) row_off_[rr * g.kw + b] = rr * g.dh, col_off_[rr * g.kw + b] = b * g.dw;
  }

  void plane(const float* plane) {
    plane_ = plane;
    if (!active_) return;
    for (index_t r = 0; r < g_.h; ++r)
      std::copy(plane + r * g_.w, plane + (r + 1) * g_.w, buf_.data() + r * len_ + g_.pw);
  }

  // at[j] = the in-plane index of window (i, j)'s winner, -1 for a window with no cell.
  void row(index_t i, index_t* at) {
    if (!active_) return row_argmax(plane_, g_, in_, i, scratch_, at);
    const Span rows = rows_of(g_, i);
    if (rows.empty()) return std::fill(at, at + g_.ow, index_t{-1});
    avx2::max_pool_row_argmax(buf_.data() + rows.lo * len_, len_, count(rows, g_.dh), g_.dh, g_.sw, g_.dw, g_.kw,
                              g_.ow, loc_.data());
    const index_t* __restrict ro = row_off_.data();
    const index_t* __restrict co = col_off_.data();
    const std::int32_t* __restrict loc = loc_.data();
    const index_t ow = g_.ow, sw = g_.sw, pw = g_.pw, w = g_.w, r0 = rows.lo;
    bool redo = false;
    for (index_t j = 0; j < ow; ++j) {
      const index_t c = j * sw - pw + co[loc[j]];
      const bool real = static_cast<std::uint64_t>(c) < static_cast<std::uint64_t>(w);
      redo |= !real;
      at[j] = (r0 + ro[loc[j]]) * w + c;
    }
    if (redo)  // a window whose winner is a padded cell: its real cells are all -inf
      for (index_t j = 0; j < ow; ++j) {
        const index_t c = j * sw - pw + co[loc[j]];
        if (static_cast<std::uint64_t>(c) >= static_cast<std::uint64_t>(w))
          at[j] = first_max(plane_, g_, rows, cols_of(g_, j));
      }
  }

 private:
  const Pool2dGeometry& g_;
  const Interior& in_;
  ArgmaxScratch scratch_;
  index_t len_;
  bool active_ = false;
  const float* plane_ = nullptr;
  std::vector<float> buf_;
  std::vector<std::int32_t> loc_;
  std::vector<index_t> row_off_, col_off_;
};

inline float window_sum(const float* plane, index_t w, const Span& rows, const Span& cols) {
  float s = 0.0f;
  for (index_t r = rows.lo; r < rows.hi; ++r)
    for (index_t c = cols.lo; c < cols.hi; ++c) s += plane[r * w + c];
  return s;
}

// The avg pool divisor of a window (rows, cols: its input cells; ph_ext, pw_ext: its extents clipped
// to the padded input), as float, PyTorch's rule. Formed in double: the extents may be ~2^62 each.
struct AvgDivisor {
  bool count_include_pad;
  double override_value;  // 0: none
  float operator()(double ph_ext, double pw_ext, index_t rows, index_t cols) const {
    if (override_value != 0.0) return static_cast<float>(override_value);
    return count_include_pad ? static_cast<float>(ph_ext * pw_ext)
                             : static_cast<float>(static_cast<double>(rows) * static_cast<double>(cols));
  }
};

// y[j] = average of window (i, j) for j in [0, ow); interior vectorised over j as in row_max. (Average
// pools have no dilation: dh = dw = 1.)
void row_avg(const float* plane, const Pool2dGeometry& g, const Interior& in, index_t i, float* y,
             const AvgDivisor& divisor) {
  const Span rows = rows_of1(g, i);
  const double ph_ext = pool_extent(i, g.sh, g.ph, g.kh, g.h);
  const index_t nrows = count(rows, 1);
  auto edge = [&](index_t j) {
    const Span cols = cols_of1(g, j);
    y[j] = window_sum(plane, g.w, rows, cols) /
           divisor(ph_ext, pool_extent(j, g.sw, g.pw, g.kw, g.w), nrows, count(cols, 1));
  };
  for (index_t j = 0; j < in.lo; ++j) edge(j);
  for (index_t j = in.hi; j < g.ow; ++j) edge(j);
  if (in.lo >= in.hi) return;
  const index_t n = in.hi - in.lo, c0 = in.lo * g.sw - g.pw, w = g.w;
  float* acc = y + in.lo;
  std::fill(acc, acc + n, 0.0f);
  const auto step = by_stride(g.sw, &sum_step<1>, &sum_step<2>, &sum_step<0>);
  for (index_t r = rows.lo; r < rows.hi; ++r)
    for (index_t c = 0; c < g.kw; ++c) step(plane + r * w + c0 + c, acc, n, g.sw);
  const float div = divisor(ph_ext, static_cast<double>(g.kw), nrows, g.kw);  // interior: kw columns
  for (index_t jj = 0; jj < n; ++jj) acc[jj] /= div;
}

// The 2x2 stride-2 unpadded, undilated pool. extra_rows/cols: ceil_mode added a last window over the
// odd last row/column (oh = h/2 + 1).
inline bool is_2x2_stride2(const Pool2dGeometry& g) {
  return g.kh == 2 && g.kw == 2 && g.sh == 2 && g.sw == 2 && g.ph == 0 && g.pw == 0 && g.dh == 1 && g.dw == 1;
}
inline bool floor_shape(const Pool2dGeometry& g) { return g.oh == g.h / 2 && g.ow == g.w / 2; }

inline bool parallel_worth_it(index_t planes, index_t hw) { return planes * hw > kParallelGrain; }
inline bool parallel_worth_it(const Pool2dGeometry& g) { return parallel_worth_it(g.planes, g.h * g.w); }

// The 2x2 stride-2 row kernels: AVX2 where the CPU has it, else the portable ones.
struct Rows2x2 {
  void (*max_fwd)(const float*, const float*, float*, index_t);
  void (*avg_fwd)(const float*, const float*, float*, index_t);
  void (*max_bwd)(const float*, const float*, const float*, float*, float*, index_t);
  void (*avg_bwd)(const float*, float*, float*, index_t);
};

Rows2x2 rows_2x2() {
  if (active_isa() != Isa::generic)
    return {avx2::max_pool_2x2_row, avx2::avg_pool_2x2_row, avx2::max_pool_2x2_backward_row,
            avx2::avg_pool_2x2_backward_row};
  return {generic::max_pool_2x2_row, generic::avg_pool_2x2_row, generic::max_pool_2x2_backward_row,
          generic::avg_pool_2x2_backward_row};
}

// Forward of a 2x2/2 max or avg pool in floor mode: one call of `row_kernel` per output row. For max
// in ceil mode (oh = h/2 + 1 or ow = w/2 + 1 on an odd input) the row kernel covers the full windows
// and the last, one-cell-wide column / one-row window is done by the general code.
void forward_2x2(const float* x, float* y, const Pool2dGeometry& g,
                 void (*row_kernel)(const float*, const float*, float*, index_t)) {
  const index_t oh = g.oh, ow = g.ow, hw = g.h * g.w, full_h = g.h / 2, full_w = g.w / 2;
  const Interior in = interior_cols(g);
#pragma omp parallel for collapse(2) schedule(static) if (parallel_worth_it(g)) num_threads(max_threads())
  for (index_t p = 0; p < g.planes; ++p)
    for (index_t i = 0; i < oh; ++i) {
      const float* plane = x + p * hw;
      float* yr = y + (p * oh + i) * ow;
      if (i == full_h) {  // ceil_mode's last row of windows (max only)
        row_max(plane, g, in, i, yr);
        continue;
      }
      const float* r0 = plane + 2 * i * g.w;
      row_kernel(r0, r0 + g.w, yr, full_w);
      if (ow > full_w) {  // ceil_mode's last column (max only): rows 2i, 2i+1 of column w-1
        const float a = r0[g.w - 1], b = r0[2 * g.w - 1];
        yr[full_w] = pool_beats(b, a) ? b : a;
      }
    }
}

// Backward of a 2x2/2 pool in floor mode: rows 0 .. 2*oh-1 come from `row_kernel`, the odd leftover
// column and row get 0. Each grad_in cell is written once, no zero-fill pass.
template <class RowFn>
void backward_2x2(const Pool2dGeometry& g, float* grad_in, RowFn row_kernel) {
  const index_t oh = g.oh, h = g.h, w = g.w;
#pragma omp parallel for collapse(2) schedule(static) if (parallel_worth_it(g)) num_threads(max_threads())
  for (index_t p = 0; p < g.planes; ++p)
    for (index_t i = 0; i < oh; ++i) {
      float* gi0 = grad_in + (p * h + 2 * i) * w;
      row_kernel(p, i, gi0, gi0 + w);
      if (w & 1) gi0[w - 1] = gi0[2 * w - 1] = 0.0f;
      if ((h & 1) && i == oh - 1) std::memset(gi0 + 2 * w, 0, sizeof(float) * w);
    }
}

}  // namespace

// ---------------------------------------------------------------------------------------- max

void max_pool2d_forward(const float* x, float* y, std::int64_t* indices, const Pool2dGeometry& g) {
  const index_t oh = g.oh, ow = g.ow, hw = g.h * g.w;
  if (!indices && is_2x2_stride2(g)) return forward_2x2(x, y, g, rows_2x2().max_fwd);
  const Interior in = interior_cols(g);
  if (!indices) {
    const index_t scratch = vh_scratch(g);
    const bool avx2 = active_isa() != Isa::generic;
#pragma omp parallel if (parallel_worth_it(g)) num_threads(max_threads())
    {
      std::vector<float> buf(scratch + 16);  // + the AVX2 kernel's last overlapping load
#pragma omp for collapse(2) schedule(static)
      for (index_t p = 0; p < g.planes; ++p)
        for (index_t i = 0; i < oh; ++i) {
          const float* plane = x + p * hw;
          float* yr = y + (p * oh + i) * ow;
          const Span rows = rows_of(g, i);
          if (!scratch) {
            row_max(plane, g, in, i, yr);
          } else if (rows.empty()) {  // only with dilation: no input row
            std::fill(yr, yr + ow, kNegInf);
          } else if (avx2) {
            avx2::max_pool_row_vh(plane, g.w, rows.lo, rows.hi, g.dh, g.pw, g.sw, g.dw, g.kw, ow, buf.data(),
                                  scratch, yr);
          } else {
            row_max_vh(plane, g, i, yr, buf.data());
          }
        }
    }
    return;
  }
  // With indices: the winners' positions, then their values (the plane is still in cache). A thread
  // per plane.
#pragma omp parallel if (parallel_worth_it(g)) num_threads(max_threads())
  {
    PlaneArgmax argmax(g, in);
#pragma omp for schedule(static)
    for (index_t p = 0; p < g.planes; ++p) {
      const float* plane = x + p * hw;
      argmax.plane(plane);
      for (index_t i = 0; i < oh; ++i) {
        const index_t o = (p * oh + i) * ow;
        index_t* at = indices + o;  // index_t is std::int64_t
        argmax.row(i, at);
        for (index_t j = 0; j < ow; ++j) y[o + j] = at[j] < 0 ? kNegInf : plane[at[j]];
      }
    }
  }
}

void max_pool2d_backward(const float* grad_out, const float* x, float* grad_in, const Pool2dGeometry& g) {
  const index_t oh = g.oh, ow = g.ow, hw = g.h * g.w;
  if (is_2x2_stride2(g)) {
    const auto fn = rows_2x2().max_bwd;
    const index_t full_h = g.h / 2, full_w = g.w / 2, w = g.w;
    if (floor_shape(g)) {
      backward_2x2(g, grad_in, [&](index_t p, index_t i, float* gi0, float* gi1) {
        const float* r0 = x + p * hw + 2 * i * w;
        fn(grad_out + (p * oh + i) * ow, r0, r0 + w, gi0, gi1, ow);
      });
      return;
    }
    // ceil_mode on an odd input: the full windows by the row kernel, then the one-cell-wide last
    // column and one-row-high last row of windows (every cell of the plane written once).
#pragma omp parallel for collapse(2) schedule(static) if (parallel_worth_it(g)) num_threads(max_threads())
    for (index_t p = 0; p < g.planes; ++p)
      for (index_t i = 0; i < oh; ++i) {
        const float* plane = x + p * hw;
        const float* gout = grad_out + (p * oh + i) * ow;
        float* gi = grad_in + p * hw;
        if (i < full_h) {
          const float* r0 = plane + 2 * i * w;
          float *gi0 = gi + 2 * i * w, *gi1 = gi0 + w;
          fn(gout, r0, r0 + w, gi0, gi1, full_w);
          if (ow > full_w) {  // column w-1 of rows 2i, 2i+1
            const bool second = pool_beats(r0[2 * w - 1], r0[w - 1]);
            gi0[w - 1] = second ? 0.0f : gout[full_w];
            gi1[w - 1] = second ? gout[full_w] : 0.0f;
          }
        } else {  // row h-1: windows of one row, two cells (one in the last column)
          const float* r = plane + (g.h - 1) * w;
          float* gr = gi + (g.h - 1) * w;
          for (index_t j = 0; j < full_w; ++j) {
            const bool second = pool_beats(r[2 * j + 1], r[2 * j]);
            gr[2 * j] = second ? 0.0f : gout[j];
            gr[2 * j + 1] = second ? gout[j] : 0.0f;
          }
          if (ow > full_w) gr[w - 1] = gout[full_w];
        }
        if (ow == full_w && (w & 1) && i < full_h) gi[(2 * i) * w + w - 1] = gi[(2 * i + 1) * w + w - 1] = 0.0f;
        if (oh == full_h && (g.h & 1) && i == oh - 1) std::fill(gi + (g.h - 1) * w, gi + hw, 0.0f);
      }
    return;
  }
  const Interior in = interior_cols(g);
  const bool tiled = g.tiled();
#pragma omp parallel if (parallel_worth_it(g)) num_threads(max_threads())
  {
    // Per-thread scratch for one output row's winners, allocated once per call, outside the loops.
    ArgmaxScratch scratch(g, in);
    std::vector<index_t> at(ow);
    if (tiled) {
      // Each cell lies in at most one window: write every cell once (0 or the window's gradient).
      // ceil_mode may cut the last row/column of windows short.
#pragma omp for collapse(2) schedule(static)
      for (index_t p = 0; p < g.planes; ++p)
        for (index_t i = 0; i < oh; ++i) {
          const float* plane = x + p * hw;
          const float* gout = grad_out + (p * oh + i) * ow;
          float* gi = grad_in + p * hw;
          row_argmax(plane, g, in, i, scratch, at.data());
          const index_t r_end = std::min((i + 1) * g.kh, g.h), c_end = std::min(ow * g.kw, g.w);
          for (index_t r = i * g.kh; r < r_end; ++r) {
            float* grow = gi + r * g.w;
            for (index_t j = 0; j < ow; ++j) {
              const index_t c1 = std::min((j + 1) * g.kw, g.w);
              for (index_t c = j * g.kw; c < c1; ++c) grow[c] = (r * g.w + c == at[j]) ? gout[j] : 0.0f;
            }
            std::fill(grow + c_end, grow + g.w, 0.0f);  // columns right of the last window
          }
          if (i == oh - 1) std::fill(gi + r_end * g.w, gi + hw, 0.0f);  // rows below the last window
        }
    } else {
      // Overlapping windows, gaps or padding: zero the plane, then scatter-add in window order
      // (row-major, as the reference) so accumulated cells round the same way; a thread per plane.
      PlaneArgmax argmax(g, in);
#pragma omp for schedule(static)
      for (index_t p = 0; p < g.planes; ++p) {
        const float* plane = x + p * hw;
        float* gi = grad_in + p * hw;
        std::fill(gi, gi + hw, 0.0f);
        argmax.plane(plane);
        for (index_t i = 0; i < oh; ++i) {
          argmax.row(i, at.data());
          const float* gout = grad_out + (p * oh + i) * ow;
          for (index_t j = 0; j < ow; ++j)
            if (at[j] >= 0) gi[at[j]] += gout[j];
        }
      }
    }
  }
}

index_t max_pool2d_backward_indices(const float* grad_out, const std::int64_t* indices, float* grad_in,
                                    index_t planes, index_t hw, index_t ohw) {
  // A plane at a time: zero it, scatter-add in output order (the order of the x-based backward, so
  // both give the same bits). A plane is small enough to stay in cache between the two passes.
  index_t bad = 0;
#pragma omp parallel for schedule(static) reduction(+ : bad) if (parallel_worth_it(planes, hw + 2 * ohw)) num_threads(max_threads())
  for (index_t p = 0; p < planes; ++p) {
    float* gi = grad_in + p * hw;
    const float* go = grad_out + p * ohw;
    const std::int64_t* ix = indices + p * ohw;
    std::fill(gi, gi + hw, 0.0f);
    for (index_t o = 0; o < ohw; ++o) {
      const std::int64_t at = ix[o];
      if (static_cast<std::uint64_t>(at) < static_cast<std::uint64_t>(hw))
        gi[at] += go[o];
      else if (at != -1)  // -1: a window with no input cell
        ++bad;
    }
  }
  return bad;
}

// ---------------------------------------------------------------------------------------- avg

void avg_pool2d_forward(const float* x, float* y, const Pool2dGeometry& g, bool count_include_pad,
                        double divisor_override) {
  const index_t oh = g.oh, ow = g.ow, hw = g.h * g.w;
  if (is_2x2_stride2(g) && floor_shape(g) && divisor_override == 0.0)
    return forward_2x2(x, y, g, rows_2x2().avg_fwd);
  const Interior in = interior_cols(g);
  const AvgDivisor divisor{count_include_pad, divisor_override};
#pragma omp parallel for collapse(2) schedule(static) if (parallel_worth_it(g)) num_threads(max_threads())
  for (index_t p = 0; p < g.planes; ++p)
    for (index_t i = 0; i < oh; ++i) row_avg(x + p * hw, g, in, i, y + (p * oh + i) * ow, divisor);
}

void avg_pool2d_backward(const float* grad_out, float* grad_in, const Pool2dGeometry& g, bool count_include_pad,
                         double divisor_override) {
  const index_t oh = g.oh, ow = g.ow, hw = g.h * g.w;
  if (is_2x2_stride2(g) && floor_shape(g) && divisor_override == 0.0) {
    const auto fn = rows_2x2().avg_bwd;
    backward_2x2(g, grad_in, [&](index_t p, index_t i, float* gi0, float* gi1) {
      fn(grad_out + (p * oh + i) * ow, gi0, gi1, ow);
    });
    return;
  }
  // Zero the plane, then add g / divisor over each window (contiguous runs of kw cells; no integer
  // division per cell as a gather would need). A thread per plane.
  const AvgDivisor divisor{count_include_pad, divisor_override};
#pragma omp parallel for schedule(static) if (parallel_worth_it(g)) num_threads(max_threads())
  for (index_t p = 0; p < g.planes; ++p) {
    const float* gp = grad_out + p * oh * ow;
    float* gi = grad_in + p * hw;
    std::fill(gi, gi + hw, 0.0f);
    for (index_t i = 0; i < oh; ++i) {
      const Span rows = rows_of1(g, i);
      const double ph_ext = pool_extent(i, g.sh, g.ph, g.kh, g.h);
      for (index_t j = 0; j < ow; ++j) {
        const Span cols = cols_of1(g, j);
        const float v = gp[i * ow + j] /
                        divisor(ph_ext, pool_extent(j, g.sw, g.pw, g.kw, g.w), count(rows, 1), count(cols, 1));
        for (index_t r = rows.lo; r < rows.hi; ++r)
          for (index_t c = cols.lo; c < cols.hi; ++c) gi[r * g.w + c] += v;
      }
    }
  }
}

// ----------------------------------------------------------------------------------------- lp

namespace {

inline double abs_pow(float v, double p) {
  const double a = std::fabs(static_cast<double>(v));
  return p == 1.0 ? a : p == 2.0 ? a * a : std::pow(a, p);
}

inline double root(double s, double p) { return p == 1.0 ? s : p == 2.0 ? std::sqrt(s) : std::pow(s, 1.0 / p); }

inline double lp_sum(const float* plane, index_t w, const Span& rows, const Span& cols, double p) {
  double s = 0.0;
  for (index_t r = rows.lo; r < rows.hi; ++r)
    for (index_t c = cols.lo; c < cols.hi; ++c) s += abs_pow(plane[r * w + c], p);
  return s;
}

// A window's norm as scale * t (the true norm is (F * sum |x|^p)^(1/p) = scale * t). Fast path:
// the power sum in double, scale 1. Where that sum overflows or underflows (|x| = 3e38 with p = 3
// overflows float32; p = 9 overflows double) although every cell is finite, it is summed again
// over |x| / max|x|, so the result and the gradient's ratios |x| / norm stay exact.
struct LpNorm {
  double scale, t;
};

inline LpNorm lp_norm(const float* plane, index_t w, const Span& rows, const Span& cols, double p, double f) {
  const double s = lp_sum(plane, w, rows, cols, p) * f;
  if (s >= std::numeric_limits<double>::min() && s <= std::numeric_limits<double>::max()) return {1.0, root(s, p)};
  double m = 0.0;
  for (index_t r = rows.lo; r < rows.hi; ++r)
    for (index_t c = cols.lo; c < cols.hi; ++c) m = std::max(m, std::fabs(static_cast<double>(plane[r * w + c])));
  if (!(m > 0.0) || !std::isfinite(m) || std::isnan(s)) return {1.0, root(s, p)};  // 0, inf or NaN inside
  double q = 0.0;
  for (index_t r = rows.lo; r < rows.hi; ++r)
    for (index_t c = cols.lo; c < cols.hi; ++c) q += std::pow(std::fabs(static_cast<double>(plane[r * w + c])) / m, p);
  return {m, root(q * f, p)};
}

// kh*kw / (the window clipped to the padded input): 1 unless a ceil_mode window runs past it.
inline double lp_factor(const Pool2dGeometry& g, index_t i, index_t j) {
  const double eh = pool_extent(i, g.sh, g.ph, g.kh, g.h), ew = pool_extent(j, g.sw, g.pw, g.kw, g.w);
  const double kh = static_cast<double>(g.kh), kw = static_cast<double>(g.kw);
  return (eh == kh && ew == kw) ? 1.0 : (kh * kw) / (eh * ew);
}

// Whether any window runs past the padded input (only ceil_mode's last ones can): else F = 1.
inline bool lp_scaled(const Pool2dGeometry& g) {
  return (g.oh - 1) * g.sh - g.ph + g.kh > g.h + g.ph || (g.ow - 1) * g.sw - g.pw + g.kw > g.w + g.pw;
}

}  // namespace

void lp_pool2d_forward(const float* x, float* y, const Pool2dGeometry& g, double p) {
  const index_t oh = g.oh, ow = g.ow, hw = g.h * g.w;
  const bool scaled = lp_scaled(g);
#pragma omp parallel for collapse(2) schedule(static) if (parallel_worth_it(g)) num_threads(max_threads())
  for (index_t pl = 0; pl < g.planes; ++pl)
    for (index_t i = 0; i < oh; ++i) {
      const Span rows = rows_of1(g, i);
      for (index_t j = 0; j < ow; ++j) {
        const LpNorm n = lp_norm(x + pl * hw, g.w, rows, cols_of1(g, j), p, scaled ? lp_factor(g, i, j) : 1.0);
        y[(pl * oh + i) * ow + j] = static_cast<float>(n.scale * n.t);
      }
    }
}

void lp_pool2d_backward(const float* grad_out, const float* x, float* grad_in, const Pool2dGeometry& g,
                        double p) {
  const index_t oh = g.oh, ow = g.ow, hw = g.h * g.w;
  const bool scaled = lp_scaled(g);
  // Scatter per plane (the window norm is computed once per window), one thread per plane.
#pragma omp parallel for schedule(static) if (parallel_worth_it(g)) num_threads(max_threads())
  for (index_t pl = 0; pl < g.planes; ++pl) {
    const float* plane = x + pl * hw;
    float* gi = grad_in + pl * hw;
    std::fill(gi, gi + hw, 0.0f);
    for (index_t i = 0; i < oh; ++i) {
      const Span rows = rows_of1(g, i);
      for (index_t j = 0; j < ow; ++j) {
        const Span cols = cols_of1(g, j);
        const double f = scaled ? lp_factor(g, i, j) : 1.0;
        const LpNorm n = lp_norm(plane, g.w, rows, cols, p, f);
        const double gv = grad_out[(pl * oh + i) * ow + j] * f;
        if (n.t == 0.0) continue;  // every cell is 0: the gradient is defined as 0 (no 0/0)
        for (index_t r = rows.lo; r < rows.hi; ++r)
          for (index_t c = cols.lo; c < cols.hi; ++c) {
            const double v = plane[r * g.w + c];
            if (v == 0.0) continue;
            const double ratio = std::fabs(v) / n.scale / n.t;
            const double d = p == 1.0 ? 1.0 : p == 2.0 ? ratio : std::pow(ratio, p - 1.0);
            gi[r * g.w + c] += static_cast<float>(gv * (v > 0 ? d : -d));
          }
      }
    }
  }
}

// ----------------------------------------------------------------------------------- adaptive

namespace {

// Window a of an adaptive pool of n cells into o outputs: [floor(a*n/o), ceil((a+1)*n/o)).
inline Span adaptive_span(index_t a, index_t n, index_t o) { return {a * n / o, ((a + 1) * n + o - 1) / o}; }

inline bool parallel_worth_it(const AdaptivePool2dGeometry& g) {
  return parallel_worth_it(g.planes, g.h * g.w + g.oh * g.ow);
}

}  // namespace

// Separably, per output row: the column sums (or maxima) over the window's rows, a contiguous
// vectorised loop, then each window's sum over its columns of that row.
void adaptive_avg_pool2d_forward(const float* x, float* y, const AdaptivePool2dGeometry& g) {
  const index_t hw = g.h * g.w;
#pragma omp parallel if (parallel_worth_it(g)) num_threads(max_threads())
  {
    std::vector<float> col(g.w);
#pragma omp for collapse(2) schedule(static)
    for (index_t p = 0; p < g.planes; ++p)
      for (index_t i = 0; i < g.oh; ++i) {
        const Span rows = adaptive_span(i, g.h, g.oh);
        const float* plane = x + p * hw;
        float* v = col.data();
        std::copy(plane + rows.lo * g.w, plane + (rows.lo + 1) * g.w, v);
        for (index_t r = rows.lo + 1; r < rows.hi; ++r)
          for (index_t c = 0; c < g.w; ++c) v[c] += plane[r * g.w + c];
        for (index_t j = 0; j < g.ow; ++j) {
          const Span cols = adaptive_span(j, g.w, g.ow);
          float s = 0.0f;
          for (index_t c = cols.lo; c < cols.hi; ++c) s += v[c];
          y[(p * g.oh + i) * g.ow + j] = s / static_cast<float>((rows.hi - rows.lo) * (cols.hi - cols.lo));
        }
      }
  }
}

void adaptive_avg_pool2d_backward(const float* grad_out, float* grad_in, const AdaptivePool2dGeometry& g) {
  const index_t hw = g.h * g.w;
#pragma omp parallel for schedule(static) if (parallel_worth_it(g)) num_threads(max_threads())
  for (index_t p = 0; p < g.planes; ++p) {
    float* gi = grad_in + p * hw;
    const float* gp = grad_out + p * g.oh * g.ow;
    std::fill(gi, gi + hw, 0.0f);
    for (index_t i = 0; i < g.oh; ++i) {
      const Span rows = adaptive_span(i, g.h, g.oh);
      for (index_t j = 0; j < g.ow; ++j) {
        const Span cols = adaptive_span(j, g.w, g.ow);
        const float v = gp[i * g.ow + j] / static_cast<float>((rows.hi - rows.lo) * (cols.hi - cols.lo));
        for (index_t r = rows.lo; r < rows.hi; ++r)
          for (index_t c = cols.lo; c < cols.hi; ++c) gi[r * g.w + c] += v;
      }
    }
  }
}

namespace {

// The winner of an adaptive window (never empty: each covers at least one cell).
inline index_t adaptive_argmax(const float* plane, index_t w, const Span& rows, const Span& cols) {
  index_t best_at = rows.lo * w + cols.lo;
  float best = plane[best_at];
  for (index_t r = rows.lo; r < rows.hi; ++r)
    for (index_t c = cols.lo; c < cols.hi; ++c)
      if (pool_beats(plane[r * w + c], best)) {
        best = plane[r * w + c];
        best_at = r * w + c;
      }
  return best_at;
}

}  // namespace

void adaptive_max_pool2d_forward(const float* x, float* y, std::int64_t* indices, const AdaptivePool2dGeometry& g) {
  const index_t hw = g.h * g.w;
#pragma omp parallel if (parallel_worth_it(g)) num_threads(max_threads())
  {
    std::vector<float> col(indices ? 0 : g.w);
#pragma omp for collapse(2) schedule(static)
    for (index_t p = 0; p < g.planes; ++p)
      for (index_t i = 0; i < g.oh; ++i) {
        const float* plane = x + p * hw;
        const Span rows = adaptive_span(i, g.h, g.oh);
        float* yr = y + (p * g.oh + i) * g.ow;
        if (indices) {  // the winners need the row-major scan
          for (index_t j = 0; j < g.ow; ++j) {
            const index_t at = adaptive_argmax(plane, g.w, rows, adaptive_span(j, g.w, g.ow));
            yr[j] = plane[at];
            indices[(p * g.oh + i) * g.ow + j] = at;
          }
          continue;
        }
        // Values only: separably (a max's value does not depend on the scan order; see row_max_vh).
        float* v = col.data();
        std::copy(plane + rows.lo * g.w, plane + (rows.lo + 1) * g.w, v);
        for (index_t r = rows.lo + 1; r < rows.hi; ++r)
          for (index_t c = 0; c < g.w; ++c) v[c] = nan_max(v[c], plane[r * g.w + c]);
        for (index_t j = 0; j < g.ow; ++j) {
          const Span cols = adaptive_span(j, g.w, g.ow);
          float m = v[cols.lo];
          for (index_t c = cols.lo + 1; c < cols.hi; ++c) m = nan_max(m, v[c]);
          yr[j] = m;
        }
      }
  }
}

void adaptive_max_pool2d_backward(const float* grad_out, const float* x, float* grad_in,
                                  const AdaptivePool2dGeometry& g) {
  const index_t hw = g.h * g.w;
#pragma omp parallel for schedule(static) if (parallel_worth_it(g)) num_threads(max_threads())
  for (index_t p = 0; p < g.planes; ++p) {
    const float* plane = x + p * hw;
    const float* gp = grad_out + p * g.oh * g.ow;
    float* gi = grad_in + p * hw;
    std::fill(gi, gi + hw, 0.0f);
    for (index_t i = 0; i < g.oh; ++i) {
      const Span rows = adaptive_span(i, g.h, g.oh);
      for (index_t j = 0; j < g.ow; ++j)
        gi[adaptive_argmax(plane, g.w, rows, adaptive_span(j, g.w, g.ow))] += gp[i * g.ow + j];
    }
  }
}

// ------------------------------------------------------------------------------------- unpool

index_t max_unpool2d_forward(const float* x, const std::int64_t* indices, float* y, index_t planes,
                             index_t in_hw, index_t out_hw) {
  index_t bad = 0;
#pragma omp parallel for schedule(static) reduction(+ : bad) if (parallel_worth_it(planes, in_hw + out_hw)) num_threads(max_threads())
  for (index_t p = 0; p < planes; ++p) {
    float* yp = y + p * out_hw;
    const float* xp = x + p * in_hw;
    const std::int64_t* ix = indices + p * in_hw;
    std::fill(yp, yp + out_hw, 0.0f);
    for (index_t k = 0; k < in_hw; ++k) {
      if (static_cast<std::uint64_t>(ix[k]) < static_cast<std::uint64_t>(out_hw))
        yp[ix[k]] = xp[k];
      else
        ++bad;
    }
  }
  return bad;
}

index_t max_unpool2d_backward(const float* grad_out, const std::int64_t* indices, float* grad_x,
                              index_t planes, index_t in_hw, index_t out_hw) {
  index_t bad = 0;
#pragma omp parallel for schedule(static) reduction(+ : bad) if (parallel_worth_it(planes, in_hw + out_hw)) num_threads(max_threads())
  for (index_t p = 0; p < planes; ++p) {
    const float* gp = grad_out + p * out_hw;
    const std::int64_t* ix = indices + p * in_hw;
    float* gx = grad_x + p * in_hw;
    for (index_t k = 0; k < in_hw; ++k) {
      const bool ok = static_cast<std::uint64_t>(ix[k]) < static_cast<std::uint64_t>(out_hw);
      gx[k] = ok ? gp[ix[k]] : 0.0f;
      bad += !ok;
    }
  }
  return bad;
}

// ------------------------------------------------------------------------------------- global

void global_avg_pool2d_forward(const float* x, float* y, index_t planes, index_t hw) {
#pragma omp parallel for schedule(static) if (planes * hw > kParallelGrain) num_threads(max_threads())
  for (index_t p = 0; p < planes; ++p) {
    const float* plane = x + p * hw;
    double s = 0.0;  // planes can be long (224x224): double keeps the sum exact enough
#pragma omp simd reduction(+ : s)
    for (index_t k = 0; k < hw; ++k) s += plane[k];
    y[p] = static_cast<float>(s / static_cast<double>(hw));
  }
}

void global_avg_pool2d_backward(const float* grad_out, float* grad_in, index_t planes, index_t hw) {
#pragma omp parallel for schedule(static) if (planes * hw > kParallelGrain) num_threads(max_threads())
  for (index_t p = 0; p < planes; ++p) {
    const float v = static_cast<float>(static_cast<double>(grad_out[p]) / static_cast<double>(hw));
    std::fill(grad_in + p * hw, grad_in + (p + 1) * hw, v);
  }
}

}  // namespace fastlayers::cpu
