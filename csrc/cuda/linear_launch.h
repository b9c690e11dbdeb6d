// Dense-layer bias dispatch (kernels: linear_kernels.cuh) through a launcher L (launch_grid.h):
// linear.cu launches on a CUDA stream, the host emulation runs the same code on host threads.
#pragma once
#include "cuda/launch.h"
#include "cuda/launch_grid.h"
#include "cuda/linear_kernels.cuh"

namespace fastlayers::cuda::linear_dispatch {

using namespace detail;

// Row chunks of the bias gradient: about 4096 rows each, at most 64 (a function of the shape only,
// so the summation order is too). One chunk needs no workspace.
inline index_t bias_chunks(index_t rows) {
  const index_t c = (rows + 4095) / 4096;
  return c < 1 ? 1 : (c > 64 ? 64 : c);
}
inline index_t bias_workspace_floats(index_t rows, index_t cols) {
  const index_t c = bias_chunks(rows);
  return c > 1 ? c * cols : 0;
}

template <class L>
void bias_add(L& launch, float* y, const float* b, index_t rows, index_t cols) {
  if (rows <= 0 || cols <= 0) return;
  launch("linear (bias)", Grid{grid_for(rows * cols), 1, 1}, kThreadsPerBlock, &bias_add_rows_kernel, y, b, rows, cols);
}

// With less workspace than bias_workspace_floats: one chunk.
template <class L>
void bias_grad(L& launch, const float* g, float* grad_b, index_t rows, index_t cols, float* ws, index_t ws_floats) {
  if (cols <= 0) return;  // rows == 0 still launches: the gradient of an empty batch is zero
  index_t chunks = bias_chunks(rows > 0 ? rows : 0);
  if (ws == nullptr || chunks * cols > ws_floats) chunks = 1;
  const index_t row_chunk = chunks > 1 ? (rows + chunks - 1) / chunks : (rows > 0 ? rows : 0);
  const index_t bx = (cols + kBiasColLanes - 1) / kBiasColLanes;
  const Grid grid{static_cast<unsigned>(bx < 65535 * 8 ? bx : 65535 * 8), static_cast<unsigned>(chunks), 1};
  float* partial = chunks > 1 ? ws : nullptr;
  launch("linear_backward (bias)", grid, kBiasColLanes * kBiasRowWarps, &bias_grad_rows_kernel, g, partial, grad_b,
         rows > 0 ? rows : index_t(0), cols, row_chunk, chunks);
  if (partial)
    launch("linear_backward (bias chunks)", Grid{grid_for(cols), 1, 1}, kThreadsPerBlock, &bias_grad_chunks_kernel,
           static_cast<const float*>(partial), grad_b, cols, chunks);
}

}  // namespace fastlayers::cuda::linear_dispatch
