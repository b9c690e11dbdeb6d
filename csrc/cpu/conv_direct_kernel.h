// The micro-kernel of conv_direct.h, written once over a vector type V (V::L lanes) and included by
// conv_direct_avx512.cpp and conv_direct_avx2.cpp, each compiled with its own ISA flags.
// V provides: reg, zero(), load(p), bcast(p), fma(a, b, c), add, max0, store(p, v), copy_n(dst, src, n <= L) (masked).
#pragma once
#include <algorithm>
#include <cstring>

#include "cpu/conv_direct.h"

namespace fastlayers::cpu::direct_kernel {

// One block: output channels [k0, k0 + rows) (rows <= MR) x grid pixels [j0, j0 + NV*L) (only
// those below jend are stored). Accumulators stay in registers over the whole reduction
// (Cg * RS taps); per tap: NV loads of x, MR broadcasts of w, MR*NV FMAs.
template <class V, int MR, int NV>
inline void block(const DirectImage& d, index_t k0, index_t rows, index_t j0, index_t jend) {
  constexpr int L = V::L;
  typename V::reg acc[MR][NV];
  for (int m = 0; m < MR; ++m)
    for (int v = 0; v < NV; ++v) acc[m][v] = V::zero();
  const index_t CRS = d.Cg * d.RS;
  // Rows past the last channel repeat the last one (computed, not stored): no tail kernel.
  const float* wr[MR];
  for (int m = 0; m < MR; ++m) wr[m] = d.w + (k0 + std::min<index_t>(m, rows - 1)) * CRS;
  const int* poff = d.poff;
  const index_t RS = d.RS;
  for (index_t c = 0; c < d.Cg; ++c) {
    const float* xc = d.xs + c * d.CP + j0;
    const index_t wc = c * RS;
    for (index_t rt = 0; rt < RS; ++rt) {
      const float* xp = xc + poff[rt];
      typename V::reg xv[NV];
      for (int v = 0; v < NV; ++v) xv[v] = V::load(xp + v * L);
      for (int m = 0; m < MR; ++m) {
        const typename V::reg wv = V::bcast(wr[m] + wc + rt);
        for (int v = 0; v < NV; ++v) acc[m][v] = V::fma(wv, xv[v], acc[m][v]);
      }
    }
  }
  // Epilogue: bias, ReLU, then the grid's rows written to y without their dropped columns. The
  // row segments are the same for every output channel: found once (one division per block).
  struct Seg {
    index_t src, dst, n;
  };
  Seg seg[NV * L + 1];
  int nseg = 0;
  {
    const index_t je = std::min(jend, j0 + NV * L);
    index_t j = j0, p = j0 / d.Wq, q = j0 - p * d.Wq;
    while (j < je) {
      const index_t n = std::min(je - j, d.Wq - q);
      if (q < d.Q) seg[nseg++] = Seg{j - j0, p * d.Q + q, std::min(n, d.Q - q)};
      j += n;
      ++p;
      q = 0;
    }
  }
  alignas(64) float buf[NV * L];
  for (int m = 0; m < MR; ++m) {
    if (m >= rows) break;
    const index_t k = k0 + m;
    const typename V::reg bv = d.bias != nullptr ? V::bcast(d.bias + k) : V::zero();
    for (int v = 0; v < NV; ++v) {
      typename V::reg r = V::add(acc[m][v], bv);
      if (d.relu) r = V::max0(r);
      V::store(buf + v * L, r);
    }
    float* yk = d.y + k * d.P * d.Q;
    for (int i = 0; i < nseg; ++i)
      for (index_t e = 0; e < seg[i].n; e += L)
        V::copy_n(yk + seg[i].dst + e, buf + seg[i].src + e, std::min<index_t>(L, seg[i].n - e));
  }
}

// The grid is cut into blocks of NV vectors; a last block of one vector (broadcast-bound: MR
// broadcasts per MR FMAs) is avoided where possible by making the last two blocks 2 + 2 vectors
// (7x7: 63 pixels = 4 vectors, 3 + 1 -> 2 + 2).
template <class V, int MR, int NV>
inline void blocks(const DirectImage& d, index_t b0, index_t b1) {
  static_assert(NV == 3, "the 2 + 2 split assumes blocks of 3 vectors");
  constexpr index_t L = V::L;
  const index_t kblocks = (d.Kg + MR - 1) / MR;
  const index_t J = d.P * d.Wq, nvec = (J + L - 1) / L, nb = (nvec + NV - 1) / NV;
  const bool split = nvec >= 4 && nvec % NV == 1;
  for (index_t b = b0; b < b1; ++b) {
    const index_t jb = b / kblocks, kb = b - jb * kblocks;
    const index_t k0 = kb * MR, rows = std::min<index_t>(MR, d.Kg - k0);
    index_t v0 = jb * NV, nv = std::min<index_t>(NV, nvec - v0);
    if (split && jb >= nb - 2) v0 = (nb - 2) * NV + (jb - (nb - 2)) * 2, nv = 2;
    const index_t j0 = v0 * L;
    if (nv == 3)
      block<V, MR, 3>(d, k0, rows, j0, J);
    else if (nv == 2)
      block<V, MR, 2>(d, k0, rows, j0, J);
    else
      block<V, MR, 1>(d, k0, rows, j0, J);
  }
}

// Backward-weight tile: the 9 taps of channel c x KV vectors of output channels [k0, k0 + KV*L),
// summed over the grid: per pixel KV loads of goT, 9 broadcasts of x, 9*KV FMAs.
template <class V, int KV>
inline void bw_tile(const DirectBwImage& d, index_t c, index_t k0) {
  constexpr int L = V::L;
  typename V::reg acc[9][KV];
  float* gw = d.gwT + c * 9 * d.Kv + k0;
  for (int i = 0; i < 9; ++i)
    for (int v = 0; v < KV; ++v) acc[i][v] = V::loadu(gw + i * d.Kv + v * L);
  const int o0 = d.poff[0], o1 = d.poff[1], o2 = d.poff[2], o3 = d.poff[3], o4 = d.poff[4], o5 = d.poff[5],
            o6 = d.poff[6], o7 = d.poff[7], o8 = d.poff[8];
  const float* xc = d.xs + c * d.CP;
  const float* g = d.goT + k0;
  for (index_t j = 0; j < d.J; ++j, g += d.Kv) {
    typename V::reg gv[KV];
    for (int v = 0; v < KV; ++v) gv[v] = V::loadu(g + v * L);
    const float* xj = xc + j;
    const int offs[9] = {o0, o1, o2, o3, o4, o5, o6, o7, o8};
    for (int i = 0; i < 9; ++i) {
      const typename V::reg b = V::bcast(xj + offs[i]);
      for (int v = 0; v < KV; ++v) acc[i][v] = V::fma(b, gv[v], acc[i][v]);
    }
  }
  for (int i = 0; i < 9; ++i)
    for (int v = 0; v < KV; ++v) V::storeu(gw + i * d.Kv + v * L, acc[i][v]);
}

template <class V, int KVMAX>
inline void bw_image(const DirectBwImage& d) {
  constexpr index_t L = V::L;
  for (index_t c = 0; c < d.Cg; ++c) {
    index_t k0 = 0;
    for (; k0 + KVMAX * L <= d.Kv; k0 += KVMAX * L) bw_tile<V, KVMAX>(d, c, k0);
    for (; k0 < d.Kv; k0 += L) bw_tile<V, 1>(d, c, k0);
  }
}

}  // namespace fastlayers::cpu::direct_kernel
