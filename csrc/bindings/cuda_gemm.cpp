#include <pybind11/pybind11.h>

#include <string>

#include "bindings/cuda_bindings.h"
#include "bindings/pointers.h"
#include "cuda/gemm.h"
#include "cuda/linear.h"

namespace py = pybind11;

namespace fastlayers::bindings {

void bind_cuda_gemm(py::module_& m) {
  const auto nogil = py::call_guard<py::gil_scoped_release>();
  // Same argument list as _cpu.sgemm plus the stream.
  m.def("sgemm", [](bool ta, bool tb, index_t M, index_t N, index_t K, float alpha, Address a,
                    index_t lda, Address b, index_t ldb, float beta, Address c,
                    index_t ldc, Address s) {
    cuda::sgemm(ta, tb, M, N, K, alpha, in(a), lda, in(b), ldb, beta, out(c), ldc, stream_of(s));
  }, nogil);
  // One forced kernel path (0 auto, 1 tile128, 2 tile64, 3 tile16, 4 reference): tests and the
  // benchmark's cross-checks. Not part of the op API.
  m.def("sgemm_path", [](int path, bool ta, bool tb, index_t M, index_t N, index_t K, float alpha,
                         Address a, index_t lda, Address b, index_t ldb, float beta,
                         Address c, index_t ldc, Address s) {
    if (path < 0 || path > 4)
      throw py::value_error("sgemm_path: path must be 0..4 (auto, tile128, tile64, tile16, "
                            "reference), got " + std::to_string(path));
    cuda::sgemm_path(static_cast<cuda::SgemmPath>(path), ta, tb, M, N, K, alpha, in(a), lda, in(b),
                     ldb, beta, out(c), ldc, stream_of(s));
  }, nogil);
  // Dense-layer bias kernels (the CPU binds them in cpu_gemm.cpp too).
  m.def("bias_add_rows", [](Address y, Address b, index_t rows, index_t cols,
                            Address s) {
    cuda::bias_add_rows(out(y), in(b), rows, cols, stream_of(s));
  }, nogil);
  m.def("bias_grad_rows", [](Address g, Address gb, index_t rows, index_t cols,
                             Address s) {
    cuda::bias_grad_rows(in(g), out(gb), rows, cols, stream_of(s));
  }, nogil);
}

}  // namespace fastlayers::bindings
