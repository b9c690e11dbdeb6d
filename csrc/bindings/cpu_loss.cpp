#include <pybind11/pybind11.h>

#include "bindings/cpu_bindings.h"
#include "bindings/pointers.h"
#include "cpu/loss.h"

namespace py = pybind11;

namespace fastlayers::bindings {

void bind_cpu_loss(py::module_& m) {
  const auto nogil = py::call_guard<py::gil_scoped_release>();
  using P = Address;

  // Elementwise losses: (a, b, out, n, scale); out is the 1-element loss or the gradient.
#define FL_BIND_ELEMENTWISE(name)                                          \
  m.def(#name, [](P a, P b, P o, index_t n, double scale) {                \
    cpu::name(in(a), in(b), out(o), n, scale);                             \
  }, nogil)
  FL_BIND_ELEMENTWISE(mse_loss_forward);
  FL_BIND_ELEMENTWISE(mse_loss_backward);
  FL_BIND_ELEMENTWISE(bce_with_logits_forward);
  FL_BIND_ELEMENTWISE(bce_with_logits_backward);
  FL_BIND_ELEMENTWISE(logistic_loss_forward);
  FL_BIND_ELEMENTWISE(logistic_loss_backward);
#undef FL_BIND_ELEMENTWISE

  m.def("hinge_loss_forward", [](P s, P y, P o, index_t n, double margin, double scale) {
    cpu::hinge_loss_forward(in(s), in(y), out(o), n, margin, scale);
  }, nogil);
  m.def("hinge_loss_backward", [](P s, P y, P o, index_t n, double margin, double scale) {
    cpu::hinge_loss_backward(in(s), in(y), out(o), n, margin, scale);
  }, nogil);

  // Softmax cross-entropy: logits (n, c); labels int64 (n,) or float probabilities (n, c).
  m.def("softmax_cross_entropy_forward", [](P z, P y, P o, index_t n, index_t c, double scale) {
    cpu::softmax_cross_entropy_forward(in(z), in_i64(y), out(o), n, c, scale);
  }, nogil);
  m.def("softmax_cross_entropy_backward", [](P z, P y, P o, index_t n, index_t c, double scale) {
    cpu::softmax_cross_entropy_backward(in(z), in_i64(y), out(o), n, c, scale);
  }, nogil);
  m.def("softmax_cross_entropy_prob_forward", [](P z, P t, P o, index_t n, index_t c, double scale) {
    cpu::softmax_cross_entropy_prob_forward(in(z), in(t), out(o), n, c, scale);
  }, nogil);
  m.def("softmax_cross_entropy_prob_backward", [](P z, P t, P o, index_t n, index_t c, double scale) {
    cpu::softmax_cross_entropy_prob_backward(in(z), in(t), out(o), n, c, scale);
  }, nogil);
}

}  // namespace fastlayers::bindings
