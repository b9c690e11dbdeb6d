#include <pybind11/pybind11.h>

#include "bindings/cuda_bindings.h"
#include "bindings/pointers.h"
#include "cuda/batch_norm.h"

namespace py = pybind11;

namespace fastlayers::bindings {

// Same names and argument lists as csrc/bindings/cpu_norm.cpp, plus the stream.
void bind_cuda_norm(py::module_& m) {
  using P = Address;
  const auto nogil = py::call_guard<py::gil_scoped_release>();
  m.def("batch_norm_forward", [](P x, P y, P weight, P bias, P running_mean, P running_var, index_t N,
                                 index_t C, index_t S, bool training, float momentum, float eps, P s) {
    cuda::batch_norm_forward(in(x), out(y), in(weight), in(bias), out(running_mean), out(running_var),
                             N, C, S, training, momentum, eps, stream_of(s));
  }, nogil);
  m.def("batch_norm_backward", [](P grad_out, P x, P weight, P mean, P var_or_invstd, int stats,
                                  P grad_x, P grad_weight, P grad_bias, index_t N, index_t C, index_t S,
                                  float eps, P s) {
    cuda::batch_norm_backward(in(grad_out), in(x), in(weight), in(mean), in(var_or_invstd), stats,
                              out(grad_x), out(grad_weight), out(grad_bias), N, C, S, eps, stream_of(s));
  }, nogil);
  m.def("fold_batch_norm", [](P w, P b, P running_mean, P running_var, P weight, P bias, P w_out,
                              P b_out, index_t K, index_t per_k, float eps, P s) {
    cuda::fold_batch_norm(in(w), in(b), in(running_mean), in(running_var), in(weight), in(bias),
                          out(w_out), out(b_out), K, per_k, eps, stream_of(s));
  }, nogil);
}

}  // namespace fastlayers::bindings
