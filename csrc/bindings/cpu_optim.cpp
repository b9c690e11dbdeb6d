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
}

}  // namespace fastlayers::bindings
