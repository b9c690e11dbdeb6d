// Device code of the CUDA convolution (csrc/cuda/conv.cu has the launchers, conv_plan.h the
// tile table and the overview): one "gather GEMM" kernel, the three passes as operand ops, and the
// split and bias reductions. A header with no host-only CUDA API, so csrc/cuda/host_emulation can
// compile it with g++ and run it.
//
// The kernel: C[m][n] = sum over kk in [kb, ke) of A(m, kk) * B(n, kk), a BM x BN tile per block,
// TM x TN per thread, BK-deep slices double-buffered in shared memory with a register prefetch of
// the next slice (global loads in flight while the current slice is multiplied; works on sm_75
// and later alike). No integer division per gathered element: what a row m needs (pixel
// coordinates, base offsets) sits in a per-block table `rows`, what a reduction index kk needs
// (filter tap offsets) in a table `red` that G * BK threads fill a group of G slices ahead; a load
// is then two table reads, adds and bounds tests. Thread tiles with TM (TN) a multiple of 4 read
// shared memory as float4 (rows i/4 * BM/(TM/4) + tm*4 + i%4: a warp's reads are contiguous, no
// bank conflicts); narrower ones read scalars (tm + i*BM/TM). The last, partial slice runs only
// its remaining reduction steps. Every output is written exactly once, its sum accumulated in kk
// order whatever the tile: results do not depend on the tile chosen.
#pragma once
#include <cmath>
#include <limits>

#include "common/types.h"
#include "cuda/conv_plan.h"

namespace fastlayers::cuda::conv_detail {

using conv_plan::kPixelTiles;
using conv_plan::kWeightTiles;

template <class I>
struct Dims {
  I N, C, H, W, K, R, S, P, Q, sh, sw, ph, pw, dh, dw, G;
  I Cg, Kg, RS, CRS, PQ, HW, CHW, KPQ;
};

// Shape: any struct with Conv2dShape's fields (csrc/common/conv_shape.h).
template <class I, class Shape>
Dims<I> dims_of(const Shape& s) {
  Dims<I> d;
  d.N = static_cast<I>(s.N), d.C = static_cast<I>(s.C), d.H = static_cast<I>(s.H), d.W = static_cast<I>(s.W);
  d.K = static_cast<I>(s.K), d.R = static_cast<I>(s.R), d.S = static_cast<I>(s.S);
  d.P = static_cast<I>(s.P), d.Q = static_cast<I>(s.Q);
  d.sh = static_cast<I>(s.stride_h), d.sw = static_cast<I>(s.stride_w);
  d.ph = static_cast<I>(s.pad_h), d.pw = static_cast<I>(s.pad_w);
  d.dh = static_cast<I>(s.dil_h), d.dw = static_cast<I>(s.dil_w), d.G = static_cast<I>(s.groups);
  d.Cg = d.C / d.G, d.Kg = d.K / d.G, d.RS = d.R * d.S, d.CRS = d.Cg * d.RS;
  d.PQ = d.P * d.Q, d.HW = d.H * d.W, d.CHW = d.C * d.HW, d.KPQ = d.K * d.PQ;
  return d;
}

template <class I>
__device__ __forceinline__ bool inside(I h, I w, I H, I W) {
  return h >= 0 && h < H && w >= 0 && w < W;
}

// What every sub-problem (grid z) shares: its GEMM size and reduction range, plus op data.
template <class I>
struct ProblemBase {
  I M, N, kb, ke;
};

// ------------------------------------------------------------------------------------ the ops
// Each op: problem(z) -> Problem (M, N, kb, ke and its own fields); row(P, m) -> Row (m < M);
// red(P, kk) -> Red (kb <= kk < ke); a(P, Row, Red) and b(P, n, Red) read one operand value
// (called only in range); store(P, Row, m, n, v). kAlongRedA / kAlongRedB: load that operand with
// neighbouring threads on neighbouring kk (else on neighbouring m / n), whichever is contiguous
// in memory.

// Forward: rows = output pixels (n, p, q), columns = output channels k of group g,
// kk = (c, r, s). A = x gathered, B = w.
template <class I>
struct ForwardOp {
  using Index = I;
  static constexpr bool kAlongRedA = false, kAlongRedB = true;
  const float* x;
  const float* w;
  const float* bias;  // may be null
  float* y;
  Dims<I> d;

