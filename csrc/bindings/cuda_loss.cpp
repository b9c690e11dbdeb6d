#include <pybind11/pybind11.h>

#include "bindings/cuda_bindings.h"
#include "bindings/pointers.h"
#include "common/loss_terms.h"
#include "cuda/loss.h"

namespace py = pybind11;

namespace fastlayers::bindings {

namespace {
inline double* ws(Address a) { return reinterpret_cast<double*>(a.value); }
inline std::int64_t* status_of(Address a) { return reinterpret_cast<std::int64_t*>(a.value); }
}  // namespace

// Same names and argument lists as csrc/bindings/cpu_loss.cpp, plus the stream.
void bind_cuda_loss(py::module_& m) {
  const auto nogil = py::call_guard<py::gil_scoped_release>();
  using P = Address;

  m.attr("loss_workspace_doubles") = loss::kWorkspaceDoubles;

  // Elementwise losses: forward (a, b, out, n, param, reduction, workspace, status, stream),
  // backward (a, b, grad_out, grad, n, param, reduction, status, stream).
#define FL_BIND_ELEMENTWISE(name)                                                                 \
  m.def(#name "_forward", [](P a, P b, P o, index_t n, double param, int reduction, P w, P st,      \
                             P s) {                                                                \
    cuda::name##_forward(in(a), in(b), out(o), n, param, reduction, ws(w), status_of(st),          \
                         stream_of(s));                                                            \
  }, nogil);                                                                                       \
  m.def(#name "_backward", [](P a, P b, P g, P o, index_t n, double param, int reduction, P st,     \
                              P s) {                                                               \
    cuda::name##_backward(in(a), in(b), in(g), out(o), n, param, reduction, status_of(st),         \
                          stream_of(s));                                                           \
  }, nogil)
  FL_BIND_ELEMENTWISE(mse_loss);
  FL_BIND_ELEMENTWISE(l1_loss);
  FL_BIND_ELEMENTWISE(smooth_l1_loss);
  FL_BIND_ELEMENTWISE(huber_loss);
  FL_BIND_ELEMENTWISE(soft_margin_loss);
  FL_BIND_ELEMENTWISE(hinge_embedding_loss);
  FL_BIND_ELEMENTWISE(logistic_loss);
  FL_BIND_ELEMENTWISE(hinge_loss);
#undef FL_BIND_ELEMENTWISE

  m.def("bce_with_logits_forward", [](P z, P t, P w, P pw, P o, index_t n, int reduction, P wsp, P s) {
    cuda::bce_with_logits_forward(in(z), in(t), in(w), in(pw), out(o), n, reduction, ws(wsp), stream_of(s));
  }, nogil);
  m.def("bce_with_logits_backward", [](P z, P t, P w, P pw, P g, P o, index_t n, int reduction, P s) {
    cuda::bce_with_logits_backward(in(z), in(t), in(w), in(pw), in(g), out(o), n, reduction, stream_of(s));
  }, nogil);

  // Cross-entropy over (n, c, d) logits.
  m.def("softmax_cross_entropy_forward",
        [](P z, P y, P w, P o, index_t n, index_t c, index_t d, std::int64_t ignore, double eps,
           int reduction, P wsp, P st, P s) {
          cuda::softmax_cross_entropy_forward(in(z), in_i64(y), in(w), out(o), n, c, d, ignore, eps,
                                             reduction, ws(wsp), status_of(st), stream_of(s));
        }, nogil);
  m.def("softmax_cross_entropy_backward",
        [](P z, P y, P w, P g, P o, index_t n, index_t c, index_t d, std::int64_t ignore,
           double eps, int reduction, P wsp, P st, P s) {
          cuda::softmax_cross_entropy_backward(in(z), in_i64(y), in(w), in(g), out(o), n, c, d,
                                              ignore, eps, reduction, ws(wsp), status_of(st), stream_of(s));
        }, nogil);
  m.def("softmax_cross_entropy_prob_forward",
        [](P z, P t, P w, P o, index_t n, index_t c, index_t d, double eps, int reduction, P wsp, P s) {
          cuda::softmax_cross_entropy_prob_forward(in(z), in(t), in(w), out(o), n, c, d, eps,
                                                  reduction, ws(wsp), stream_of(s));
        }, nogil);
  m.def("softmax_cross_entropy_prob_backward",
        [](P z, P t, P w, P g, P o, index_t n, index_t c, index_t d, double eps, int reduction, P s) {
          cuda::softmax_cross_entropy_prob_backward(in(z), in(t), in(w), in(g), out(o), n, c, d, eps,
                                                   reduction, stream_of(s));
        }, nogil);
  m.def("nll_loss_forward",
        [](P x, P y, P w, P o, index_t n, index_t c, index_t d, std::int64_t ignore, int reduction,
           P wsp, P st, P s) {
          cuda::nll_loss_forward(in(x), in_i64(y), in(w), out(o), n, c, d, ignore, reduction, ws(wsp),
                                 status_of(st), stream_of(s));
        }, nogil);
  m.def("nll_loss_backward",
        [](P y, P w, P g, P o, index_t n, index_t c, index_t d, std::int64_t ignore, int reduction,
           P wsp, P st, P s) {
          cuda::nll_loss_backward(in_i64(y), in(w), in(g), out(o), n, c, d, ignore, reduction, ws(wsp),
                                  status_of(st), stream_of(s));
        }, nogil);
}

}  // namespace fastlayers::bindings
