#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <stdexcept>
#include <vector>

#include "bindings/cpu_bindings.h"
#include "bindings/pointers.h"
#include "cpu/matmul.h"

namespace py = pybind11;

namespace fastlayers::bindings {

// Same names and argument lists as csrc/bindings/cuda_matmul.cpp (which appends the stream).
void bind_cpu_matmul(py::module_& m) {
  using Dims = std::vector<index_t>;
  m.def("sgemm_batched", [](bool ta, bool tb, index_t M, index_t N, index_t K, float alpha, Address a,
                            index_t lda, Address b, index_t ldb, float beta, Address c, index_t ldc,
                            const Dims& shape, const Dims& sa, const Dims& sb, const Dims& sc) {
    if (shape.empty() || shape.size() > static_cast<size_t>(cpu::kMaxBatchDims) ||
        sa.size() != shape.size() || sb.size() != shape.size() || sc.size() != shape.size())
      throw std::invalid_argument("sgemm_batched: 1 to 8 batch dimensions, one stride per operand each");
    cpu::sgemm_batched(ta, tb, M, N, K, alpha, in(a), lda, in(b), ldb, beta, out(c), ldc,
                       static_cast<int>(shape.size()), shape.data(), sa.data(), sb.data(), sc.data());
  }, py::call_guard<py::gil_scoped_release>());
}

}  // namespace fastlayers::bindings
