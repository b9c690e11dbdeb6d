#include <pybind11/pybind11.h>

#include <string>

#include "bindings/cuda_bindings.h"
#include "bindings/pointers.h"
#include "cuda/gemm.h"
#include "cuda/gemm_plan.h"
#include "cuda/linear.h"

namespace py = pybind11;

namespace fastlayers::bindings {

void bind_cuda_gemm(py::module_& m) {
  const auto nogil = py::call_guard<py::gil_scoped_release>();
  // _cpu.sgemm's arguments, then the split-K workspace (ws, ws_floats: 0, 0 for none; the op layer
  // takes sgemm_workspace_floats from CuPy's pool) and the stream.
  m.def("sgemm", [](bool ta, bool tb, index_t M, index_t N, index_t K, float alpha, Address a,
                    index_t lda, Address b, index_t ldb, float beta, Address c,
                    index_t ldc, Address ws, index_t ws_floats, Address s) {
    cuda::sgemm(ta, tb, M, N, K, alpha, in(a), lda, in(b), ldb, beta, out(c), ldc, out(ws), ws_floats,
                stream_of(s));
  }, nogil);
  m.def("sgemm_workspace_floats", [](bool ta, bool tb, index_t M, index_t N, index_t K, Address) {
    return cuda::sgemm_workspace_floats(ta, tb, M, N, K);
  });
  // One forced kernel path (gemm_plan.h: 0 auto, 1 tile128, 2 tile64, 3 tile32, 4 reference,
  // 5 tile16x64, 6 tile16x8, 7 narrow) and K split count (0: the plan's): tests and the
  // benchmark's cross-checks. Not part of the op API.
  m.def("sgemm_path", [](int path, index_t splits, bool ta, bool tb, index_t M, index_t N, index_t K, float alpha,
                         Address a, index_t lda, Address b, index_t ldb, float beta, Address c, index_t ldc,
                         Address ws, index_t ws_floats, Address s) {
    if (path < 0 || path >= cuda::gemm_plan::kPathCount)
      throw py::value_error("sgemm_path: path must be 0..7 (auto, tile128, tile64, tile32, reference, tile16x64, "
                            "tile16x8, narrow), got " + std::to_string(path));
    if (splits < 0 || splits > cuda::gemm_plan::kMaxSplits)
      throw py::value_error("sgemm_path: splits must be in [0, 32], got " + std::to_string(splits));
    py::gil_scoped_release release;
    cuda::sgemm_path(path, splits, ta, tb, M, N, K, alpha, in(a), lda, in(b), ldb, beta, out(c), ldc, out(ws),
                     ws_floats, stream_of(s));
  });
  // The plan sgemm would run on a device with `sms` multiprocessors (sm_90 limits otherwise):
  // host-only, for benchmarks/cuda_plan.py. path / splits as sgemm_path.
  m.def("sgemm_plan", [](index_t M, index_t N, index_t K, int sms, int path, index_t splits) {
    if (path < 0 || path >= cuda::gemm_plan::kPathCount) throw py::value_error("sgemm_plan: unknown path");
    if (M <= 0 || N <= 0 || K <= 0 || sms <= 0) throw py::value_error("sgemm_plan: M, N, K and sms must be positive");
    cuda::DeviceProfile dev;
    dev.sms = sms;
    const auto p = cuda::gemm_plan::choose(path, M, N, K, splits, dev);
    py::dict d;
    d["path"] = cuda::gemm_plan::path_name(p.path);
    d["kernel"] = cuda::gemm_plan::describe(p);
    d["transposed"] = p.transposed;
    d["splits"] = p.splits;
    d["k_chunk"] = p.k_chunk;
    d["tiles"] = p.tiles;
    d["blocks"] = p.blocks;
    d["threads"] = p.threads;
    d["blocks_per_sm"] = p.blocks_per_sm;
    d["waves"] = p.waves;
    d["useful_flops"] = p.useful_flops;
    d["issued_flops"] = p.issued_flops;
    d["efficiency"] = p.efficiency();
    d["workspace_floats"] = p.workspace_floats();
    d["model_seconds"] = p.model_seconds;
    const int tile = cuda::gemm_plan::warp_tile_of(p.path);
    if (tile >= 0) {
      const auto& w = cuda::gemm_plan::kWarpTiles[tile];
      d["tile"] = py::make_tuple(w.bm, w.bn, w.bk);
      d["min_blocks"] = w.min_blocks;
      d["smem_bytes"] = w.smem_bytes();
    } else {
      d["tile"] = py::make_tuple(cuda::gemm_plan::kNarrowThreads / p.tpr, p.N, cuda::gemm_plan::kNarrowBK);
      d["min_blocks"] = cuda::gemm_plan::kNarrowMinBlocks;
      d["smem_bytes"] = 0;
      d["tpr"] = p.tpr;
    }
    return d;
  }, py::arg("M"), py::arg("N"), py::arg("K"), py::arg("sms") = 132, py::arg("path") = 0, py::arg("splits") = 0);
  // Dense-layer bias kernels (the CPU binds them in cpu_gemm.cpp too). bias_grad_rows takes a
  // workspace like sgemm (bias_grad_rows_workspace_floats: 0 up to 4096 rows).
  m.def("bias_add_rows", [](Address y, Address b, index_t rows, index_t cols, Address s) {
    cuda::bias_add_rows(out(y), in(b), rows, cols, stream_of(s));
  }, nogil);
  m.def("bias_grad_rows_workspace_floats", [](index_t rows, index_t cols, Address) {
    return cuda::bias_grad_rows_workspace_floats(rows, cols);
  });
  m.def("bias_grad_rows", [](Address g, Address gb, index_t rows, index_t cols, Address ws, index_t ws_floats,
                             Address s) {
    cuda::bias_grad_rows(in(g), out(gb), rows, cols, out(ws), ws_floats, stream_of(s));
  }, nogil);
}

}  // namespace fastlayers::bindings
