// OpenMP helpers shared by the CPU kernels.
#pragma once
#include <omp.h>

#include <algorithm>

#include "common/types.h"

namespace fastlayers::cpu {

// The kernels' thread count, process-wide: fl.set_num_threads(n), else OMP_NUM_THREADS (or the
// CPUs) as libgomp read it at load. OpenMP's own setting (nthreads-var) is per thread, so a value
// set with omp_set_num_threads in one Python thread would not reach a kernel called from another:
// every parallel region of the kernels asks for max_threads() in its num_threads clause instead,
// and every team-size decision reads it. Each Python thread therefore sees the same count, and
// the kernels, whose partitions depend only on it, give the same bits in every thread.
//
// In a child made by fork() it is 1: libgomp's worker threads do not survive fork, and a team of
// more than one thread would wait for them forever. A pthread_atfork handler (parallel.cpp) sets
// that; it also sets the forking thread's nthreads-var to 1 for any region without the clause.
int max_threads();
void set_max_threads(int n);  // n >= 1
bool in_forked_child();

// Caps max_threads() for the calling thread while alive (nests; the tighter cap wins). The
// inference plan (cpu/plan/plan.h) runs batch-1 models on one thread where that measured faster,
// without touching the process-wide count that other Python threads read.
class ThreadCap {
 public:
  explicit ThreadCap(int n);
  ~ThreadCap();
  ThreadCap(const ThreadCap&) = delete;
  ThreadCap& operator=(const ThreadCap&) = delete;

 private:
  int prev_;
};

// Below this many elements an elementwise loop runs on one thread: waking the team costs more
// than the work (a few microseconds).
constexpr index_t kParallelGrain = 1 << 15;

// The same for loops that evaluate an exp / tanh per element (a few times the cost of a copy).
constexpr index_t kTranscendentalGrain = 1 << 13;

// Calls f(lo, hi) on one contiguous range per thread (boundaries multiples of 16 floats, one
// cache line), or once on [0, n) when n <= grain, without waking the team.
template <class F>
void parallel_ranges(index_t n, index_t grain, F f) {
  if (n <= 0) return;
  const int T = max_threads();
  if (n <= grain || T == 1) {
    f(index_t{0}, n);
    return;
  }
#pragma omp parallel num_threads(T)
  {
    const index_t nt = omp_get_num_threads(), t = omp_get_thread_num();
    const index_t per = ((n + nt - 1) / nt + 15) / 16 * 16;
    const index_t lo = t * per < n ? t * per : n, hi = lo + per < n ? lo + per : n;
    if (lo < hi) f(lo, hi);
  }
}

// The thread count a per-call kernel starts from: max_threads(), or 1 when called inside a parallel
// region (the caller's team holds the cores); for kernels that give each thread whole images
// (max_images >= 0: the batch), at most max(max_images, 1).
inline int kernel_threads(index_t max_images = -1) {
  const int T = omp_in_parallel() ? 1 : max_threads();
  if (max_images < 0) return T;
  return static_cast<int>(std::min<index_t>(T, std::max<index_t>(max_images, 1)));
}

// From `start` threads down, the most whose workspace floats(T) fits in `available`; 0 when not even
// one thread's does (the kernel then returns false and conv.cpp takes another path).
template <class Floats>
int threads_that_fit(int start, index_t available, Floats floats) {
  int T = start;
  while (T > 1 && floats(T) > available) --T;
  return floats(T) <= available ? T : 0;
}

// body(t, nt) on a team of T threads (t = 0 .. nt - 1), or body(0, 1) on the calling thread,
// without waking the team, when T == 1.
template <class Body>
void run_on_team(int T, Body body) {
  if (T > 1) {
#pragma omp parallel num_threads(T)
    body(omp_get_thread_num(), omp_get_num_threads());
  } else {
    body(0, 1);
  }
}

// The driver of the per-image conv kernels (conv_winograd_c16, conv_pixels, conv_hwc; per call and
// in the inference plan): image(n, ws, t, team) for every image n < N. With at least T images, a
// team of T threads takes a contiguous run of images each, on its own workspace slice
// (ws + t * slice; t = 0, team = 1 for the kernel); with fewer, one image at a time, the team of T
// splitting it (every thread passed the first slice, its number t and T), or no team when T == 1.
// after(n) runs after image n on the thread(s) that computed it (once: outside the team when it
// splits the image).
template <class Image, class After>
void for_each_image(index_t N, int T, float* ws, index_t slice, Image image, After after) {
  if (T > 1 && N >= T) {
#pragma omp parallel num_threads(T)
    {
      const int t = omp_get_thread_num(), nt = omp_get_num_threads();
      for (index_t n = N * t / nt; n < N * (t + 1) / nt; ++n) {
        image(n, ws + t * slice, 0, 1);
        after(n);
      }
    }
    return;
  }
  for (index_t n = 0; n < N; ++n) {
    if (T > 1) {
#pragma omp parallel num_threads(T)
      image(n, ws, omp_get_thread_num(), omp_get_num_threads());
    } else {
      image(n, ws, 0, 1);
    }
    after(n);
  }
}

template <class Image>
void for_each_image(index_t N, int T, float* ws, index_t slice, Image image) {
  for_each_image(N, T, ws, slice, image, [](index_t) {});
}

}  // namespace fastlayers::cpu