  struct Problem : ProblemBase<I> {
    I g;
  };
  struct Row {
    I x_base, h0, w0, y_off;  // x offset of (n, group's channel 0, h0, w0); top-left input cell
  };
  struct Red {
    I off, dr, ds, kk;  // x offset of tap (c, r, s) from x_base; its row / column offsets
  };
  __device__ Problem problem(I z) const {
    Problem p;
    p.M = d.N * d.PQ, p.N = d.Kg, p.kb = 0, p.ke = d.CRS, p.g = z;
    return p;
  }
  __device__ Row row(const Problem& pr, I m) const {
    const I n = m / d.PQ, pq = m - n * d.PQ, p = pq / d.Q, q = pq - p * d.Q;
    Row r;
    r.h0 = p * d.sh - d.ph;
    r.w0 = q * d.sw - d.pw;
    r.x_base = (n * d.C + pr.g * d.Cg) * d.HW + r.h0 * d.W + r.w0;
    r.y_off = (n * d.K + pr.g * d.Kg) * d.PQ + pq;
    return r;
  }
  __device__ Red red(const Problem&, I kk) const {
    const I c = kk / d.RS, rs = kk - c * d.RS, r = rs / d.S, s = rs - r * d.S;
    Red e;
    e.dr = r * d.dh, e.ds = s * d.dw;
    e.off = c * d.HW + e.dr * d.W + e.ds;
    e.kk = kk;
    return e;
  }
  __device__ float a(const Problem&, const Row& r, const Red& e) const {
    return inside(r.h0 + e.dr, r.w0 + e.ds, d.H, d.W) ? x[r.x_base + e.off] : 0.0f;
  }
  __device__ float b(const Problem& pr, I n, const Red& e) const { return w[(pr.g * d.Kg + n) * d.CRS + e.kk]; }
  __device__ void store(const Problem& pr, const Row& r, I /*m*/, I n, float v) const {
    y[r.y_off + n * d.PQ] = bias ? v + bias[pr.g * d.Kg + n] : v;
  }
};

// Backward data, one stride phase per sub-problem: rows = input pixels (n, i, j) of the phase,
// h = rho_h + i*sh; columns = input channels c of group g; kk = (k, jr, js) over the phase's taps
// r = r0 + jr*rstep. A = grad_out gathered at p = i + pbase - jr*pstep (likewise q), B = w.
template <class I>
struct BackwardDataOp {
  using Index = I;
  static constexpr bool kAlongRedA = false, kAlongRedB = true;
  const float* go;
  const float* w;
  float* gx;
  Dims<I> d;

