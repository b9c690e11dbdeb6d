#include "cpu/elementwise.h"

#include <algorithm>
#include <vector>

#include "cpu/parallel.h"

namespace fastlayers::cpu {

void add_forward(const float* a, const float* b, float* y, index_t n) {
#pragma omp parallel for simd schedule(static) if (n > kParallelGrain) num_threads(max_threads())
  for (index_t i = 0; i < n; ++i) y[i] = a[i] + b[i];
}

namespace {

constexpr index_t kChunk = 8192;  // floats per task: amortises the task's index set-up

// The innermost run of a broadcast op: len outputs, a and b advancing by SA / SB (0 or 1).
template <int kOp, int SA, int SB>
void run(const float* a, const float* b, float* y, index_t len, float alpha) {
  if constexpr (kOp == kBinaryAdd) {
#pragma omp simd
    for (index_t j = 0; j < len; ++j) y[j] = a[j * SA] + alpha * b[j * SB];
  } else {
#pragma omp simd
    for (index_t j = 0; j < len; ++j) y[j] = a[j * SA] * b[j * SB];
  }
}

template <int kOp>
void run_any(index_t sa, index_t sb, const float* a, const float* b, float* y, index_t len, float alpha) {
  if (sa && sb) run<kOp, 1, 1>(a, b, y, len, alpha);
  else if (sa) run<kOp, 1, 0>(a, b, y, len, alpha);
  else if (sb) run<kOp, 0, 1>(a, b, y, len, alpha);
  else run<kOp, 0, 0>(a, b, y, len, alpha);
}

// Multi-index over the outer dimensions (all but the last) with the operands' offsets.
struct Odometer {
  int nd;  // outer dimensions
  const index_t* shape;
  const index_t* st[2];
  index_t idx[kMaxBroadcastDims] = {};
  index_t off[2] = {0, 0};

