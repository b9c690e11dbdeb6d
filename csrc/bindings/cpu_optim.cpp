#include <pybind11/pybind11.h>

#include "bindings/cpu_bindings.h"
#include "bindings/pointers.h"
#include "cpu/optim.h"

namespace py = pybind11;

namespace fastlayers::bindings {

void bind_cpu_optim(py::module_& m) {
  const auto nogil = py::call_guard<py::gil_scoped_release>();
  using P = Address;
  // velocity == 0 (a null address) when momentum is 0.
  m.def("sgd_update", [](P param, P grad, P velocity, index_t n, float lr, float momentum,
                         float weight_decay, float l1, bool nesterov) {
    cpu::sgd_update(out(param), in(grad), out(velocity), n, lr, momentum,
                    weight_decay, l1, nesterov);
  }, nogil);
  m.def("adam_update", [](P param, P grad, P mom, P vel, index_t n, float lr, float beta1,
                          float beta2, float eps, float weight_decay, index_t step) {
    cpu::adam_update(out(param), in(grad), out(mom), out(vel), n, lr, beta1, beta2, eps,
                     weight_decay, step);
  }, nogil);
  // momentum_buffer / grad_avg == 0 when momentum is 0 / centered is false.
  m.def("rmsprop_update", [](P param, P grad, P square_avg, P momentum_buffer, P grad_avg, index_t n,
                             float lr, float alpha, float eps, float weight_decay, float momentum,
                             bool centered) {
    cpu::rmsprop_update(out(param), in(grad), out(square_avg), out(momentum_buffer), out(grad_avg), n, lr,
                        alpha, eps, weight_decay, momentum, centered);
  }, nogil);
  m.def("adagrad_update", [](P param, P grad, P state_sum, index_t n, float lr, float lr_decay,
                             float weight_decay, float eps, index_t step) {
    cpu::adagrad_update(out(param), in(grad), out(state_sum), n, lr, lr_decay, weight_decay, eps, step);
  }, nogil);
}

}  // namespace fastlayers::bindings
