// The geometry and index maps of pad (torch.nn.functional.pad), shared by the CPU and CUDA kernels
// (csrc/cpu/pad.h, csrc/cuda/pad.h) and by the host emulation. Semantics: python/fastlayers/reference/pad.py.
//
// A call is a `rank`-D problem (rank <= kPadMaxRank, after the Python op merged neighbouring unpadded
// dimensions) with, per dimension d, the input size in[d], the output size out[d] and the left pad
// lo[d] (negative: crop); the right pad is out[d] - in[d] - lo[d]. Every output element takes one
// input element (or `value`, constant mode) found dimension by dimension:
//   constant:  i = o - lo, outside [0, n): value
//   reflect:   i = o - lo mirrored at 0 and n - 1 (no edge repeat); the op checked pads < n
//   replicate: i = clamp(o - lo, 0, n - 1)
//   circular:  PyTorch crops first, then wraps around the cropped length m (see pad_source)
// The caller has checked every size and pad (output sizes >= 0, reflect pads < n, circular pads <= m).
#pragma once
#include "common/types.h"

#if defined(__CUDACC__)
#define FL_HOST_DEVICE __host__ __device__
#else
#define FL_HOST_DEVICE
#endif

namespace fastlayers {

enum PadMode : int { kPadConstant = 0, kPadReflect = 1, kPadReplicate = 2, kPadCircular = 3 };

constexpr int kPadMaxRank = 8;

struct PadGeometry {
  int rank = 0;
  int mode = kPadConstant;
  index_t in[kPadMaxRank] = {};
  index_t out[kPadMaxRank] = {};
  index_t lo[kPadMaxRank] = {};
};

// The input index that output index o of one dimension reads, or -1 (constant mode: the fill value).
// I: the index type (the CUDA kernels use int32 when every index of the call fits).
template <class I>
FL_HOST_DEVICE inline I pad_source(int mode, I o, I n, I lo, I out) {
  I i = o - lo;
  switch (mode) {
    case kPadReflect:
      if (i < 0) i = -i;
      if (i >= n) i = 2 * (n - 1) - i;
      return i;
    case kPadReplicate:
      return i < 0 ? 0 : (i >= n ? n - 1 : i);
    case kPadCircular: {
      // PyTorch (_pad_circular_symint) copies the cropped input [c, n - c_r) to [L, L + m), then wraps
      // the pads around that cropped block: j = o - L taken modulo m, read at c + j.
      const I hi = out - n - lo;
      const I L = lo > 0 ? lo : 0, c = lo < 0 ? -lo : 0, m = n - c - (hi < 0 ? -hi : 0);
      I j = o - L;
      if (j < 0) j += m;
      if (j >= m) j -= m;
      return c + j;
    }
    default:
      return i >= 0 && i < n ? i : -1;
  }
}

// The output indices of one dimension that read input index i, as up to 3 half-open ranges
// [a[k], b[k]) inside [0, out); returns how many (empty ones are dropped). The adjoint of pad_source:
// the backward pass gathers over these, so every gradient cell is written by one thread, no atomics.
template <class I>
FL_HOST_DEVICE inline int pad_sources_of(int mode, I i, I n, I lo, I out, I* a, I* b) {
  I ra[3], rb[3];
  int k = 0;
  switch (mode) {
    case kPadReflect:
      ra[k] = i + lo, rb[k] = ra[k] + 1, ++k;                                   // direct
      if (i > 0) ra[k] = lo - i, rb[k] = ra[k] + 1, ++k;                        // mirrored left of 0
      if (i < n - 1) ra[k] = lo + 2 * (n - 1) - i, rb[k] = ra[k] + 1, ++k;      // mirrored right of n-1
      break;
    case kPadReplicate:
      ra[k] = i == 0 ? 0 : i + lo;
      rb[k] = i == n - 1 ? out : i + lo + 1;
      ++k;
      break;
    case kPadCircular: {
      const I hi = out - n - lo;
      const I L = lo > 0 ? lo : 0, c = lo < 0 ? -lo : 0, m = n - c - (hi < 0 ? -hi : 0);
      if (i < c || i >= c + m) break;  // cropped away
      const I j = i - c + L;
      ra[k] = j - m, rb[k] = j - m + 1, ++k;
      ra[k] = j, rb[k] = j + 1, ++k;
      ra[k] = j + m, rb[k] = j + m + 1, ++k;
      break;
    }
    default:
      ra[k] = i + lo, rb[k] = ra[k] + 1, ++k;
  }
  int kept = 0;
  for (int r = 0; r < k; ++r) {
    const I lo_ = ra[r] < 0 ? I(0) : ra[r], hi_ = rb[r] > out ? out : rb[r];
    if (lo_ < hi_) a[kept] = lo_, b[kept] = hi_, ++kept;
  }
  return kept;
}

}  // namespace fastlayers
