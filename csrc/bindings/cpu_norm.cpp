#include <pybind11/pybind11.h>

#include "bindings/cpu_bindings.h"
#include "bindings/pointers.h"
#include "cpu/batch_norm.h"

namespace py = pybind11;

namespace fastlayers::bindings {

// Optional buffers (weight, bias, running statistics, affine gradients) are 0 when absent.
void bind_cpu_norm(py::module_& m) {
  const auto nogil = py::call_guard<py::gil_scoped_release>();
  using P = Address;
  m.def("batch_norm_forward", [](P x, P y, P weight, P bias, P running_mean, P running_var, index_t N,
                                 index_t C, index_t S, bool training, float momentum, float eps) {
    cpu::batch_norm_forward(in(x), out(y), in(weight), in(bias), out(running_mean), out(running_var),
                            N, C, S, training, momentum, eps);
  }, nogil);
  m.def("batch_norm_backward", [](P grad_out, P x, P weight, P mean, P var_or_invstd, int stats,
                                  P grad_x, P grad_weight, P grad_bias, index_t N, index_t C, index_t S,
                                  float eps) {
    cpu::batch_norm_backward(in(grad_out), in(x), in(weight), in(mean), in(var_or_invstd), stats,
                             out(grad_x), out(grad_weight), out(grad_bias), N, C, S, eps);
  }, nogil);
  m.def("fold_batch_norm", [](P w, P b, P running_mean, P running_var, P weight, P bias, P w_out,
                              P b_out, index_t K, index_t per_k, float eps) {
    cpu::fold_batch_norm(in(w), in(b), in(running_mean), in(running_var), in(weight), in(bias),
                         out(w_out), out(b_out), K, per_k, eps);
  }, nogil);
}

}  // namespace fastlayers::bindings
