#include "cpu/concat.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "cpu/row_blocks.h"

namespace fastlayers::cpu {

namespace {

// Walks the flat range [lo, hi) of the (outer x total) array and calls copy(flat, piece, row, col, n)
// once per run of n floats that lie in one piece and one row.
template <class Copy>
void walk(const index_t* widths, const index_t* offsets, index_t count, index_t total, index_t lo, index_t hi,
          Copy copy) {
  index_t row = lo / total, col = lo % total;
  index_t p = 0;
  while (offsets[p] + widths[p] <= col) ++p;  // the piece holding col (widths sum to total, so p < count)
  for (index_t at = lo; at < hi;) {
    const index_t run = std::min(offsets[p] + widths[p] - col, hi - at);
    copy(at, p, row, col - offsets[p], run);
    at += run;
    col += run;
    if (col == offsets[p] + widths[p]) {
      do {
        if (++p == count) {
          p = 0;
          col = 0;
          ++row;
        }
      } while (widths[p] == 0);
    }
  }
}

template <class Copy>
void for_each_run(const index_t* widths, index_t count, index_t outer, Copy copy) {
  std::vector<index_t> offsets(count);
  index_t total = 0;
  for (index_t p = 0; p < count; ++p) {
    offsets[p] = total;
    total += widths[p];
  }
  if (total == 0 || outer == 0) return;
  // Blocks of 16 floats (a cache line) as "rows": each dynamic block is a 256 KiB range of the output.
  const index_t n = outer * total, lines = (n + 15) / 16;
  for_row_blocks(lines, 16, [&](index_t l0, index_t l1) {
    walk(widths, offsets.data(), count, total, l0 * 16, std::min(n, l1 * 16), copy);
  });
}

}  // namespace

void cat_forward(const float* const* pieces, const index_t* widths, index_t count, float* y, index_t outer) {
  for_each_run(widths, count, outer, [&](index_t at, index_t p, index_t row, index_t col, index_t n) {
    std::memcpy(y + at, pieces[p] + row * widths[p] + col, sizeof(float) * n);
  });
}

void cat_backward(const float* grad_out, float* const* pieces, const index_t* widths, index_t count,
                  index_t outer) {
  for_each_run(widths, count, outer, [&](index_t at, index_t p, index_t row, index_t col, index_t n) {
    std::memcpy(pieces[p] + row * widths[p] + col, grad_out + at, sizeof(float) * n);
  });
}

}  // namespace fastlayers::cpu
