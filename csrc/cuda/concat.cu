// cat / split on the GPU: a copy kernel (not cudaMemcpy2D: one launch moves up to 32 pieces, and
// the index math is a division per element in int32 when the call fits). See concat_kernels.cuh.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "cuda/check.h"
#include "cuda/concat.h"
#include "cuda/concat_kernels.cuh"
#include "cuda/launch.h"

namespace fastlayers::cuda {
namespace {

using namespace concat_detail;

template <bool kToWhole, class I>
void launch(float* const* pieces, const index_t* widths, const index_t* offsets, index_t count, index_t total,
            index_t outer, float* whole, bool vec, cudaStream_t stream) {
  const int div = vec ? 4 : 1;
  for (index_t first = 0; first < count; first += kCatPiecesPerLaunch) {
    const index_t k = std::min<index_t>(kCatPiecesPerLaunch, count - first);
    Pieces<I> pc{};
    index_t widest = 0;
    for (index_t p = 0; p < k; ++p) {
      pc.ptr[p] = pieces[first + p];
      pc.width[p] = static_cast<I>(widths[first + p] / div);
      pc.offset[p] = static_cast<I>(offsets[first + p] / div);
      widest = std::max(widest, widths[first + p] / div);
    }
    pc.total = static_cast<I>(total / div);
    pc.outer = static_cast<I>(outer);
    if (widest == 0) continue;
    const dim3 grid(grid_for(outer * widest) / static_cast<unsigned>(k) + 1, static_cast<unsigned>(k));
    if (vec)
      cat_kernel<kToWhole, float4, I><<<grid, kThreadsPerBlock, 0, stream>>>(pc, reinterpret_cast<float4*>(whole));
    else
      cat_kernel<kToWhole, float, I><<<grid, kThreadsPerBlock, 0, stream>>>(pc, whole);
    check_launch(kToWhole ? "cat" : "split");
  }
}

template <bool kToWhole>
void run(float* const* pieces, const index_t* widths, index_t count, float* whole, index_t outer,
         cudaStream_t stream) {
  if (count <= 0 || outer <= 0) return;
  std::vector<index_t> offsets(count);
  index_t total = 0;
  bool vec = reinterpret_cast<std::uintptr_t>(whole) % 16 == 0;
  for (index_t p = 0; p < count; ++p) {
    offsets[p] = total;
    total += widths[p];
    vec = vec && widths[p] % 4 == 0 && reinterpret_cast<std::uintptr_t>(pieces[p]) % 16 == 0;
  }
  if (total == 0) return;
  if (outer * total < (index_t(1) << 30))
    launch<kToWhole, std::int32_t>(pieces, widths, offsets.data(), count, total, outer, whole, vec, stream);
  else
    launch<kToWhole, std::int64_t>(pieces, widths, offsets.data(), count, total, outer, whole, vec, stream);
}

}  // namespace

void cat_forward(const float* const* pieces, const index_t* widths, index_t count, float* y, index_t outer,
                 cudaStream_t stream) {
  run<true>(const_cast<float* const*>(pieces), widths, count, y, outer, stream);  // read only in cat
}

void cat_backward(const float* grad_out, float* const* pieces, const index_t* widths, index_t count,
                  index_t outer, cudaStream_t stream) {
  run<false>(pieces, widths, count, const_cast<float*>(grad_out), outer, stream);  // read only in split
}

}  // namespace fastlayers::cuda
