#include <pybind11/pybind11.h>

#include "bindings/cpu_bindings.h"
#include "cpu/cpu_features.h"

namespace py = pybind11;

namespace fastlayers::bindings {

void bind_cpu_runtime(py::module_& m) {
  m.def("set_num_threads", &cpu::set_num_threads);
  m.def("get_num_threads", &cpu::get_num_threads);
  m.def("detected_isa", [] { return std::string(cpu::isa_name(cpu::detected_isa())); });
  m.def("active_isa", [] { return std::string(cpu::isa_name(cpu::active_isa())); });
  m.def("set_max_isa", [](const std::string& name) {
    if (name == "generic") cpu::set_max_isa(cpu::Isa::generic);
    else if (name == "avx2") cpu::set_max_isa(cpu::Isa::avx2);
    else if (name == "avx512") cpu::set_max_isa(cpu::Isa::avx512);
    else throw py::value_error("isa must be 'generic', 'avx2' or 'avx512', got '" + name + "'");
  });
}

}  // namespace fastlayers::bindings
