// Elementwise binary ops on the CPU. Same names as the CUDA twin (csrc/cuda/elementwise.h).
//
// Broadcasting (NumPy's rules) reaches the kernels in a canonical form computed by the op layer
// (ops/elementwise.py): the output shape with size-1 dimensions dropped and neighbouring
// dimensions merged wherever both operands are laid out alike, at most kMaxBroadcastDims
// dimensions, and per operand the element strides over that shape (0 along a broadcast dimension;
// the operands are contiguous, so the innermost stride is 0 or 1). The common cases come out as
// one dimension (same shape, or a scalar operand) or two (a row or column broadcast, e.g. a bias).
#pragma once
#include "common/types.h"

namespace fastlayers::cpu {

constexpr int kMaxBroadcastDims = 8;
enum BinaryOp : int { kBinaryAdd = 0, kBinaryMul = 1 };

// y = a + b (same shape, residual connections); y may alias a or b.
void add_forward(const float* a, const float* b, float* y, index_t n);

// y (contiguous, the collapsed output shape) = a + alpha * b (kBinaryAdd) or a * b (kBinaryMul),
// reading a and b at their strides.
void binary_broadcast_forward(int op, const float* a, const float* b, float* y, int ndim,
                              const index_t* shape, const index_t* a_strides,
                              const index_t* b_strides, float alpha);

// out = alpha * (g summed over the dimensions where out_strides is 0): the gradient of an operand
// that was broadcast to g's (collapsed) shape. Sums in double, each output element by one thread
// in a fixed order (deterministic). With no 0 stride it is a scaled copy. g must not be empty.
void sum_broadcast(const float* g, float* out, int ndim, const index_t* shape,
                   const index_t* out_strides, float alpha);

}  // namespace fastlayers::cpu
