// The inference plan: a whole eval-mode model (built by python/fastlayers/nn/plan.py) walked by one
// C++ call, with no Python between layers. A plan is a list of steps over numbered values; each value
// lives at a fixed offset of one arena (planned with reuse by the Python side: a value's floats are
// reused once its last reader has run), except the model's input (the caller's x) and output (the
// caller's y). The plan owns copies of the weights, with batch norm already folded into the conv by
// the builder, and packs them once for the kernels that take packed filters (the direct "smallc"
// convolution, conv_smallc.h, and the others below) and the dense layers' w^T for the SGEMM.
//
// Steps and their fused epilogues: a conv or dense step computes z = op(x) + bias (bias inside the
// kernel) and then, in the same step, y = pool(act(z + residual)) or act(pool(z + residual)):
//   act       none or ReLU
//   residual  a value of z's shape added before act (a residual block's skip connection)
//   pool      a 2x2 stride-2 unpadded max or average pool (floor mode)
// With the direct conv kernel and at least as many images as threads, the epilogue runs per image
// right after that image's convolution, while its output is still in cache. Other steps: a general
// pool, global average pool, elementwise add (+ act), act, per-channel affine (a batch norm with no
// conv before it), copy.
//
// Threads: every kernel takes max_threads() (fl.set_num_threads). Whether a plan runs on one thread
// is the builder's choice (threads argument of run), made by measurement at batch 1.
//
// Chunks: a plan is built for `batch` images (finalize) and runs any number of them (run's
// `images`), walking all its steps over one chunk of at most `batch` images before the next. Every
// value holds whole images (its floats are a multiple of the batch) and no step mixes images, so a
// chunk of n images uses the first n images' floats of each value. The builder picks chunks whose
// activations stay in the caches (nn/plan.py). Two ways to use several threads (finalize's
// per_thread): the steps split each chunk's images over the team, a parallel region per step; or
// each thread runs whole chunks, every step on its own, with its own arena and workspace, taking
// the next chunk when done (no barrier between steps, and a thread slowed by the machine takes
// fewer chunks).
#pragma once
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/conv_shape.h"
#include "common/pool_geometry.h"
#include "common/types.h"
#include "cpu/conv_winograd_c16.h"  // OutPool

namespace fastlayers::cpu::plan {

enum class Act : int { none = 0, relu = 1 };
enum class PoolKind : int { none = 0, max = 1, avg = 2 };

// What a conv / dense / add step does to its result before writing its output value.
struct Epilogue {
  Act act = Act::none;
  int residual = -1;            // value added before act (-1: none)
  PoolKind pool = PoolKind::none;  // 2x2 stride 2, after act (act_first) or before it
  bool act_first = true;
};

enum class StepKind : int { conv = 0, linear = 1, pool = 2, global_avg_pool = 3, add = 4, act = 5, affine = 6, copy = 7 };

struct Step {
  StepKind kind = StepKind::copy;
  int in = -1, in2 = -1, out = -1;
  int tmp = -1;  // conv with a fused pool: the full-size conv output (an arena value)
  Epilogue epi;
  Conv2dShape conv{};
  bool smallc = false;                 // filters packed once for the direct kernel
  bool wino16 = false;                 // filters transformed once for conv_winograd_c16 (in packed)
  bool pixconv = false;                // conv_pixels: the plain filters, pixels in the lanes
  bool hwc = false;                    // conv_hwc: filters packed [tap][c][k] once (in packed)
  bool x_hwc = false, y_hwc = false;   // its input / output value in HWC (choose_hwc_values)
  bool hwc_if_chained = false;         // on conv_hwc only while it reads or writes an HWC value
  std::vector<float> w, b, packed;     // weights (conv / dense), bias (or affine shift), packed filters
  index_t packed_cols = 0;             // dense: w^T packed for sgemm_prepacked_b in panels this wide
  std::vector<float> scale;            // affine: per-channel scale
  index_t M = 0, N = 0, K = 0;         // dense: x (M x K) * w (N x K)^T; add/act/copy: M elements;
                                       // global pool of an HWC value: K channels per image
  index_t C = 0, HW = 0;               // affine / epilogue geometry: planes of HW floats, C per image
  Pool2dGeometry pool{};               // pool step
  PoolKind pool_kind = PoolKind::none;
  bool count_include_pad = true;
};

class Plan {
 public:
  // A value: `floats` long, at `offset` floats into the arena, or the caller's input (offset -1) or
  // output (offset -2).
  int add_value(index_t floats, index_t offset);
  // Appends a step (checked: value ids, sizes); returns its index.
  int add_step(Step step);
  // Sizes the arena and the kernels' workspace (for `threads` threads) and packs the filters. batch:
  // the images the plan's values and steps were sized for (checked: every count a multiple of it).
  // per_thread: each thread runs chunks of its own (an arena and a one-thread workspace each).
  void finalize(index_t arena_floats, int threads, index_t batch = 1, bool per_thread = false);

