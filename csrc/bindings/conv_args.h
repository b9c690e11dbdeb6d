// The bindings' check of a convolution's geometry (CPU and CUDA modules): the Python op has
// checked it already (python/fastlayers/ops/conv.py); this refuses, with a ValueError, any tuple
// that reaches the kernels by another route, before a pointer is touched.
#pragma once
#include <pybind11/pybind11.h>

#include <string>

#include "common/conv_shape.h"

namespace fastlayers::bindings {

inline Conv2dShape checked_conv2d_shape(const Conv2dShapeArgs& args) {
  const Conv2dShape s = to_conv2d_shape(args);
  if (const char* why = conv2d_shape_error(s)) throw pybind11::value_error(std::string("conv2d: invalid geometry: ") + why);
  return s;
}

}  // namespace fastlayers::bindings
