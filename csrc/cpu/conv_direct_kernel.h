// The micro-kernel of conv_direct.h, written once over a vector type V (V::L lanes) and included by
// conv_direct_avx512.cpp and conv_direct_avx2.cpp, each compiled with its own ISA flags.
// V provides: reg, zero(), load(p), bcast(p), fma(a, b, c), add, max0, store(p, v).
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
  // Epilogue: bias, ReLU, then the grid's rows written to y without their dropped columns.
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
    index_t j = j0;
    const index_t je = std::min(jend, j0 + NV * L);
    index_t p = j / d.Wq, q = j - p * d.Wq;
    while (j < je) {
      const index_t n = std::min(je - j, d.Wq - q);
      if (q < d.Q) {
        const index_t m2 = std::min(n, d.Q - q);
        const float* src = buf + (j - j0);
        float* dst = yk + p * d.Q + q;
        for (index_t i = 0; i < m2; ++i) dst[i] = src[i];
      }
      j += n;
      ++p;
      q = 0;
    }
  }
}

template <class V, int MR, int NV>
inline void blocks(const DirectImage& d, index_t b0, index_t b1) {
  constexpr index_t JB = NV * V::L;
  const index_t kblocks = (d.Kg + MR - 1) / MR;
  const index_t J = d.P * d.Wq;
  for (index_t b = b0; b < b1; ++b) {
    const index_t jb = b / kblocks, kb = b - jb * kblocks;
    const index_t j0 = jb * JB, k0 = kb * MR, rows = std::min<index_t>(MR, d.Kg - k0);
    const index_t left = J - j0;  // > 0
    if (left >= JB)
      block<V, MR, NV>(d, k0, rows, j0, J);
    else if (NV >= 3 && left > 2 * V::L)
      block<V, MR, (NV >= 3 ? 3 : NV)>(d, k0, rows, j0, J);
    else if (NV >= 2 && left > V::L)
      block<V, MR, (NV >= 2 ? 2 : NV)>(d, k0, rows, j0, J);
    else
      block<V, MR, 1>(d, k0, rows, j0, J);
  }
}

}  // namespace fastlayers::cpu::direct_kernel