  index_t input_floats() const;   // for `batch` images
  index_t output_floats() const;
  index_t batch() const { return batch_; }
  // All the arenas and workspaces (one of each per thread with per_thread).
  index_t arena_floats() const { return arena_floats_ * scratches_; }
  index_t workspace_floats() const { return workspace_floats_ * scratches_; }
  bool per_thread() const { return per_thread_; }
  index_t weight_floats() const;
  int num_steps() const { return static_cast<int>(steps_.size()); }
  // Values kept in HWC between two HWC kernels (choose_hwc_values), after finalize.
  int hwc_values() const;
  // Per step, which of its input and output values are HWC: "", "x", "y" or "xy".
  std::vector<std::string> hwc_layouts() const;
  // Per step, the algorithm its conv runs after finalize: "winograd_c16", "pixels" (conv_pixels),
  // "direct" (conv_smallc with packed filters) or "conv2d_forward" (that function's own choice);
  // "" for other steps.
  std::vector<std::string> conv_algorithms() const;

  // Runs the plan on `images` images x (images * input_floats() / batch() floats) into y, in chunks
  // of at most batch() images (chunk_bounds); images 0 means batch(). One run at a time per plan
  // (the arena is the plan's): concurrent callers wait. threads: 0 = max_threads(), else that many.
  // Returns false if the workspace is too small for a conv (cannot happen after finalize).
  bool run(const float* x, float* y, int threads, index_t images = 0);
  // As run, and the seconds each step took, summed over the chunks (a profile; same results).
  bool run_profiled(const float* x, float* y, int threads, std::vector<double>& seconds, index_t images = 0);
  // The chunks run splits `images` into with `threads` threads: bounds[i] .. bounds[i + 1]. As few
  // chunks as hold at most batch() images each, of nearly equal size; with steps splitting a chunk,
  // in whole multiples of the thread count where batch() is one (every thread as many of a chunk's
  // images); per thread, a multiple of the thread count of them (every thread as many chunks).
  std::vector<index_t> chunk_bounds(index_t images, int threads) const;

 private:
  // What one chunk's steps read and write: the caller's x and y from the chunk's first image on, an
  // arena and the kernels' workspace (the thread's own with per_thread).
  struct ChunkIo {
    const float* x;
    float* y;
    float* arena;
    float* ws;
  };
  float* at(int value, const ChunkIo& io) const;
  // A run over chunks; step(i, io, n) runs step i on a chunk of n images.
  template <class RunStep>
  bool run_chunks(const float* x, float* y, int threads, index_t images, RunStep step);
  // Step s on a chunk of n <= batch_ images: its counts (images, planes, rows, elements) scaled from
  // the batch to n (scaled).
  bool run_step(const Step& s, const ChunkIo& io, index_t n);
  index_t scaled(index_t count, index_t n) const { return count / batch_ * n; }
  // c: s.conv with its N the chunk's images.
  bool conv_into(const Step& s, const Conv2dShape& c, float* ws, const float* in, float* z);
  // after_image(n), if given, runs on the thread that computed image n, right after it.
  void per_image_into(const Step& s, const Conv2dShape& c, float* ws, const float* in, float* z, const float* res,
                      bool relu, const std::function<void(index_t)>& after_image = {}, OutPool pool = {});
  void choose_conv_paths();
  void choose_hwc_values();
  // act_done: the kernel has applied the step's ReLU-before-pool already.
  void epilogue(const Step& s, const float* z, float* out, const float* res, index_t n0, index_t n1,
                bool act_done = false) const;

  struct Value {
    index_t floats, offset;
  };
  std::vector<Value> values_;
  std::vector<Step> steps_;
  index_t arena_floats_ = 0, workspace_floats_ = 0;
  index_t batch_ = 1;
  int threads_ = 1;
  bool per_thread_ = false;
  int scratches_ = 1;  // arenas and workspaces: threads_ with per_thread_, else one
  bool fused_pool_ = true;  // 2x2 pools inside the HWC kernels (finalize)
  struct Free {
    void operator()(float* p) const;
  };
  std::unique_ptr<float, Free> arena_, workspace_;
  std::mutex mu_;
  bool finalized_ = false;
};

}  // namespace fastlayers::cpu::plan