  struct Problem : ProblemBase<I> {
    I g, rho_h, rho_w, Hs, Ws, r0, rstep, nr, pbase, pstep, s0, sstep, ns, qbase, qstep;
  };
  struct Row {
    I go_base, p0, q0, gx_off;  // grad_out offset of (n, group's channel 0, p0, q0) for jr = js = 0
  };
  struct Red {
    I go_off, dp, dq, w_off;  // grad_out offset from go_base; row / column steps back; w offset
  };
  // The phase's taps along one axis (same rule as conv_plan::phase_axis, in I arithmetic).
  __device__ static void axis(I rho, I size, I stride, I pad, I dil, I taps, I& count, I& r0, I& rstep, I& nr,
                              I& pbase, I& pstep) {
    count = rho < size ? (size - rho + stride - 1) / stride : 0;
    const I want = (rho + pad) % stride;
    I a = stride, b = dil;  // gcd
    while (b != 0) {
      const I t = a % b;
      a = b, b = t;
    }
    rstep = stride / a;
    r0 = taps;
    for (I r = 0; r < taps && r < rstep; ++r)
      if ((r * dil) % stride == want) {
        r0 = r;
        break;
      }
    nr = r0 < taps ? (taps - 1 - r0) / rstep + 1 : 0;
    pbase = nr ? (rho + pad - r0 * dil) / stride : 0;
    pstep = rstep * dil / stride;
  }
  __device__ Problem problem(I z) const {
    Problem p;
    const I phases = d.sh * d.sw, phase = z % phases;
    p.g = z / phases;
    p.rho_h = phase / d.sw, p.rho_w = phase % d.sw;
    axis(p.rho_h, d.H, d.sh, d.ph, d.dh, d.R, p.Hs, p.r0, p.rstep, p.nr, p.pbase, p.pstep);
    axis(p.rho_w, d.W, d.sw, d.pw, d.dw, d.S, p.Ws, p.s0, p.sstep, p.ns, p.qbase, p.qstep);
    p.M = d.N * p.Hs * p.Ws, p.N = d.Cg, p.kb = 0, p.ke = d.Kg * p.nr * p.ns;
    return p;
  }
  __device__ Row row(const Problem& pr, I m) const {
    const I hw = pr.Hs * pr.Ws, n = m / hw, rem = m - n * hw, i = rem / pr.Ws, j = rem - i * pr.Ws;
    Row r;
    r.p0 = i + pr.pbase, r.q0 = j + pr.qbase;
    r.go_base = (n * d.K + pr.g * d.Kg) * d.PQ + r.p0 * d.Q + r.q0;
    r.gx_off = (n * d.C + pr.g * d.Cg) * d.HW + (pr.rho_h + i * d.sh) * d.W + (pr.rho_w + j * d.sw);
    return r;
  }
  __device__ Red red(const Problem& pr, I kk) const {
    const I taps = pr.nr * pr.ns, k = kk / taps, t = kk - k * taps, jr = t / pr.ns, js = t - jr * pr.ns;
    Red e;
    e.dp = jr * pr.pstep, e.dq = js * pr.qstep;
    e.go_off = k * d.PQ - e.dp * d.Q - e.dq;
    e.w_off = (pr.g * d.Kg + k) * d.CRS + (pr.r0 + jr * pr.rstep) * d.S + (pr.s0 + js * pr.sstep);
    return e;
  }
  __device__ float a(const Problem&, const Row& r, const Red& e) const {
    return inside(r.p0 - e.dp, r.q0 - e.dq, d.P, d.Q) ? go[r.go_base + e.go_off] : 0.0f;
  }
  __device__ float b(const Problem&, I n, const Red& e) const { return w[e.w_off + n * d.RS]; }
  __device__ void store(const Problem&, const Row& r, I /*m*/, I n, float v) const { gx[r.gx_off + n * d.HW] = v; }
};

// Backward weight: rows = filter taps (c, r, s) of group g, columns = output channels k,
// kk = (n, p, q) over this split's range. A = x gathered, B = grad_out.
template <class I>
struct BackwardWeightOp {
  using Index = I;
  static constexpr bool kAlongRedA = true, kAlongRedB = true;
  const float* go;
  const float* x;
  float* out;  // grad_w (one split) or the workspace (splits x K x CRS partial sums)
  Dims<I> d;
  I splits, k_chunk;

