#include "cuda/elementwise.h"
#include "cuda/map.h"

namespace fastlayers::cuda {
namespace {
struct Add {
  __device__ float operator()(float a, float b) const { return a + b; }
};
}  // namespace

void add_forward(const float* a, const float* b, float* y, index_t n, cudaStream_t stream) {
  map2(a, b, y, n, Add{}, stream, "add");
}

}  // namespace fastlayers::cuda
