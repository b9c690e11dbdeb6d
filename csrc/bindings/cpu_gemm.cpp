#include <pybind11/pybind11.h>

#include "bindings/cpu_bindings.h"
#include "bindings/pointers.h"
#include "cpu/gemm.h"
#include "cpu/linear.h"

namespace py = pybind11;

namespace fastlayers::bindings {

// Same Python-level names and argument lists as the CUDA module (which appends a stream).
void bind_cpu_gemm(py::module_& m) {
  const auto nogil = py::call_guard<py::gil_scoped_release>();
  m.def("sgemm", [](bool trans_a, bool trans_b, index_t M, index_t N, index_t K, float alpha,
                    Address a, index_t lda, Address b, index_t ldb, float beta,
                    Address c, index_t ldc) {
    cpu::sgemm(trans_a, trans_b, M, N, K, alpha, in(a), lda, in(b), ldb, beta, out(c), ldc);
  }, nogil);
  m.def("bias_add_rows", [](Address y, Address b, index_t rows, index_t cols) {
    cpu::bias_add_rows(out(y), in(b), rows, cols);
  }, nogil);
  m.def("bias_grad_rows", [](Address g, Address gb, index_t rows, index_t cols) {
    cpu::bias_grad_rows(in(g), out(gb), rows, cols);
  }, nogil);
}

}  // namespace fastlayers::bindings
