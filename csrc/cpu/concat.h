// cat / split on the CPU: copies between one (outer x total) row-major array and `count` pieces of
// (outer x widths[p]) each, piece p occupying columns [sum of earlier widths, + widths[p]) of every
// row. Same names as the CUDA twin (csrc/cuda/concat.h). Semantics: python/fastlayers/reference/concat.py.
#pragma once
#include "common/types.h"

namespace fastlayers::cpu {

// y (outer x sum(widths)) = the pieces side by side. Each thread copies one contiguous range of y
// (split at cache-line boundaries) with memcpy runs, whatever the piece sizes: bandwidth-bound for
// every axis, including a cat along axis 0 of two large arrays (outer = 1).
void cat_forward(const float* const* pieces, const index_t* widths, index_t count, float* y, index_t outer);

// The inverse (split, and cat's backward): each piece gets its columns of grad_out.
void cat_backward(const float* grad_out, float* const* pieces, const index_t* widths, index_t count,
                  index_t outer);

}  // namespace fastlayers::cpu
