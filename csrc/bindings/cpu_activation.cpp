#include <pybind11/pybind11.h>

#include "bindings/cpu_bindings.h"
#include "bindings/pointers.h"
#include "cpu/activation.h"
#include "cpu/softmax.h"

namespace py = pybind11;

namespace fastlayers::bindings {

namespace {

using Unary = void (*)(const float*, float*, index_t);
using UnaryBackward = void (*)(const float*, const float*, float*, index_t);
using Axis = void (*)(const float*, float*, index_t, index_t, index_t);
using AxisBackward = void (*)(const float*, const float*, float*, index_t, index_t, index_t);

template <typename Fn>
void def_unary(py::module_& m, const char* name, Fn fn) {
  m.def(name, [fn](Address x, Address y, index_t n) { fn(in(x), out(y), n); },
        py::call_guard<py::gil_scoped_release>());
}

template <typename Fn>
void def_unary_backward(py::module_& m, const char* name, Fn fn) {
  m.def(name, [fn](Address g, Address x, Address gi, index_t n) {
    fn(in(g), in(x), out(gi), n);
  }, py::call_guard<py::gil_scoped_release>());
}

}  // namespace

void bind_cpu_activation(py::module_& m) {
  const auto nogil = py::call_guard<py::gil_scoped_release>();
  def_unary(m, "relu_forward", Unary{cpu::relu_forward});
  def_unary_backward(m, "relu_backward", UnaryBackward{cpu::relu_backward});
  def_unary(m, "sigmoid_forward", Unary{cpu::sigmoid_forward});
  def_unary_backward(m, "sigmoid_backward", UnaryBackward{cpu::sigmoid_backward});
  def_unary(m, "tanh_forward", Unary{cpu::tanh_forward});
  def_unary_backward(m, "tanh_backward", UnaryBackward{cpu::tanh_backward});
  def_unary(m, "sign_forward", Unary{cpu::sign_forward});

  m.def("leaky_relu_forward", [](Address x, Address y, index_t n, float slope) {
    cpu::leaky_relu_forward(in(x), out(y), n, slope);
  }, nogil);
  m.def("leaky_relu_backward", [](Address g, Address x, Address gi, index_t n,
                                  float slope) {
    cpu::leaky_relu_backward(in(g), in(x), out(gi), n, slope);
  }, nogil);
  m.def("heaviside_forward", [](Address x, Address y, index_t n, float value_at_zero) {
    cpu::heaviside_forward(in(x), out(y), n, value_at_zero);
  }, nogil);

  // Softmax family: the axis is described as (outer, dim, inner) of a contiguous array.
  const std::pair<const char*, Axis> forwards[] = {{"softmax_forward", cpu::softmax_forward},
                                                   {"log_softmax_forward", cpu::log_softmax_forward}};
  for (const auto& [name, fn] : forwards) {
    m.def(name, [fn = fn](Address x, Address y, index_t outer, index_t dim, index_t inner) {
      fn(in(x), out(y), outer, dim, inner);
    }, nogil);
  }
  const std::pair<const char*, AxisBackward> backwards[] = {
      {"softmax_backward", cpu::softmax_backward}, {"log_softmax_backward", cpu::log_softmax_backward}};
  for (const auto& [name, fn] : backwards) {
    m.def(name, [fn = fn](Address g, Address y, Address gi, index_t outer, index_t dim,
                          index_t inner) { fn(in(g), in(y), out(gi), outer, dim, inner); }, nogil);
  }
}

}  // namespace fastlayers::bindings
