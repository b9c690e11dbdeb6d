// The process-wide thread count and the fork handler (parallel.h says why).
#include "cpu/parallel.h"

#include <omp.h>
#include <pthread.h>

#include <atomic>

namespace fastlayers::cpu {

namespace {

std::atomic<int> g_threads{0};  // 0: not read yet
std::atomic<bool> g_forked{false};
thread_local int t_cap = 0;  // ThreadCap: 0 = none

void after_fork_in_child() {
  g_forked.store(true, std::memory_order_relaxed);
  omp_set_num_threads(1);  // the forking thread is the child's only thread
}

// At load, in the importing thread: OMP_NUM_THREADS (or the CPUs), and the fork handler.
[[maybe_unused]] const bool g_registered = [] {
  g_threads.store(omp_get_max_threads(), std::memory_order_relaxed);
  return pthread_atfork(nullptr, nullptr, after_fork_in_child) == 0;
}();

}  // namespace

int max_threads() {
  if (g_forked.load(std::memory_order_relaxed)) return 1;
  int n = g_threads.load(std::memory_order_relaxed);
  if (t_cap > 0 && t_cap < n) n = t_cap;
  return n > 0 ? n : 1;
}

ThreadCap::ThreadCap(int n) : prev_(t_cap) {
  if (n > 0 && (t_cap == 0 || n < t_cap)) t_cap = n;
}

ThreadCap::~ThreadCap() { t_cap = prev_; }

void set_max_threads(int n) {
  g_threads.store(n > 0 ? n : 1, std::memory_order_relaxed);
  // Regions without a num_threads clause (none should remain; see tests/test_threads.py) follow the
  // calling thread's own setting, as before.
  if (!g_forked.load(std::memory_order_relaxed)) omp_set_num_threads(n > 0 ? n : 1);
}

bool in_forked_child() { return g_forked.load(std::memory_order_relaxed); }

}  // namespace fastlayers::cpu
