// The inference plan (csrc/cpu/plan/plan.h) as a Python class, built by python/fastlayers/nn/plan.py.
// Every add_* call is checked by Plan::add_step (value ids and sizes) and raises ValueError; run()
// checks dtype, contiguity and sizes of x and y before releasing the GIL for the whole model.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <stdexcept>
#include <string>
#include <utility>

#include "bindings/conv_args.h"
#include "common/checked.h"
#include "bindings/cpu_bindings.h"
#include "cpu/plan/plan.h"

namespace py = pybind11;

namespace fastlayers::bindings {

namespace {

using cpu::plan::Act;
using cpu::plan::Plan;
using cpu::plan::PoolKind;
using cpu::plan::Step;
using cpu::plan::StepKind;
using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;

std::vector<float> copy_of(const py::object& a, const char* name) {
  if (a.is_none()) return {};
  FloatArray arr = FloatArray::ensure(a);
  if (!arr) throw py::type_error(std::string(name) + " must be a float32 array");
  return std::vector<float>(arr.data(), arr.data() + arr.size());
}

Act to_act(int a) {
  if (a < 0 || a > 1) throw py::value_error("act must be 0 (none) or 1 (relu), got " + std::to_string(a));
  return static_cast<Act>(a);
}

PoolKind to_pool(int p) {
  if (p < 0 || p > 2) throw py::value_error("pool must be 0 (none), 1 (max) or 2 (avg), got " + std::to_string(p));
  return static_cast<PoolKind>(p);
}

int add(Plan& plan, Step s) {
  try {
    return plan.add_step(std::move(s));
  } catch (const std::invalid_argument& e) {
    throw py::value_error(e.what());
  }
}

void check_buffer(const py::array& a, const char* name, index_t floats, bool writable) {
  if (!py::isinstance<py::array_t<float>>(a) || a.dtype().kind() != 'f' || a.itemsize() != 4)
    throw py::type_error(std::string("plan.run: ") + name + " must be a float32 array");
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(std::string("plan.run: ") + name + " must be C-contiguous");
  if (writable && !a.writeable()) throw py::value_error(std::string("plan.run: ") + name + " must be writable");
  if (a.size() != floats)
    throw py::value_error(std::string("plan.run: ") + name + " must hold " + std::to_string(floats) + " floats, got " +
                          std::to_string(a.size()));
}

// The floats of `images` images (0: the plan's batch) of the plan's input and output; ValueError
// naming `images` when that many cannot be held (the products overflow 64 bits).
std::pair<index_t, index_t> image_floats(const Plan& p, index_t images, const char* what) {
  if (images < 0) throw py::value_error(std::string(what) + ": images must be >= 0, got " + std::to_string(images));
  const index_t n = images > 0 ? images : p.batch();
  index_t in = 0, out = 0;
  if (!mul_fits(p.input_floats() / p.batch(), n, in) || !mul_fits(p.output_floats() / p.batch(), n, out))
    throw py::value_error(std::string(what) + ": images = " + std::to_string(images) + " is too many: x or y would " +
                          "hold more than 2^63 floats");
  return {in, out};
}

// run's and run_profiled's arguments: x and y of `images` images (0: the plan's batch), not
// overlapping (y is written chunk by chunk while later chunks of x are still to be read), and
// threads >= 0.
void check_run(const Plan& p, const py::array& x, const py::array& y, int threads, index_t images) {
  if (threads < 0) throw py::value_error("plan.run: threads must be >= 0, got " + std::to_string(threads));
  const auto [in, out] = image_floats(p, images, "plan.run");
  check_buffer(x, "x", in, false);
  check_buffer(y, "y", out, true);
  const auto* x0 = static_cast<const char*>(x.data());
  const auto* y0 = static_cast<const char*>(y.data());
  if (x0 < y0 + y.nbytes() && y0 < x0 + x.nbytes()) throw py::value_error("plan.run: x and y must not overlap");
}

}  // namespace

void bind_cpu_plan(py::module_& m) {
  py::class_<Plan>(m, "InferencePlan")
      .def(py::init<>())
      .def("add_value", [](Plan& p, index_t floats, index_t offset) {
        try {
          return p.add_value(floats, offset);
        } catch (const std::invalid_argument& e) {
          throw py::value_error(e.what());
        }
      })
      .def("add_conv", [](Plan& p, int in, int out, int tmp, const Conv2dShapeArgs& shape, const py::object& w,
                          const py::object& b, int act, int residual, int pool, bool act_first) {
        Step s;
        s.kind = StepKind::conv;
        s.in = in, s.out = out, s.tmp = tmp;
        s.conv = checked_conv2d_shape(shape);
        s.w = copy_of(w, "w");
        s.b = copy_of(b, "b");
        s.epi = {to_act(act), residual, to_pool(pool), act_first};
        return add(p, std::move(s));
      })
      .def("add_linear", [](Plan& p, int in, int out, index_t M, index_t N, index_t K, const py::object& w,
                            const py::object& b, int act) {
        Step s;
        s.kind = StepKind::linear;
        s.in = in, s.out = out, s.M = M, s.N = N, s.K = K;
        s.w = copy_of(w, "w");
        s.b = copy_of(b, "b");
        s.epi.act = to_act(act);
        return add(p, std::move(s));
      })
      .def("add_pool", [](Plan& p, int in, int out, int kind, std::array<index_t, 9> g, bool count_include_pad, int act) {
        Step s;
        s.kind = StepKind::pool;
        s.in = in, s.out = out;
        // (planes, h, w, kh, kw, sh, sw, ph, pw): dilation 1, floor mode (add_step checks the rest)
        const index_t oh = g[5] > 0 ? (g[1] + 2 * g[7] - g[3]) / g[5] + 1 : 0, ow = g[6] > 0 ? (g[2] + 2 * g[8] - g[4]) / g[6] + 1 : 0;
        s.pool = {g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8], 1, 1, oh, ow};
        s.pool_kind = to_pool(kind);
        s.count_include_pad = count_include_pad;
        s.epi.act = to_act(act);
        return add(p, std::move(s));
      })
      .def("add_global_avg_pool", [](Plan& p, int in, int out, index_t planes, index_t hw, int act) {
        Step s;
        s.kind = StepKind::global_avg_pool;
        s.in = in, s.out = out, s.C = planes, s.HW = hw;
        s.epi.act = to_act(act);
        return add(p, std::move(s));
      })
      .def("add_add", [](Plan& p, int in, int in2, int out, index_t n, int act) {
        Step s;
        s.kind = StepKind::add;
        s.in = in, s.in2 = in2, s.out = out, s.M = n;
        s.epi.act = to_act(act);
        return add(p, std::move(s));
      })
      .def("add_act", [](Plan& p, int in, int out, index_t n, int act) {
        Step s;
        s.kind = StepKind::act;
        s.in = in, s.out = out, s.M = n;
        s.epi.act = to_act(act);
        return add(p, std::move(s));
      })
      .def("add_copy", [](Plan& p, int in, int out, index_t n) {
        Step s;
        s.kind = StepKind::copy;
        s.in = in, s.out = out, s.M = n;
        return add(p, std::move(s));
      })
      .def("add_affine", [](Plan& p, int in, int out, index_t n, index_t c, index_t hw, const py::object& scale,
                            const py::object& shift, int act) {
        Step s;
        s.kind = StepKind::affine;
        s.in = in, s.out = out, s.M = n, s.C = c, s.HW = hw;
        s.scale = copy_of(scale, "scale");
        s.b = copy_of(shift, "shift");
        s.epi.act = to_act(act);
        return add(p, std::move(s));
      })
      .def("finalize", [](Plan& p, index_t arena_floats, int threads, index_t batch, bool per_thread) {
        try {
          p.finalize(arena_floats, threads, batch, per_thread);
        } catch (const std::invalid_argument& e) {
          throw py::value_error(e.what());
        }
      }, py::arg("arena_floats"), py::arg("threads"), py::arg("batch") = 1, py::arg("per_thread") = false)
      .def("run", [](Plan& p, const py::array& x, py::array& y, int threads, index_t images) {
        check_run(p, x, y, threads, images);
        const float* xp = static_cast<const float*>(x.data());
        float* yp = static_cast<float*>(y.mutable_data());
        bool ok;
        {
          py::gil_scoped_release nogil;
          ok = p.run(xp, yp, threads, images);
        }
        if (!ok) throw std::runtime_error("plan.run: the plan is not finalized or a workspace was too small");
      }, py::arg("x"), py::arg("y"), py::arg("threads") = 0, py::arg("images") = 0)
      .def("run_profiled", [](Plan& p, const py::array& x, py::array& y, int threads, index_t images) {
        check_run(p, x, y, threads, images);
        const float* xp = static_cast<const float*>(x.data());
        float* yp = static_cast<float*>(y.mutable_data());
        std::vector<double> seconds;
        bool ok;
        {
          py::gil_scoped_release nogil;
          ok = p.run_profiled(xp, yp, threads, seconds, images);
        }
        if (!ok) throw std::runtime_error("plan.run: the plan is not finalized or a workspace was too small");
        return seconds;
      }, py::arg("x"), py::arg("y"), py::arg("threads") = 0, py::arg("images") = 0)
      .def("chunk_bounds", [](const Plan& p, index_t images, int threads) {
        // A diagnostic returning a number per chunk, as a Python list: at most 2^20 images, so the
        // list stays small (run's images are bounded by x's size instead).
        if (images < 1 || images > (index_t{1} << 20))
          throw py::value_error("chunk_bounds: images must be in [1, 2^20], got " + std::to_string(images));
        if (threads < 1) throw py::value_error("chunk_bounds: threads must be >= 1, got " + std::to_string(threads));
        return p.chunk_bounds(images, threads);
      }, py::arg("images"), py::arg("threads"))
      .def_property_readonly("batch", &Plan::batch)
      .def_property_readonly("per_thread", &Plan::per_thread)
      .def_property_readonly("input_floats", &Plan::input_floats)
      .def_property_readonly("output_floats", &Plan::output_floats)
      .def_property_readonly("arena_floats", &Plan::arena_floats)
      .def_property_readonly("workspace_floats", &Plan::workspace_floats)
      .def_property_readonly("weight_floats", &Plan::weight_floats)
      .def_property_readonly("num_steps", &Plan::num_steps)
      .def_property_readonly("conv_algorithms", &Plan::conv_algorithms)
      .def_property_readonly("hwc_values", &Plan::hwc_values)
      .def_property_readonly("hwc_layouts", &Plan::hwc_layouts);
}

}  // namespace fastlayers::bindings
