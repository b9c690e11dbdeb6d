// Row kernels of the general (any geometry) max pool, chosen at run time by csrc/cpu/pool.cpp: the
// portable one lives there (row_max_vh), the AVX2 one in pool_rows_avx2.cpp.
#pragma once
#include <cstdint>

#include "common/types.h"

namespace fastlayers::cpu::avx2 {

// One output row of max-pool values: rows r0, r0+dh, ... < r1 of the plane (w columns) are the
// window's input rows (at least one); buf (len + 16 floats; len >= pw + w and >= (ow-1)*sw +
// (kw-1)*dw + 1) is scratch; y gets ow values. Window j covers columns j*sw - pw + b*dw, b < kw.
void max_pool_row_vh(const float* plane, index_t w, index_t r0, index_t r1, index_t dh, index_t pw, index_t sw,
                     index_t dw, index_t kw, index_t ow, float* buf, index_t len, float* y);

// The winners of n consecutive interior windows of one output row (the first window's first cell at
// `base`, windows spaced sw apart, nrows real rows dh apart, kw taps dw apart): loc[j] = the cell
// number (rr*kw + b) of window j's winner, exactly as a row-major pool_beats scan finds it. Strides 1
// and 2 with n >= 8; returns false (nothing written) otherwise.
bool max_pool_row_argmax(const float* base, index_t w, index_t nrows, index_t dh, index_t sw, index_t dw,
                         index_t kw, index_t n, std::int32_t* loc);

}  // namespace fastlayers::cpu::avx2
