// Runtime ISA dispatch. SIMD micro-kernels live in *_avx2.cpp / *_avx512.cpp files that alone are
// compiled with those ISA flags; callers ask which one to use here, once per call, never per element.
#pragma once

namespace fastlayers::cpu {

enum class Isa { generic = 0, avx2 = 1, avx512 = 2 };

// The widest ISA that both the CPU supports and the user allows. FASTLAYERS_ISA=generic|avx2|avx512
// (environment, read once) or set_max_isa() lowers the ceiling, so tests can cover every path.
Isa active_isa();
void set_max_isa(Isa isa);
Isa detected_isa();
const char* isa_name(Isa isa);

// OpenMP thread count used by every CPU kernel (follows OMP_NUM_THREADS until set).
void set_num_threads(int n);
int get_num_threads();

}  // namespace fastlayers::cpu
