#include <pybind11/pybind11.h>

#include "bindings/cuda_bindings.h"
#include "bindings/pointers.h"
#include "cuda/loss.h"

namespace py = pybind11;

namespace fastlayers::bindings {

// Same names and argument lists as csrc/bindings/cpu_loss.cpp, plus the stream.
void bind_cuda_loss(py::module_& m) {
  using P = Address;
  const auto nogil = py::call_guard<py::gil_scoped_release>();
#define FL_BIND_ELEMENTWISE(name)                                  \
  m.def(#name, [](P a, P b, P o, index_t n, double scale, P s) {   \
    cuda::name(in(a), in(b), out(o), n, scale, stream_of(s));      \
  }, nogil)
  FL_BIND_ELEMENTWISE(mse_loss_forward);
  FL_BIND_ELEMENTWISE(mse_loss_backward);
  FL_BIND_ELEMENTWISE(bce_with_logits_forward);
  FL_BIND_ELEMENTWISE(bce_with_logits_backward);
  FL_BIND_ELEMENTWISE(logistic_loss_forward);
  FL_BIND_ELEMENTWISE(logistic_loss_backward);
#undef FL_BIND_ELEMENTWISE
  m.def("hinge_loss_forward", [](P a, P y, P o, index_t n, double margin, double scale, P s) {
    cuda::hinge_loss_forward(in(a), in(y), out(o), n, margin, scale, stream_of(s));
  }, nogil);
  m.def("hinge_loss_backward", [](P a, P y, P o, index_t n, double margin, double scale, P s) {
    cuda::hinge_loss_backward(in(a), in(y), out(o), n, margin, scale, stream_of(s));
  }, nogil);
  m.def("softmax_cross_entropy_forward", [](P z, P y, P o, index_t n, index_t c, double scale, P s) {
    cuda::softmax_cross_entropy_forward(in(z), in_i64(y), out(o), n, c, scale, stream_of(s));
  }, nogil);
  m.def("softmax_cross_entropy_backward", [](P z, P y, P o, index_t n, index_t c, double scale, P s) {
    cuda::softmax_cross_entropy_backward(in(z), in_i64(y), out(o), n, c, scale, stream_of(s));
  }, nogil);
  m.def("softmax_cross_entropy_prob_forward", [](P z, P t, P o, index_t n, index_t c, double scale,
                                                 P s) {
    cuda::softmax_cross_entropy_prob_forward(in(z), in(t), out(o), n, c, scale, stream_of(s));
  }, nogil);
  m.def("softmax_cross_entropy_prob_backward", [](P z, P t, P o, index_t n, index_t c, double scale,
                                                  P s) {
    cuda::softmax_cross_entropy_prob_backward(in(z), in(t), out(o), n, c, scale, stream_of(s));
  }, nogil);
}

}  // namespace fastlayers::bindings
