// cat / split on the GPU. Same names and semantics as csrc/cpu/concat.h, plus the stream. Free of
// CUDA syntax (included by the bindings). The piece addresses are passed to the kernel by value (a
// parameter block of up to kCatPiecesPerLaunch pieces per launch), so no host-to-device copy and no
// allocation happens per call.
#pragma once
#include <cuda_runtime_api.h>

#include "common/types.h"

namespace fastlayers::cuda {

void cat_forward(const float* const* pieces, const index_t* widths, index_t count, float* y, index_t outer,
                 cudaStream_t stream);
void cat_backward(const float* grad_out, float* const* pieces, const index_t* widths, index_t count,
                  index_t outer, cudaStream_t stream);

}  // namespace fastlayers::cuda
