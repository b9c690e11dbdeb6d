#include <pybind11/pybind11.h>

#include "bindings/cuda_bindings.h"
#include "bindings/pointers.h"
#include "cuda/optim.h"

namespace py = pybind11;

namespace fastlayers::bindings {

// Same names and argument lists as csrc/bindings/cpu_optim.cpp, plus the stream.
void bind_cuda_optim(py::module_& m) {
  using P = Address;
  const auto nogil = py::call_guard<py::gil_scoped_release>();
  // velocity == 0 (a null address) when momentum is 0.
  m.def("sgd_update", [](P param, P grad, P velocity, index_t n, float lr, float momentum,
                         float weight_decay, float l1, bool nesterov, P s) {
    cuda::sgd_update(out(param), in(grad), out(velocity), n, lr, momentum,
                     weight_decay, l1, nesterov, stream_of(s));
  }, nogil);
  m.def("adam_update", [](P param, P grad, P mom, P vel, index_t n, float lr, float beta1,
                          float beta2, float eps, float weight_decay, index_t step, P s) {
    cuda::adam_update(out(param), in(grad), out(mom), out(vel), n, lr, beta1, beta2, eps,
                      weight_decay, step, stream_of(s));
  }, nogil);
  m.def("rmsprop_update", [](P param, P grad, P square_avg, P momentum_buffer, P grad_avg, index_t n,
                             float lr, float alpha, float eps, float weight_decay, float momentum,
                             bool centered, P s) {
    cuda::rmsprop_update(out(param), in(grad), out(square_avg), out(momentum_buffer), out(grad_avg), n, lr,
                         alpha, eps, weight_decay, momentum, centered, stream_of(s));
  }, nogil);
  m.def("adagrad_update", [](P param, P grad, P state_sum, index_t n, float lr, float lr_decay,
                             float weight_decay, float eps, index_t step, P s) {
    cuda::adagrad_update(out(param), in(grad), out(state_sum), n, lr, lr_decay, weight_decay, eps, step,
                         stream_of(s));
  }, nogil);
}

}  // namespace fastlayers::bindings