  void seek(index_t row) {  // row: flat index over the outer dimensions
    off[0] = off[1] = 0;
    for (int k = nd - 1; k >= 0; --k) {
      idx[k] = row % shape[k];
      row /= shape[k];
      off[0] += idx[k] * st[0][k];
      off[1] += idx[k] * st[1][k];
    }
  }
  void next() {
    for (int k = nd - 1; k >= 0; --k) {
      off[0] += st[0][k];
      off[1] += st[1][k];
      if (++idx[k] < shape[k]) return;
      off[0] -= st[0][k] * shape[k];
      off[1] -= st[1][k] * shape[k];
      idx[k] = 0;
    }
  }
};

template <int kOp>
void broadcast_impl(const float* a, const float* b, float* y, int ndim, const index_t* shape,
                    const index_t* sa, const index_t* sb, float alpha) {
  const index_t inner = shape[ndim - 1];
  index_t outer = 1;
  for (int k = 0; k < ndim - 1; ++k) outer *= shape[k];
  const index_t ia = sa[ndim - 1], ib = sb[ndim - 1];
  const index_t total = outer * inner;
  if (total <= 0) return;
  if (inner >= kChunk) {  // tasks: (row, chunk of the row)
    const index_t per_row = (inner + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (total > kParallelGrain) num_threads(max_threads())
    for (index_t t = 0; t < outer * per_row; ++t) {
      Odometer od{ndim - 1, shape, {sa, sb}};
      const index_t row = t / per_row, j0 = (t % per_row) * kChunk;
      od.seek(row);
      run_any<kOp>(ia, ib, a + od.off[0] + j0 * ia, b + od.off[1] + j0 * ib, y + row * inner + j0,
                   std::min(kChunk, inner - j0), alpha);
    }
    return;
  }
  // tasks: groups of whole rows
  const index_t rows = std::max<index_t>(1, kChunk / std::max<index_t>(inner, 1));
  const index_t tasks = (outer + rows - 1) / rows;
#pragma omp parallel for schedule(static) if (total > kParallelGrain) num_threads(max_threads())
  for (index_t t = 0; t < tasks; ++t) {
    Odometer od{ndim - 1, shape, {sa, sb}};
    const index_t r0 = t * rows, r1 = std::min(outer, r0 + rows);
    od.seek(r0);
    for (index_t r = r0; r < r1; ++r, od.next())
      run_any<kOp>(ia, ib, a + od.off[0], b + od.off[1], y + r * inner, inner, alpha);
  }
}

}  // namespace

void binary_broadcast_forward(int op, const float* a, const float* b, float* y, int ndim,
                              const index_t* shape, const index_t* a_strides,
                              const index_t* b_strides, float alpha) {
  if (ndim <= 0) return;
  if (op == kBinaryAdd) broadcast_impl<kBinaryAdd>(a, b, y, ndim, shape, a_strides, b_strides, alpha);
  else broadcast_impl<kBinaryMul>(a, b, y, ndim, shape, a_strides, b_strides, alpha);
}

namespace {

// A set of dimensions (kept or reduced) with g's strides and the output's.
struct Dims {
  int n = 0;
  index_t size[kMaxBroadcastDims], gs[kMaxBroadcastDims], os[kMaxBroadcastDims];
  index_t count() const {
    index_t c = 1;
    for (int k = 0; k < n; ++k) c *= size[k];
    return c;
  }
  // g and out offsets of flat index i over these dimensions
  void offsets(index_t i, index_t& g, index_t& o) const {
    g = o = 0;
    for (int k = n - 1; k >= 0; --k) {
      const index_t v = i % size[k];
      i /= size[k];
      g += v * gs[k];
      o += v * os[k];
    }
  }
};

// Walks the reduced dimensions in order, calling f(g offset) for each combination.
template <class F>
void for_each_reduced(const Dims& r, F f) {
  index_t idx[kMaxBroadcastDims] = {};
  index_t g = 0;
  const index_t count = r.count();
  for (index_t i = 0; i < count; ++i) {
    f(g);
    for (int k = r.n - 1; k >= 0; --k) {
      g += r.gs[k];
      if (++idx[k] < r.size[k]) break;
      g -= r.gs[k] * r.size[k];
      idx[k] = 0;
    }
  }
}

constexpr index_t kColumns = 256;  // output columns summed together when the last dim is kept
constexpr int kFlush = 16;         // rows summed in float before their sum joins the double total
constexpr index_t kPiece = 1024;   // a contiguous run is summed in float pieces of this length

// Row chunks (sum_broadcast with few outputs): at most kRowChunkOutputs outputs, chunks of at least
// kRowChunkWork elements, at most kMaxRowChunks chunks and kRowChunkDoubles partial sums in all.
constexpr index_t kRowChunkOutputs = index_t{1} << 15;
constexpr index_t kRowChunkWork = index_t{1} << 15;
constexpr index_t kMaxRowChunks = 64;
constexpr index_t kRowChunkDoubles = index_t{1} << 20;

// The calling thread's grow-only scratch for the row chunks' partial sums (at most 8 MiB).
double* row_chunk_workspace(index_t n) {
  thread_local std::vector<double> buffer;
  if (static_cast<index_t>(buffer.size()) < n) buffer.resize(static_cast<size_t>(n));
  return buffer.data();
}

}  // namespace

void sum_broadcast(const float* g, float* out, int ndim, const index_t* shape,
                   const index_t* out_strides, float alpha) {
  if (ndim <= 0) return;
  index_t total = 1;
  for (int k = 0; k < ndim; ++k) total *= shape[k];
  if (total <= 0) return;  // the op layer fills an empty sum with zeros
  // g's strides (contiguous), split into the outer kept / reduced sets and the innermost dim.
  index_t gstride[kMaxBroadcastDims];
  index_t acc = 1;
  for (int k = ndim - 1; k >= 0; --k) {
    gstride[k] = acc;
    acc *= shape[k];
  }
  Dims kept, red;
  for (int k = 0; k < ndim - 1; ++k) {
    Dims& d = out_strides[k] ? kept : red;
    d.size[d.n] = shape[k];
    d.gs[d.n] = gstride[k];
    d.os[d.n] = out_strides[k];
    ++d.n;
  }
  const index_t inner = shape[ndim - 1];
  const bool inner_kept = out_strides[ndim - 1] != 0;
  const index_t outputs = kept.count() * (inner_kept ? inner : 1);

  if (!inner_kept) {
    // Each output sums contiguous runs of `inner` floats, one run per reduced combination.
#pragma omp parallel for schedule(static) if (total > kParallelGrain && outputs > 1) num_threads(max_threads())
    for (index_t o = 0; o < outputs; ++o) {
      index_t g0, o0;
      kept.offsets(o, g0, o0);
      double s = 0.0;
      for_each_reduced(red, [&](index_t gr) {
        const float* p = g + g0 + gr;
        for (index_t j0 = 0; j0 < inner; j0 += kPiece) {  // float sums of pieces, added in double
          const index_t j1 = std::min(inner, j0 + kPiece);
          float piece = 0.0f;
#pragma omp simd reduction(+ : piece)
          for (index_t j = j0; j < j1; ++j) piece += p[j];
          s += piece;
        }
      });
      out[o0] = static_cast<float>(alpha * s);
    }
    return;
  }
  const index_t reduced = total / outputs;
  if (outputs <= kRowChunkOutputs && reduced > 1) {
    // Few outputs, many reduced rows (a bias's gradient): fixed chunks of the reduced combinations,
    // each summed over all outputs into its own row of double partials (every read contiguous,
    // each page of g visited once), then the chunks' partials added in chunk order.
    index_t chunks = std::min<index_t>(std::max<index_t>(total / kRowChunkWork, 1), kMaxRowChunks);
    chunks = std::min({chunks, reduced, std::max<index_t>(1, kRowChunkDoubles / outputs)});
    const index_t per = (reduced + chunks - 1) / chunks;
    chunks = (reduced + per - 1) / per;
    double* part = row_chunk_workspace(chunks * outputs);
    const index_t kept_count = kept.count();
#pragma omp parallel for schedule(static) if (total > kParallelGrain && chunks > 1) num_threads(max_threads())
    for (index_t ch = 0; ch < chunks; ++ch) {
      double* ps = part + ch * outputs;
      for (index_t o = 0; o < outputs; ++o) ps[o] = 0.0;
      const index_t r1 = std::min(reduced, (ch + 1) * per);
      for (index_t r = ch * per; r < r1; ++r) {
        index_t gr, unused;
        red.offsets(r, gr, unused);
        for (index_t k = 0; k < kept_count; ++k) {
          index_t g0, o0;
          kept.offsets(k, g0, o0);
          const float* __restrict p = g + gr + g0;
          double* __restrict q = ps + o0;
#pragma omp simd
          for (index_t j = 0; j < inner; ++j) q[j] += p[j];
        }
      }
    }
#pragma omp parallel for schedule(static) if (total > kParallelGrain && outputs > 4096) num_threads(max_threads())
    for (index_t o = 0; o < outputs; ++o) {
      double sum = 0.0;
      for (index_t ch = 0; ch < chunks; ++ch) sum += part[ch * outputs + o];
      out[o] = static_cast<float>(alpha * sum);
    }
    return;
  }
  // The last dimension is kept: a task sums a block of up to kColumns neighbouring columns over
  // every reduced combination (contiguous reads; the block's sums stay in L1).
  const index_t blocks = (inner + kColumns - 1) / kColumns;
  const index_t tasks = kept.count() * blocks;
#pragma omp parallel for schedule(static) if (total > kParallelGrain && tasks > 1) num_threads(max_threads())
  for (index_t t = 0; t < tasks; ++t) {
    const index_t kidx = t / blocks, j0 = (t % blocks) * kColumns, w = std::min(kColumns, inner - j0);
    index_t g0, o0;
    kept.offsets(kidx, g0, o0);
    // float partial sums over kFlush rows at a time (vectorised), each run added into double
    double s[kColumns];
    float f[kColumns];
    for (index_t j = 0; j < w; ++j) s[j] = 0.0, f[j] = 0.0f;
    int pending = 0;
    for_each_reduced(red, [&](index_t gr) {
      const float* __restrict p = g + g0 + gr + j0;
#pragma omp simd
      for (index_t j = 0; j < w; ++j) f[j] += p[j];
      if (++pending == kFlush) {
#pragma omp simd
        for (index_t j = 0; j < w; ++j) s[j] += f[j], f[j] = 0.0f;
        pending = 0;
      }
    });
    float* dst = out + o0 + j0;
    for (index_t j = 0; j < w; ++j) dst[j] = static_cast<float>(alpha * (s[j] + f[j]));
  }
}

}  // namespace fastlayers::cpu
