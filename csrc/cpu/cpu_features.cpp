#include "cpu/cpu_features.h"

#include "cpu/parallel.h"

#include <omp.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace fastlayers::cpu {
namespace {

Isa detect() {
#if defined(__x86_64__) || defined(_M_X64)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq"))
    return Isa::avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::avx2;
#endif
  return Isa::generic;
}

Isa ceiling_from_env() {
  const char* env = std::getenv("FASTLAYERS_ISA");
  if (env == nullptr) return Isa::avx512;
  if (std::strcmp(env, "generic") == 0) return Isa::generic;
  if (std::strcmp(env, "avx2") == 0) return Isa::avx2;
  return Isa::avx512;
}

std::atomic<int> g_ceiling{static_cast<int>(ceiling_from_env())};

}  // namespace

Isa detected_isa() {
  static const Isa isa = detect();
  return isa;
}

Isa active_isa() {
  const int detected = static_cast<int>(detected_isa());
  const int ceiling = g_ceiling.load(std::memory_order_relaxed);
  return static_cast<Isa>(detected < ceiling ? detected : ceiling);
}

void set_max_isa(Isa isa) { g_ceiling.store(static_cast<int>(isa), std::memory_order_relaxed); }

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx512: return "avx512";
    case Isa::avx2: return "avx2";
    default: return "generic";
  }
}

void set_num_threads(int n) { set_max_threads(n); }
int get_num_threads() { return max_threads(); }

}  // namespace fastlayers::cpu
