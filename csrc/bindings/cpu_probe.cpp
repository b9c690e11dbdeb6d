#include <pybind11/pybind11.h>

#include <string>

#include "bindings/cpu_bindings.h"
#include "bindings/pointers.h"
#include "cpu/cpu_features.h"
#include "cpu/probe.h"

namespace py = pybind11;

namespace fastlayers::bindings {
namespace {

cpu::Isa parse_isa(const std::string& name) {
  if (name.empty()) return cpu::active_isa();
  cpu::Isa isa;
  if (name == "generic") isa = cpu::Isa::generic;
  else if (name == "avx2") isa = cpu::Isa::avx2;
  else if (name == "avx512") isa = cpu::Isa::avx512;
  else throw py::value_error("isa must be '', 'generic', 'avx2' or 'avx512', got '" + name + "'");
  if (static_cast<int>(isa) > static_cast<int>(cpu::detected_isa()))
    throw py::value_error("isa '" + name + "' is not supported by this CPU (detected: " +
                          cpu::isa_name(cpu::detected_isa()) + ")");
  return isa;
}

void check_positive(long long value, const char* name) {
  if (value < 1) throw py::value_error(std::string(name) + " must be at least 1, got " + std::to_string(value));
}

}  // namespace

void bind_cpu_probe(py::module_& m) {
  m.def("probe_peak_gflops", [](const std::string& isa_name, int threads, index_t iters, int reps) {
    check_positive(threads, "threads");
    check_positive(iters, "iters");
    check_positive(reps, "reps");
    const cpu::Isa isa = parse_isa(isa_name);
    py::gil_scoped_release release;
    return cpu::probe_peak_gflops(isa, threads, iters, reps);
  }, py::arg("isa") = "", py::arg("threads") = 1, py::arg("iters") = 1 << 22, py::arg("reps") = 5,
  "Peak FP32 FMA rate in GFLOP/s over `threads` threads (isa '' = the active one).");
  m.def("probe_triad_gbps", [](index_t n, int threads, int passes) {
    check_positive(n, "n");
    check_positive(threads, "threads");
    check_positive(passes, "passes");
    py::gil_scoped_release release;
    return cpu::probe_triad_gbps(n, threads, passes);
  }, py::arg("n") = index_t{1} << 25, py::arg("threads") = 1, py::arg("passes") = 5,
  "STREAM-triad bandwidth in GB/s over arrays of n floats (3 x 4 bytes per element).");
}

}  // namespace fastlayers::bindings
