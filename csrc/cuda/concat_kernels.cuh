// Device code of the CUDA cat / split (csrc/cuda/concat.cu has the launchers). blockIdx.y picks the
// piece, the x-dimension grid-strides over its outer x width elements; float4 moves when every
// width, offset and address of the launch is a multiple of 4 floats. No host-only CUDA API, so
// csrc/cuda/host_emulation can compile it.
#pragma once
#include "common/types.h"

namespace fastlayers::cuda::concat_detail {

constexpr int kCatPiecesPerLaunch = 32;

template <class I>
struct Pieces {
  float* ptr[kCatPiecesPerLaunch];  // cat: sources (read only); split: destinations
  I width[kCatPiecesPerLaunch];     // floats per row of each piece (divided by 4 when vec)
  I offset[kCatPiecesPerLaunch];    // its first column in the whole row (likewise)
  I total;                          // floats per row of the whole array (likewise)
  I outer;
};

// kToWhole: cat (pieces -> whole); otherwise split (whole -> pieces). V: float or float4.
template <bool kToWhole, class V, class I>
__global__ void cat_kernel(Pieces<I> pc, V* whole) {
  const int p = blockIdx.y;
  V* piece = reinterpret_cast<V*>(pc.ptr[p]);
  const I width = pc.width[p], offset = pc.offset[p];
  const I n = pc.outer * width;
  const I step = static_cast<I>(gridDim.x) * blockDim.x;
  for (I e = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += step) {
    const I row = e / width, col = e - row * width;
    const I at = row * pc.total + offset + col;
    if (kToWhole)
      whole[at] = piece[e];
    else
      piece[e] = whole[at];
  }
}

}  // namespace fastlayers::cuda::concat_detail