  struct Problem : ProblemBase<I> {
    I g, split;
  };
  struct Row {
    I x_off, dr, ds, pad_;  // x offset of channel g*Cg + c at (r*dh - ph, s*dw - pw); the offsets
  };
  struct Red {
    I x_base, hp, wq, go_off;  // x offset of (n, 0, p*sh, q*sw); p*sh, q*sw; grad_out offset of (n, 0, p, q)
  };
  __device__ Problem problem(I z) const {
    Problem p;
    p.g = z / splits, p.split = z % splits;
    const I total = d.N * d.PQ;
    p.M = d.CRS, p.N = d.Kg;
    p.kb = p.split * k_chunk < total ? p.split * k_chunk : total;
    p.ke = p.kb + k_chunk < total ? p.kb + k_chunk : total;
    return p;
  }
  __device__ Row row(const Problem& pr, I m) const {
    const I c = m / d.RS, rs = m - c * d.RS, r = rs / d.S, s = rs - r * d.S;
    Row e;
    e.dr = r * d.dh - d.ph, e.ds = s * d.dw - d.pw;
    e.x_off = (pr.g * d.Cg + c) * d.HW + e.dr * d.W + e.ds;
    e.pad_ = 0;
    return e;
  }
  __device__ Red red(const Problem&, I kk) const {
    const I n = kk / d.PQ, pq = kk - n * d.PQ, p = pq / d.Q, q = pq - p * d.Q;
    Red e;
    e.hp = p * d.sh, e.wq = q * d.sw;
    e.x_base = n * d.CHW + e.hp * d.W + e.wq;
    e.go_off = n * d.KPQ + pq;
    return e;
  }
  __device__ float a(const Problem&, const Row& r, const Red& e) const {
    return inside(e.hp + r.dr, e.wq + r.ds, d.H, d.W) ? x[e.x_base + r.x_off] : 0.0f;
  }
  __device__ float b(const Problem& pr, I n, const Red& e) const { return go[e.go_off + (pr.g * d.Kg + n) * d.PQ]; }
  __device__ void store(const Problem& pr, const Row&, I m, I n, float v) const {
    out[pr.split * d.K * d.CRS + (pr.g * d.Kg + n) * d.CRS + m] = v;
  }
};

// ------------------------------------------------------------------------------- the kernel

template <int BM, int TM>
__device__ __forceinline__ int tile_row(int t, int i) {  // row of a thread's i-th output row
  if constexpr (TM % 4 == 0)
    return (i / 4) * (BM / (TM / 4)) + t * 4 + (i % 4);
  else
    return t + i * (BM / TM);
}

template <int BM, int TM>
__device__ __forceinline__ void read_frag(const float* row, int t, float (&v)[TM]) {
  if constexpr (TM % 4 == 0) {
#pragma unroll
    for (int c = 0; c < TM / 4; ++c) {
      const float4 q = *reinterpret_cast<const float4*>(row + c * (BM / (TM / 4)) + t * 4);
      v[c * 4 + 0] = q.x, v[c * 4 + 1] = q.y, v[c * 4 + 2] = q.z, v[c * 4 + 3] = q.w;
    }
  } else {
#pragma unroll
    for (int i = 0; i < TM; ++i) v[i] = row[t + i * (BM / TM)];
  }
}

// T: a conv_plan::Tile given as template constants (BM, BN, TM, TN, BK).
template <class Op, int BM, int BN, int TM, int TN, int BK, int MINB>
__global__ void __launch_bounds__((BM / TM) * (BN / TN), MINB) conv_gemm_kernel(Op op, typename Op::Index zcount) {
  using I = typename Op::Index;
  using Problem = typename Op::Problem;
  using Row = typename Op::Row;
  using Red = typename Op::Red;
  constexpr int T = (BM / TM) * (BN / TN);
  constexpr int EA = (BM * BK + T - 1) / T, EB = (BN * BK + T - 1) / T;  // loads per thread per slice
  static_assert(BM % TM == 0 && BN % TN == 0 && (TM % 4 == 0 || TM <= 4) && (TN % 4 == 0 || TN <= 4),
                "thread tiles must divide the block tile");

  __shared__ __align__(16) float As[2][BK][BM + 4];
  __shared__ __align__(16) float Bs[2][BK][BN + 4];
  // The reduction table covers groups of G slices, double-buffered: one entry per thread per
  // group, so the few divisions an entry costs are paid by G * BK threads at once, every G slices.
  constexpr int G = (T / BK) < 8 ? (T / BK) : 8;
  static_assert(G >= 2, "the reduction table needs at least two slices per group");
  __shared__ Row rows[BM];
  __shared__ Red red[2][G * BK];
  __shared__ Problem prob;  // in shared memory, not in every thread's registers

  const int t = threadIdx.x;
  const int tm = t % (BM / TM), tn = t / (BM / TM);
  const I m0 = static_cast<I>(blockIdx.x) * BM, n0 = static_cast<I>(blockIdx.y) * BN;
  float ra[EA], rb[EB];

  // z is uniform across the block, so every barrier below is reached by all threads or by none.
  for (I z = blockIdx.z; z < zcount; z += gridDim.z) {
    if (t == 0) prob = op.problem(z);
    __syncthreads();
    const Problem& pr = prob;
    if (m0 >= pr.M || n0 >= pr.N) {  // a smaller phase: nothing for this block
      __syncthreads();  // prob is rewritten for the next z
      continue;
    }
    const I kb = pr.kb, ke = pr.ke;
    const I slices = ke > kb ? (ke - kb + BK - 1) / BK : 0;

    for (int i = t; i < BM; i += T)
      if (m0 + i < pr.M) rows[i] = op.row(pr, m0 + i);
    auto fill_red = [&](I group) {  // entries of slices [group * G, group * G + G)
      const I kk = kb + group * (G * BK) + t;
      if (t < G * BK && kk < ke) red[group & 1][t] = op.red(pr, kk);
    };
    fill_red(0);
    __syncthreads();

    // Global -> registers for slice sl (reduction table entries red[(sl / G) & 1][(sl % G) * BK + kl]).
    auto load = [&](I sl) {
      const I k0 = kb + sl * BK;
      const Red* rt = &red[(sl / G) & 1][(sl % G) * BK];
#pragma unroll
      for (int it = 0; it < EA; ++it) {
        const int e = t + it * T;
        const int ml = Op::kAlongRedA ? e / BK : e % BM, kl = Op::kAlongRedA ? e % BK : e / BM;
        const bool ok = e < BM * BK && m0 + ml < pr.M && k0 + kl < ke;
        ra[it] = ok ? op.a(pr, rows[ml], rt[kl]) : 0.0f;
      }
#pragma unroll
      for (int it = 0; it < EB; ++it) {
        const int e = t + it * T;
        const int nl = Op::kAlongRedB ? e / BK : e % BN, kl = Op::kAlongRedB ? e % BK : e / BN;
        const bool ok = e < BN * BK && n0 + nl < pr.N && k0 + kl < ke;
        rb[it] = ok ? op.b(pr, n0 + nl, rt[kl]) : 0.0f;
      }
    };
    auto store = [&](int buf) {
#pragma unroll
      for (int it = 0; it < EA; ++it) {
        const int e = t + it * T;
        const int ml = Op::kAlongRedA ? e / BK : e % BM, kl = Op::kAlongRedA ? e % BK : e / BM;
        if (e < BM * BK) As[buf][kl][ml] = ra[it];
      }
#pragma unroll
      for (int it = 0; it < EB; ++it) {
        const int e = t + it * T;
        const int nl = Op::kAlongRedB ? e / BK : e % BN, kl = Op::kAlongRedB ? e % BK : e / BN;
        if (e < BN * BK) Bs[buf][kl][nl] = rb[it];
      }
    };

    float acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
      for (int j = 0; j < TN; ++j) acc[i][j] = 0.0f;

    auto step = [&](int cur, int kl) {
      float av[TM], bv[TN];
      read_frag<BM, TM>(&As[cur][kl][0], tm, av);
      read_frag<BN, TN>(&Bs[cur][kl][0], tn, bv);
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
    };

    if (slices > 0) {
      load(0);
      store(0);
      __syncthreads();
    }
    for (I sl = 0; sl < slices; ++sl) {
      const int cur = static_cast<int>(sl & 1);
      const bool more = sl + 1 < slices;
      if (more) load(sl + 1);  // in flight while this slice is multiplied
      const I left = ke - (kb + sl * BK);
      if (left >= BK) {
#pragma unroll
        for (int kl = 0; kl < BK; ++kl) step(cur, kl);
      } else {
        for (int kl = 0; kl < static_cast<int>(left); ++kl) step(cur, kl);  // last slice: no padding FMAs
      }
      // Buffer cur ^ 1 was last read before the barrier that ended slice sl - 1. The next group's
      // table buffer was last read by the loads of iteration sl - 2 (slice sl - 1, the previous
      // group); it is first read by the loads of iteration sl + G - 1.
      if (more) store(cur ^ 1);
      if (sl % G == 0 && (sl / G + 1) * G < slices) fill_red(sl / G + 1);
      __syncthreads();
    }

#pragma unroll
    for (int i = 0; i < TM; ++i) {
      const int ml = tile_row<BM, TM>(tm, i);
      const I m = m0 + ml;
      if (m >= pr.M) continue;
#pragma unroll
      for (int j = 0; j < TN; ++j) {
        const I n = n0 + tile_row<BN, TN>(tn, j);
        if (n < pr.N) op.store(pr, rows[ml], m, n, acc[i][j]);
      }
    }
    __syncthreads();  // rows[] and red[] are refilled for the next z
  }
}

// --------------------------------------------------------------------------- reductions

// grad_w[i] = sum over splits, in split order, of the partial sums.
template <class I>
__global__ void sum_splits_kernel(const float* __restrict__ ws, float* __restrict__ gw, I total, I splits) {
  for (I i = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<I>(gridDim.x) * blockDim.x) {
    float s = 0.0f;
    for (I k = 0; k < splits; ++k) s += ws[k * total + i];
    gw[i] = s;
  }
}

constexpr int kBiasThreads = 256;

// Block-wide sum of one double per thread (blockDim.x == kBiasThreads): warp shuffles, then the
// warps' sums in warp order. The result is valid in thread 0.
__device__ __forceinline__ double block_sum(double v, double* warp_sums) {
#pragma unroll
  for (int off = 16; off > 0; off /= 2) v += __shfl_down_sync(0xffffffffu, v, off);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  double s = 0;
  if (threadIdx.x == 0)
    for (int k = 0; k < kBiasThreads / 32; ++k) s += warp_sums[k];
  __syncthreads();
  return s;
}

// grad_b[k] = sum over n, p, q of grad_out[n][k][p][q], in two passes: block (x: channel k, y:
// chunk) sums its share of the channel's N*PQ terms (float4 loads along pq when PQ % 4 == 0 and
// grad_out is 16-byte aligned) in double and writes one partial (or, with one chunk, grad_b);
// bias_chunks_kernel adds the partials of a channel in chunk order. Deterministic.
template <class I>
__global__ void __launch_bounds__(kBiasThreads) bias_partial_kernel(const float* __restrict__ go,
                                                                    double* __restrict__ partial,
                                                                    float* __restrict__ gb, I N, I K, I PQ,
                                                                    I chunks, bool vec) {
  __shared__ double warp_sums[kBiasThreads / 32];
  const I total = N * PQ, per = (total + chunks - 1) / chunks;
  for (I k = blockIdx.x; k < K; k += gridDim.x)
    for (I chunk = blockIdx.y; chunk < chunks; chunk += gridDim.y) {
      const I begin = chunk * per < total ? chunk * per : total, end = begin + per < total ? begin + per : total;
      double s = 0;
      if (vec) {  // PQ % 4 == 0: four consecutive terms never cross an image; begin may not be aligned
        I e = begin + threadIdx.x * 4;
        const I head = (4 - begin % 4) % 4;
        if (threadIdx.x < head && begin + threadIdx.x < end) {
          const I n = (begin + threadIdx.x) / PQ, pq = (begin + threadIdx.x) % PQ;
          s += go[(n * K + k) * PQ + pq];
        }
        for (e = begin + head + static_cast<I>(threadIdx.x) * 4; e + 3 < end; e += kBiasThreads * 4) {
          const I n = e / PQ, pq = e - n * PQ;
          const float4 v = *reinterpret_cast<const float4*>(go + (n * K + k) * PQ + pq);
          s += double(v.x) + double(v.y) + double(v.z) + double(v.w);
        }
        for (; e < end; ++e) {  // at most 3 left, all in this thread's last group
          const I n = e / PQ, pq = e - n * PQ;
          s += go[(n * K + k) * PQ + pq];
        }
      } else {
        for (I e = begin + threadIdx.x; e < end; e += kBiasThreads) {
          const I n = e / PQ, pq = e - n * PQ;
          s += go[(n * K + k) * PQ + pq];
        }
      }
      s = block_sum(s, warp_sums);
      if (threadIdx.x == 0) {
        if (chunks == 1)
          gb[k] = static_cast<float>(s);
        else
          partial[chunk * K + k] = s;
      }
    }
}

template <class I>
__global__ void bias_chunks_kernel(const double* __restrict__ partial, float* __restrict__ gb, I K, I chunks) {
  for (I k = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; k < K; k += static_cast<I>(gridDim.x) * blockDim.x) {
    double s = 0;
    for (I c = 0; c < chunks; ++c) s += partial[c * K + k];
    gb[k] = static_cast<float>(s);
  }
}

}  // namespace fastlayers::cuda::conv_detail
