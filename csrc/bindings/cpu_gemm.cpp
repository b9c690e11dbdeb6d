#include <pybind11/pybind11.h>

#include <stdexcept>

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
  // CPU only: op(B) packed once for many products (the inference plan's dense weights), reached
  // from Python by the tests. Bp must be 64-byte aligned (the kernels' aligned loads).
  m.def("sgemm_packed_b_cols", [] { return cpu::sgemm_packed_b_cols(); });
  m.def("sgemm_packed_b_floats", [](index_t K, index_t N) { return cpu::sgemm_packed_b_floats(K, N); });
  m.def("sgemm_pack_b", [](bool trans_b, index_t K, index_t N, Address b, index_t ldb, Address bp) {
    if (bp.value % 64 != 0) throw std::invalid_argument("sgemm_pack_b: bp must be 64-byte aligned");
    cpu::sgemm_pack_b(trans_b, K, N, in(b), ldb, out(bp));
  }, nogil);
  m.def("sgemm_prepacked_b", [](bool trans_a, index_t M, index_t N, index_t K, float alpha, Address a,
                                index_t lda, Address bp, index_t packed_cols, float beta, Address c, index_t ldc) {
    if (bp.value % 64 != 0) throw std::invalid_argument("sgemm_prepacked_b: bp must be 64-byte aligned");
    if (packed_cols < 1) throw std::invalid_argument("sgemm_prepacked_b: packed_cols must be positive");
    cpu::sgemm_prepacked_b(trans_a, M, N, K, alpha, in(a), lda, in(bp), packed_cols, beta, out(c), ldc);
  }, nogil);
  m.def("bias_add_rows", [](Address y, Address b, index_t rows, index_t cols) {
    cpu::bias_add_rows(out(y), in(b), rows, cols);
  }, nogil);
  m.def("bias_grad_rows", [](Address g, Address gb, index_t rows, index_t cols) {
    cpu::bias_grad_rows(in(g), out(gb), rows, cols);
  }, nogil);
}

}  // namespace fastlayers::bindings
