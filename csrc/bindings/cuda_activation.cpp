#include <pybind11/pybind11.h>

#include <cstdint>
#include <utility>

#include "bindings/cuda_bindings.h"
#include "bindings/pointers.h"
#include "cuda/activation.h"
#include "cuda/softmax.h"

namespace py = pybind11;

namespace fastlayers::bindings {

namespace {
using P = Address;
using Unary = void (*)(const float*, float*, index_t, cudaStream_t);
using Binary = void (*)(const float*, const float*, float*, index_t, cudaStream_t);
using SoftmaxFwd = void (*)(const float*, float*, index_t, index_t, index_t, cudaStream_t);
using SoftmaxBwd = void (*)(const float*, const float*, float*, index_t, index_t, index_t, cudaStream_t);
}  // namespace

// Same names and argument lists as csrc/bindings/cpu_activation.cpp, plus the stream.
void bind_cuda_activation(py::module_& m) {
  const auto nogil = py::call_guard<py::gil_scoped_release>();
  for (auto [name, fn] : {std::pair<const char*, Unary>{"relu_forward", cuda::relu_forward},
                          {"sigmoid_forward", cuda::sigmoid_forward},
                          {"tanh_forward", cuda::tanh_forward},
                          {"sign_forward", cuda::sign_forward}})
    m.def(name, [fn = fn](P x, P y, index_t n, P s) { fn(in(x), out(y), n, stream_of(s)); }, nogil);
  for (auto [name, fn] : {std::pair<const char*, Binary>{"relu_backward", cuda::relu_backward},
                          {"sigmoid_backward", cuda::sigmoid_backward},
                          {"tanh_backward", cuda::tanh_backward}})
    m.def(name, [fn = fn](P g, P x, P gi, index_t n, P s) {
      fn(in(g), in(x), out(gi), n, stream_of(s));
    }, nogil);
  m.def("leaky_relu_forward", [](P x, P y, index_t n, float slope, P s) {
    cuda::leaky_relu_forward(in(x), out(y), n, slope, stream_of(s));
  }, nogil);
  m.def("leaky_relu_backward", [](P g, P x, P gi, index_t n, float slope, P s) {
    cuda::leaky_relu_backward(in(g), in(x), out(gi), n, slope, stream_of(s));
  }, nogil);
  m.def("heaviside_forward", [](P x, P y, index_t n, float value_at_zero, P s) {
    cuda::heaviside_forward(in(x), out(y), n, value_at_zero, stream_of(s));
  }, nogil);

  for (auto [name, fn] : {std::pair<const char*, SoftmaxFwd>{"softmax_forward", cuda::softmax_forward},
                          {"log_softmax_forward", cuda::log_softmax_forward}})
    m.def(name, [fn = fn](P x, P y, index_t outer, index_t dim, index_t inner, P s) {
      fn(in(x), out(y), outer, dim, inner, stream_of(s));
    }, nogil);
  for (auto [name, fn] : {std::pair<const char*, SoftmaxBwd>{"softmax_backward", cuda::softmax_backward},
                          {"log_softmax_backward", cuda::log_softmax_backward}})
    m.def(name, [fn = fn](P g, P y, P gi, index_t outer, index_t dim, index_t inner, P s) {
      fn(in(g), in(y), out(gi), outer, dim, inner, stream_of(s));
    }, nogil);
}

}  // namespace fastlayers::bindings
