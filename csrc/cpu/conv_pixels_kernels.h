// Kernels of the pixels-in-lanes direct convolution (reasoning: conv_pixels.h), written once as
// templates on the vector ISA `S` (simd_avx512.h: 16 pixels a vector, simd_avx2.h: 8) and
// instantiated by conv_pixels_avx512.cpp and conv_pixels_avx2.cpp. Include only from those two.
#pragma once
#include <algorithm>
#include <array>
#include <cstddef>
#include <type_traits>
#include <utility>

#include "cpu/conv_pixels.h"

// Internal linkage (the unnamed namespace): the two files compile these with different ISA flags.
namespace fastlayers::cpu::pixconv {
namespace {


using Padded = PixconvPadded;  // its geometry: pixconv_padded (conv_pixels.cpp), the same for both ISAs
inline Padded padded_geom(const Conv2dShape& s, bool slack = false) { return pixconv_padded(s, slack); }

void pad_rows(const Conv2dShape& s, const Padded& g, const float* x, float* xp, index_t i0, index_t i1) {
  for (index_t c = 0; c < s.C; ++c)
    for (index_t i = i0; i < i1; ++i) {
      float* row = xp + c * g.plane + i * g.Wp;
      const index_t ih = i - s.pad_h;
      if (ih < 0 || ih >= s.H) {
        std::fill(row, row + g.Wp, 0.0f);
        continue;
      }
      std::fill(row, row + s.pad_w, 0.0f);
      std::copy(x + (c * s.H + ih) * s.W, x + (c * s.H + ih + 1) * s.W, row + s.pad_w);
      std::fill(row + s.pad_w + s.W, row + g.Wp, 0.0f);
    }
}

// The subsampled copy (PixconvPadded::subsampled: a 1x1 stride-2 layer): xs[c][i][j] = x[c][2i][2j]
// for rows [i0, i1), P x Q a plane, L columns at a time by the even lanes of two loads.
template <class S>
void subsample_rows(const Conv2dShape& s, const float* x, float* xs, index_t i0, index_t i1) {
  constexpr int L = S::L;
  const index_t P = s.P, Q = s.Q, H = s.H, W = s.W;
  for (index_t c = 0; c < s.C; ++c)
    for (index_t i = i0; i < i1; ++i) {
      const float* src = x + (c * H + 2 * i) * W;
      float* dst = xs + (c * P + i) * Q;
      for (index_t j0 = 0; j0 < Q; j0 += L) {
        const int nq = static_cast<int>(std::min<index_t>(L, Q - j0));
        const int span = static_cast<int>(std::min<index_t>(2 * nq - 1, W - 2 * j0));  // floats to read
        const int lo = std::min(span, L), hi = std::max(span - L, 0);
        S::store_n(dst + j0, S::even_of(S::load_n(src + 2 * j0, lo), S::load_n(src + 2 * j0 + L, hi)), nq);
      }
    }
}

// One L-pixel segment of an output row (nq pixels, the row's last may be partial) for rows, below.
// SPLIT (stride 1, AVX-512): the segment's first n1 pixels end a row and the rest start the next,
// whose inputs lie `delta` floats further on than a straight run would put them.
template <class S, int TAPS, int STRIDE, bool FULL, bool SPLIT = false>
[[gnu::always_inline]] inline void rows_segment(const Conv2dShape& s, const float* base, const index_t* off,
                                                const float* w, const float* bias, const float* rq, bool relu,
                                                float* yq, int nq, int n1 = 0, std::ptrdiff_t delta = 0) {
  using Vec = typename S::V;
  constexpr int L = S::L;
  const index_t K = s.K, PQ = s.P * s.Q;
  const Vec zero = S::zero();
  const int span = 2 * nq - 1;  // stride 2: floats from the first pixel to the last
  const int lo = std::min(span, L), hi = std::max(span - L, 0);
  // The taps' input vectors are gathered once per segment, except at stride 1 with more taps than
  // fit in registers beside the sums: then each channel block loads them where they are (GCC keeps
  // no 25 vectors in registers across the blocks: gathered first, they went through a copy on the
  // stack, 9 % of LeNet-5's conv1). Stride 2: the even lanes of two loads.
  constexpr bool kInPlace = STRIDE == 1 && TAPS > 20;
  Vec xv[kInPlace ? 1 : TAPS];
  auto load1 = [&](int tap) -> Vec {  // stride 1: the tap's vector
    if constexpr (SPLIT)
      return S::load_split(base + off[tap], n1, delta, nq);
    else
      return FULL ? S::load(base + off[tap]) : S::load_n(base + off[tap], nq);
  };
  if constexpr (!kInPlace)
    for (int tap = 0; tap < TAPS; ++tap) {
      if (STRIDE == 1)
        xv[tap] = load1(tap);
      else  // (the second load stays masked when FULL: 2L - 1 floats, the last may be past the row)
        xv[tap] = S::even_of(FULL ? S::load(base + off[tap]) : S::load_n(base + off[tap], lo),
                             S::load_n(base + off[tap] + L, hi));
    }
  auto x_at = [&](int tap) -> Vec {
    if constexpr (kInPlace)
      return load1(tap);
    else
      return xv[tap];
  };
  auto finish = [&](Vec v, index_t k) {
    if (rq != nullptr) v = S::add(v, FULL ? S::load(rq + k * PQ) : S::load_n(rq + k * PQ, nq));
    if (relu) v = S::max(zero, v);  // the second operand when NaN: NaN stays NaN, as the op
    if (FULL)
      S::store(yq + k * PQ, v);
    else
      S::store_n(yq + k * PQ, v, nq);
  };
  // KB channels from k, a chain of FMAs each: 8 at a time where the taps are loaded per block
  // (AVX-512, 25 taps: the CNN's conv1, 1 -> 32 5x5, batch 64, 0.93 -> 0.89-0.90 ms), and the 4-7
  // left in one pass (LeNet-5's 6: its inference at batch 64 0.68 -> 0.65-0.66 ms); else 4 (with
  // 9-18 taps gathered in registers, 8 sums spilled them: 1 -> 16 3x3 0.18 -> 0.24 ms).
  index_t k = 0;
  auto block = [&](auto kb_const) {
    constexpr int KB = decltype(kb_const)::value;
    Vec a[KB];
#pragma GCC unroll 8
    for (int i = 0; i < KB; ++i) a[i] = bias != nullptr ? S::set1(bias[k + i]) : zero;
    const float* wk = w + k * TAPS;
    for (int tap = 0; tap < TAPS; ++tap) {
      const Vec xt = x_at(tap);
#pragma GCC unroll 8
      for (int i = 0; i < KB; ++i) a[i] = S::fmadd(S::set1(wk[i * TAPS + tap]), xt, a[i]);
    }
#pragma GCC unroll 8
    for (int i = 0; i < KB; ++i) finish(a[i], k + i);
  };
  constexpr int kWide = L == 16 && kInPlace ? 8 : 4;
  for (; k + kWide <= K; k += kWide) block(std::integral_constant<int, kWide>{});
  if constexpr (kWide == 8) {
    switch (K - k) {
      case 4: block(std::integral_constant<int, 4>{}); k += 4; break;
      case 5: block(std::integral_constant<int, 5>{}); k += 5; break;
      case 6: block(std::integral_constant<int, 6>{}); k += 6; break;
      case 7: block(std::integral_constant<int, 7>{}); k += 7; break;
      default: break;
    }
  }
  // The last K % 4 channels together, two chains each (even and odd taps): one channel at a time,
  // each a single chain of TAPS dependent FMAs, waited on the FMA latency.
  auto tail = [&](auto r_const) {
    constexpr int R = decltype(r_const)::value;
    Vec a[R][2];
#pragma GCC unroll 4
    for (int i = 0; i < R; ++i) {
      a[i][0] = bias != nullptr ? S::set1(bias[k + i]) : zero;
      a[i][1] = zero;
    }
    const float* wk = w + k * TAPS;
#pragma GCC unroll 32
    for (int tap = 0; tap < TAPS; ++tap) {
      const Vec xt = x_at(tap);
#pragma GCC unroll 4
      for (int i = 0; i < R; ++i) a[i][tap & 1] = S::fmadd(S::set1(wk[i * TAPS + tap]), xt, a[i][tap & 1]);
    }
#pragma GCC unroll 4
    for (int i = 0; i < R; ++i) finish(S::add(a[i][0], a[i][1]), k + i);
  };
  switch (K - k) {
    case 1: tail(std::integral_constant<int, 1>{}); break;
    case 2: tail(std::integral_constant<int, 2>{}); break;
    case 3: tail(std::integral_constant<int, 3>{}); break;
    default: break;
  }
}

// Output rows [p0, p1): TAPS = C*R*S input vectors per L-pixel segment, then per output channel
// TAPS FMAs (blocks of channels, a chain each: rows_segment) and one masked store. The loads are
// masked to the segment's own pixels (nq; 2 nq - 1 floats for stride 2), so that they never read
// past a row: x can be read in place. Whole segments (all L pixels) take a copy of the code with
// plain loads and stores (rows_segment<FULL>), not a choice between them at every load and store.
template <class S, int TAPS, int STRIDE>
void rows(const Conv2dShape& s, const Padded& g, const float* xp, const float* w, const float* bias,
          const float* res, bool relu, float* y, index_t p0, index_t p1) {
  constexpr int L = S::L;
  const index_t Q = s.Q, R = s.R, SW = s.S;
  // Offsets of the taps in the padded image (per segment start).
  index_t off[TAPS] = {};  // zeroed: GCC 13 cannot see that C * R * S == TAPS fills it
  for (index_t c = 0, tap = 0; c < s.C; ++c)
    for (index_t r = 0; r < R; ++r)
      for (index_t t = 0; t < SW; ++t, ++tap) off[tap] = c * g.plane + r * g.Wp + t;
  // Stride 1 with rows wider than a vector but not a multiple of it (the CNN's conv1: 24 = 16 + 8,
  // LeNet-5's: 28 = 16 + 12): the pixels of rows [p0, p1) are taken as one run, L at a time, a
  // vector that crosses into the next row loading its two parts apart (rows_segment<SPLIT>). The
  // output plane is one run already, so its stores are whole vectors. From 8 output channels: the
  // split loads are paid once per segment (per channel block with 25 taps), and with fewer
  // channels they cost what the saved lanes give (batch 64, 1 thread, A/B in alternating
  // processes: CNN inference 2.03-2.06 -> 1.87-1.92 ms, its conv1 1 -> 32 5x5 0.93 -> 0.79 ms;
  // LeNet-5's conv1, 6 channels, 0.67-0.69 ms either way).
  if constexpr (STRIDE == 1 && L == 16) {
    if (Q > L && Q % L != 0 && s.K >= 8) {
      const index_t i1 = p1 * Q, delta = g.Wp - Q;
      for (index_t i = p0 * Q; i < i1; i += L) {
        const int n = static_cast<int>(std::min<index_t>(L, i1 - i));
        const index_t p = i / Q, q = i % Q;
        const int n1 = static_cast<int>(std::min<index_t>(n, Q - q));
        const float* base = xp + p * g.Wp + q;
        const float* rq = res != nullptr ? res + i : nullptr;
        if (n1 < n)
          rows_segment<S, TAPS, 1, false, true>(s, base, off, w, bias, rq, relu, y + i, n, n1, delta);
        else if (n == L)
          rows_segment<S, TAPS, 1, true>(s, base, off, w, bias, rq, relu, y + i, n);
        else
          rows_segment<S, TAPS, 1, false>(s, base, off, w, bias, rq, relu, y + i, n);
      }
      return;
    }
  }
  for (index_t p = p0; p < p1; ++p)
    for (index_t q0 = 0; q0 < Q; q0 += L) {
      const int nq = static_cast<int>(std::min<index_t>(L, Q - q0));
      const float* base = xp + p * STRIDE * g.Wp + q0 * STRIDE;
      const float* rq = res != nullptr ? res + p * Q + q0 : nullptr;
      if (nq == L)
        rows_segment<S, TAPS, STRIDE, true>(s, base, off, w, bias, rq, relu, y + p * Q + q0, nq);
      else
        rows_segment<S, TAPS, STRIDE, false>(s, base, off, w, bias, rq, relu, y + p * Q + q0, nq);
    }
}

// ---- Register-blocked forward, stride 1, for AVX2 (where it runs: pixconv_blocked_rows, with the
// figures, in conv_pixels.cpp). Output rows [p0, p1) cut into L-pixel segments (the last of a row
// partial), taken SB consecutive segments at a time in row-major order (a block may carry on into
// the next row), and the output channels in blocks of at most KB: KB x SB sums in registers, and per tap SB input vectors and KB broadcast
// weights, so that every sum is its own chain of FMAs (12 chains; two FMA pipes of latency 4 need
// 8) and no input vector is kept across channel blocks.
struct Seg {
  const float* x;  // the segment's first tap read (tap offsets added per tap)
  float* y;        // its first output (channel 0)
  const float* res;
  int n;           // pixels (1..L)
};

// FULL: every segment has all L pixels, so the loads and stores are whole vectors with no test of
// seg[j].n: a copy of the block without them (the CNN's conv1, Q = 24, all segments whole, one
// thread, batch 100, paired medians of 21: 1.25-1.29x; 2 threads 1.36x).
template <class S, int KB, int SB, bool FULL>
[[gnu::always_inline]] inline void seg_block(const Seg* seg, const index_t* off, index_t taps, const float* w,
                                             const float* bias, bool relu, index_t PQ) {
  using Vec = typename S::V;
  constexpr int L = S::L;
  Vec acc[KB][SB];
#pragma GCC unroll 16
  for (int i = 0; i < KB; ++i) {
    const Vec b = bias != nullptr ? S::set1(bias[i]) : S::zero();
#pragma GCC unroll 4
    for (int j = 0; j < SB; ++j) acc[i][j] = b;
  }
  for (index_t tap = 0; tap < taps; ++tap) {
    Vec xv[SB];
#pragma GCC unroll 4
    for (int j = 0; j < SB; ++j) {
      const float* p = seg[j].x + off[tap];
      xv[j] = FULL || seg[j].n == L ? S::load(p) : S::load_n(p, seg[j].n);
    }
#pragma GCC unroll 16
    for (int i = 0; i < KB; ++i) {
      const Vec wv = S::set1(w[i * taps + tap]);
#pragma GCC unroll 4
      for (int j = 0; j < SB; ++j) acc[i][j] = S::fmadd(wv, xv[j], acc[i][j]);
    }
  }
  const Vec zero = S::zero();
#pragma GCC unroll 16
  for (int i = 0; i < KB; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < SB; ++j) {
      Vec v = acc[i][j];
      if (seg[j].res != nullptr) v = S::add(v, FULL ? S::load(seg[j].res + i * PQ) : S::load_n(seg[j].res + i * PQ, seg[j].n));
      if (relu) v = S::max(zero, v);  // the second operand when NaN: NaN stays NaN, as the op
      if (FULL)
        S::store(seg[j].y + i * PQ, v);
      else
        S::store_n(seg[j].y + i * PQ, v, seg[j].n);
    }
}

// The widest block: KB x SB sums + SB input vectors + 1 broadcast within AVX2's 16 registers.
constexpr int kPixKB = 6, kPixSB = 2;

// One block of KB output channels (y, bias, res and w already at its first) over every segment
// of rows [p0, p1), two segments at a time.
template <class S, int KB>
void block_rows(const Conv2dShape& s, const Padded& g, const float* xp, const index_t* off, index_t taps,
                const float* w, const float* bias, const float* res, bool relu, float* y, index_t p0, index_t p1) {
  constexpr int L = S::L;
  const index_t Q = s.Q, PQ = s.P * s.Q, nseg = (Q + L - 1) / L, segs = (p1 - p0) * nseg;
  index_t p = p0, qi = 0;  // the next segment: row p, segment qi of its nseg
  for (index_t m0 = 0; m0 < segs; m0 += kPixSB) {
    const int sb = static_cast<int>(std::min<index_t>(kPixSB, segs - m0));
    Seg seg[kPixSB];
    bool full = true;
    for (int j = 0; j < sb; ++j) {
      const index_t q0 = qi * L;
      seg[j].x = xp + p * g.Wp + q0;
      seg[j].y = y + p * Q + q0;
      seg[j].res = res != nullptr ? res + p * Q + q0 : nullptr;
      seg[j].n = static_cast<int>(std::min<index_t>(L, Q - q0));
      full = full && seg[j].n == L;
      if (++qi == nseg) qi = 0, ++p;
    }
    if (sb == kPixSB) {
      if (full)
        seg_block<S, KB, kPixSB, true>(seg, off, taps, w, bias, relu, PQ);
      else
        seg_block<S, KB, kPixSB, false>(seg, off, taps, w, bias, relu, PQ);
    } else {
      seg_block<S, KB, 1, false>(seg, off, taps, w, bias, relu, PQ);
    }
  }
}

using BlockRowsFn = void (*)(const Conv2dShape&, const Padded&, const float*, const index_t*, index_t, const float*,
                             const float*, const float*, bool, float*, index_t, index_t);

template <class S, std::size_t... I>
constexpr std::array<BlockRowsFn, sizeof...(I)> block_rows_table(std::index_sequence<I...>) {
  return {&block_rows<S, static_cast<int>(I) + 1>...};
}

// Channel block by channel block, each over all the rows' segments (the input rows stay in L1):
// one call per block of output planes, the segment pairs a loop inside it with seg_block inlined,
// rather than an indirect call per (segment pair, block) that set up its segments again. Same
// output to the bit; the CNN's conv1 (100 images) 1.13x at 1 thread and 1.10x at 2, LeNet-5's
// conv1 (64 images) 1.18x; the 1x1 stride-2 layers even. The channel blocks are counted, not divided
// out (two 64-bit divisions per block and segment pair cost conv1 4-5 %).
template <class S>
void rows_blocked(const Conv2dShape& s, const Padded& g, const float* xp, const float* w, const float* bias,
                  const float* res, bool relu, float* y, index_t p0, index_t p1) {
  constexpr int KBM = kPixKB;
  static constexpr auto by_kb = block_rows_table<S>(std::make_index_sequence<KBM>{});
  const index_t K = s.K, PQ = s.P * s.Q, taps = s.C * s.R * s.S;
  index_t off[kPixconvMaxBlockedTaps];
  for (index_t c = 0, tap = 0; c < s.C; ++c)
    for (index_t r = 0; r < s.R; ++r)
      for (index_t t = 0; t < s.S; ++t, ++tap) off[tap] = c * g.plane + r * g.Wp + t;
  // Channel blocks as even as possible (32 channels on AVX2: 6, 6, 5, 5, 5, 5, not 6 x 5 + 2): the
  // first krem blocks have one channel more.
  const index_t kblocks = (K + KBM - 1) / KBM, kq = K / kblocks, krem = K % kblocks;
  for (index_t b = 0, k0 = 0; b < kblocks; ++b) {
    const index_t kb = kq + (b < krem ? 1 : 0);
    by_kb[kb - 1](s, g, xp, off, taps, w + k0 * taps, bias != nullptr ? bias + k0 : nullptr,
                  res != nullptr ? res + k0 * PQ : nullptr, relu, y + k0 * PQ, p0, p1);
    k0 += kb;
  }
}

using RowsFn = void (*)(const Conv2dShape&, const Padded&, const float*, const float*, const float*, const float*, bool,
                        float*, index_t, index_t);

template <class S, int STRIDE, std::size_t... I>
constexpr std::array<RowsFn, sizeof...(I)> rows_table(std::index_sequence<I...>) {
  return {&rows<S, static_cast<int>(I) + 1, STRIDE>...};
}

// Backward-weight: acc[k][tap] (16 floats each, of which the first L are used: a lane is a pixel
// position within its L-pixel segment) += grad_out segment of k * the tap's input vector. Register blocks of TK channels x TT
// taps (TK + TT vectors loaded per segment for TK * TT FMAs: reloading every tap's input for each
// channel made the loads the limit, 3.8x slower on the CNN's conv1); the block's sums are loaded
// and stored once per image. The caller sums the lanes.
template <class S, int TK, int TT, int STRIDE, bool FULL>
void bw_block(const Conv2dShape& s, const Padded& g, const float* src, const float* gyn, const index_t* off,
              index_t k0, float* acc, index_t taps, index_t tap0) {
  using Vec = typename S::V;
  constexpr int L = S::L;
  const index_t P = s.P, Q = s.Q;
  Vec a[TK][TT];
  #pragma GCC unroll 8
  for (int i = 0; i < TK; ++i)
    #pragma GCC unroll 8
    for (int j = 0; j < TT; ++j) a[i][j] = S::load(acc + ((k0 + i) * taps + tap0 + j) * 16);
  index_t o[TT];
  #pragma GCC unroll 8
  for (int j = 0; j < TT; ++j) o[j] = off[tap0 + j];
  // The unroll pragmas: without them GCC kept a copy of the accumulators on the stack and stored
  // all of them every iteration (store-bound: 3.8x slower on the CNN's conv1).
  for (index_t p = 0; p < P; ++p)
    for (index_t q0 = 0; q0 < Q; q0 += L) {
      const int nq = static_cast<int>(std::min<index_t>(L, Q - q0));
      const float* base = src + p * STRIDE * g.Wp + q0 * STRIDE;
      Vec xv[TT], gv[TK];
      // Whole-vector loads from the padded copy (rows with 32 floats of slack): the lanes past the
      // segment meet grad_out's zeros.
      #pragma GCC unroll 8
      for (int j = 0; j < TT; ++j)
        xv[j] = STRIDE == 1 ? S::load(base + o[j]) : S::even_of(S::load(base + o[j]), S::load(base + o[j] + L));
      #pragma GCC unroll 8
      for (int i = 0; i < TK; ++i) {
        const float* gp = gyn + ((k0 + i) * P + p) * Q + q0;
        gv[i] = FULL ? S::load(gp) : S::load_n(gp, nq);
      }
      #pragma GCC unroll 8
      for (int i = 0; i < TK; ++i)
        #pragma GCC unroll 8
        for (int j = 0; j < TT; ++j) a[i][j] = S::fmadd(gv[i], xv[j], a[i][j]);
    }
  #pragma GCC unroll 8
  for (int i = 0; i < TK; ++i)
    #pragma GCC unroll 8
    for (int j = 0; j < TT; ++j) S::store(acc + ((k0 + i) * taps + tap0 + j) * 16, a[i][j]);
}

using BwBlockFn = void (*)(const Conv2dShape&, const Padded&, const float*, const float*, const index_t*, index_t,
                           float*, index_t, index_t);
// TK x TT sums + TT input vectors + a grad_out vector within the registers: 4 x 5 on AVX-512's 32,
// 3 x 3 on AVX2's 16. AVX2, 1 thread, per call, paired medians of 15 against the GEMM path: the
// CNN's conv1 (1 -> 32 5x5, batch 100) 4 x 5 1.28x (spilling), 4 x 3 1.26x, 3 x 4 1.30x, 2 x 4
// 1.53x, 3 x 3 1.68-1.88x; the small ResNet's conv1 (1 -> 16 3x3 p1, batch 64) 2.26 / 2.15 / 2.10 /
// 2.70 / 2.83-2.92x.
template <class S>
constexpr int kBwTK = S::L == 16 ? 4 : 3;
template <class S>
constexpr int kBwTT = S::L == 16 ? 5 : 3;

template <class S, int STRIDE, bool FULL, std::size_t... I>
constexpr std::array<BwBlockFn, sizeof...(I)> bw_block_table(std::index_sequence<I...>) {
  return {&bw_block<S, static_cast<int>(I) / kBwTT<S> + 1, static_cast<int>(I) % kBwTT<S> + 1, STRIDE, FULL>...};
}

template <class S>
void bw_images(const Conv2dShape& s, const float* x, const float* gy, index_t n0, index_t n1, float* acc, float* xp) {
  constexpr auto blocks = std::make_index_sequence<kBwTK<S> * kBwTT<S>>{};
  static constexpr auto table1 = bw_block_table<S, 1, false>(blocks), table1_full = bw_block_table<S, 1, true>(blocks);
  static constexpr auto table2 = bw_block_table<S, 2, false>(blocks), table2_full = bw_block_table<S, 2, true>(blocks);
  // Rows of whole segments (Q a multiple of L) load grad_out without masks: the CNN's conv1 (Q = 24),
  // batch 100, paired medians of 21, 1 and 2 threads: 1.13x.
  const bool full = s.Q % S::L == 0;
  const auto& table = s.stride_h == 1 ? (full ? table1_full : table1) : (full ? table2_full : table2);
  const Padded g = padded_geom(s, true);
  const index_t K = s.K, taps = s.C * s.R * s.S;
  index_t off[kPixconvMaxTaps];
  for (index_t c = 0, tap = 0; c < s.C; ++c)
    for (index_t r = 0; r < s.R; ++r)
      for (index_t t = 0; t < s.S; ++t, ++tap) off[tap] = c * g.plane + r * g.Wp + t;
  for (index_t n = n0; n < n1; ++n) {
    pad_rows(s, g, x + n * s.C * s.H * s.W, xp, 0, g.Hp);
    const float* src = xp;
    const float* gyn = gy + n * K * s.P * s.Q;
    for (index_t k0 = 0; k0 < K; k0 += kBwTK<S>) {
      const index_t tk = std::min<index_t>(kBwTK<S>, K - k0);
      for (index_t t0 = 0; t0 < taps; t0 += kBwTT<S>) {
        const index_t tt = std::min<index_t>(kBwTT<S>, taps - t0);
        table[(tk - 1) * kBwTT<S> + (tt - 1)](s, g, src, gyn, off, k0, acc, taps, t0);
      }
    }
  }
}



// ---- The entry points conv_pixels.cpp calls, for one ISA.
template <class S>
void forward_image(const Conv2dShape& s, const float* x, const float* w, const float* bias, const float* res, bool relu,
                   float* y, float* ws, int t, int team) {
  static constexpr auto by_taps1 = rows_table<S, 1>(std::make_index_sequence<kPixconvMaxTaps>{});
  static constexpr auto by_taps2 = rows_table<S, 2>(std::make_index_sequence<kPixconvMaxTaps>{});
  const Padded g = padded_geom(s);
  if (g.subsampled) {
    subsample_rows<S>(s, x, ws, g.Hp * t / team, g.Hp * (t + 1) / team);
    if (team > 1) {
#pragma omp barrier
    }
  } else if (g.copy) {
    pad_rows(s, g, x, ws, g.Hp * t / team, g.Hp * (t + 1) / team);
    if (team > 1) {
#pragma omp barrier
    }
  }
  const index_t taps = s.C * s.R * s.S;
  const float* xp = g.copy ? ws : x;
  const index_t p0 = s.P * t / team, p1 = s.P * (t + 1) / team;
  bool done = false;
  if constexpr (S::L == 8) {  // (not instantiated for AVX-512)
    if (pixconv_blocked_rows(s)) rows_blocked<S>(s, g, xp, w, bias, res, relu, y, p0, p1), done = true;
  }
  if (!done) (s.stride_h == 1 ? by_taps1 : by_taps2)[taps - 1](s, g, xp, w, bias, res, relu, y, p0, p1);
  if (team > 1) {
#pragma omp barrier
  }
}

}  // namespace
}  // namespace fastlayers::cpu::pixconv
