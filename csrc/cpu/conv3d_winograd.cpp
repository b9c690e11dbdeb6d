#include "cpu/conv3d_winograd.h"

// Layout. The output is cut into blocks of (one image) x (nod consecutive output slices) x (ntp
// tile positions of the M x M tiling of a P x Q plane). A block's columns are (slice, tile) pairs,
// tile fastest. Its input slices are the nod + (T-1)*dil_d slices the block's taps reach; their
// patches are transformed once into V[xi][c][col] (col = (input slice - first) * ntp + tile, zero
// for slices in the depth padding). For tap t, output column j reads V column j + t*dil_d*ntp, so
// the GEMM of position xi, group g and tap t is
//     Mx[xi][g's outputs][0:cols] (+)= U[xi][g][t] (Og x Ig, packed once per call) * V[xi][g's inputs][t*dil_d*ntp : ...]
// with B read in place (row stride ldv), accumulated over the T taps. The inverse transform then
// writes the block's M x M output tiles (+ bias). Blocks are split statically over the threads, one
// workspace slice (V and Mx of one block) each. Per input slice the transform runs once per block,
// and a block re-transforms the (T-1)*dil_d halo slices it shares with the next one (with nod = 4
// and T = 3 half as many again as a whole-volume pass, a few percent of the GEMMs' time).

#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "cpu/conv_winograd_tf.h"
#include "cpu/gemm.h"
#include "cpu/parallel.h"

namespace fastlayers::cpu {

namespace {

using winograd_tf::L;
using winograd_tf::Tf;

// Output columns per forward block (FASTLAYERS_WINOGRAD3D_COLS, development knob, read once) and
// per backward-weight block (its GEMMs reduce over the block's columns: longer is better there).
index_t knob(const char* name, index_t fallback) {
  const char* e = std::getenv(name);
  const long n = e != nullptr ? std::atol(e) : 0;
  return n >= L && n <= 4096 ? n : fallback;
}
index_t fwd_cols() {
  static const index_t v = knob("FASTLAYERS_WINOGRAD3D_COLS", 64);
  return v;
}
index_t bw_cols() {
  static const index_t v = knob("FASTLAYERS_WINOGRAD3D_BW_COLS", 256);
  return v;
}

// See conv_winograd.cpp: F(4x4) needs this many reduced terms per in-plane tap (here T * C/groups).
constexpr index_t kF4MinReduction = 16;

index_t round_up(index_t a, index_t b) { return (a + b - 1) / b * b; }
index_t ceil_div(index_t a, index_t b) { return (a + b - 1) / b; }

// The convolution both data passes run: input (N, Cin, D, H, W) -> output (N, Kout, OD, P, Q), 3x3
// in-plane taps, T depth taps at dilation dil, unit strides, padding (pd, ph, pw), `groups` groups
// of Ig inputs / Og outputs. flipped: backward-data, taps from the forward's w flipped in all three
// dimensions and transposed.
struct Problem {
  index_t N, Cin, D, H, W, Kout, OD, P, Q;
  index_t T, dil, pd, ph, pw;
  index_t groups, Ig, Og;
  bool flipped;
  index_t tiles_h, tiles_w, tpp;  // tiles per plane: tiles_h x tiles_w
};

Problem make_problem(const Conv3dShape& s, ConvPass pass, int kM) {
  Problem p{};
  p.N = s.N;
  p.groups = s.groups;
  p.T = s.T;
  p.dil = s.dil_d;
  if (pass == ConvPass::backward_data) {  // grad_x = conv(grad_out, flipped w^T): output D x H x W again
    p.Cin = s.K, p.D = s.OD, p.H = s.P, p.W = s.Q;
    p.Kout = s.C, p.OD = s.D, p.P = s.H, p.Q = s.W;
    p.pd = s.dil_d * (s.T - 1) - s.pad_d, p.ph = 2 - s.pad_h, p.pw = 2 - s.pad_w;
    p.Ig = s.K / s.groups, p.Og = s.C / s.groups;
    p.flipped = true;
  } else {
    p.Cin = s.C, p.D = s.D, p.H = s.H, p.W = s.W;
    p.Kout = s.K, p.OD = s.OD, p.P = s.P, p.Q = s.Q;
    p.pd = s.pad_d, p.ph = s.pad_h, p.pw = s.pad_w;
    p.Ig = s.C / s.groups, p.Og = s.K / s.groups;
    p.flipped = false;
  }
  p.tiles_h = ceil_div(p.P, kM);
  p.tiles_w = ceil_div(p.Q, kM);
  p.tpp = p.tiles_h * p.tiles_w;
  return p;
}

struct Plan {
  index_t ntp, nod;              // tile positions and output slices per block (the last ones may be fewer)
  index_t tp_blocks, od_blocks;  // blocks per plane and per image depth
  index_t blocks;
  index_t ldv, ldm;              // row lengths of V and Mx (multiples of L), the largest block's
  int threads;
};

Plan make_plan(const Problem& p, index_t target_cols, int threads) {
  Plan pl{};
  pl.tp_blocks = ceil_div(p.tpp, target_cols);
  pl.ntp = ceil_div(p.tpp, pl.tp_blocks);
  pl.od_blocks = ceil_div(p.OD, std::max<index_t>(1, target_cols / pl.ntp));
  pl.nod = ceil_div(p.OD, pl.od_blocks);
  pl.od_blocks = ceil_div(p.OD, pl.nod);
  pl.blocks = p.N * pl.od_blocks * pl.tp_blocks;
  pl.ldm = round_up(pl.nod * pl.ntp, L);
  pl.ldv = round_up((pl.nod + (p.T - 1) * p.dil) * pl.ntp, L);
  pl.threads = static_cast<int>(std::max<index_t>(1, std::min<index_t>(threads, pl.blocks)));
  return pl;
}

constexpr index_t kAlign = 16;  // workspace regions start on 64-byte boundaries (if the buffer does)

index_t alpha2(int kM) { return (kM + 2) * (kM + 2); }
index_t packed_floats(const Problem& p) { return round_up(sgemm_packed_a_floats(p.Og, p.Ig), kAlign); }
index_t u_floats(const Problem& p, int kM) { return round_up(alpha2(kM) * p.Kout * p.T * p.Ig, kAlign); }
index_t ap_floats(const Problem& p, int kM) { return alpha2(kM) * p.groups * p.T * packed_floats(p); }
index_t slice_floats(const Problem& p, const Plan& pl, int kM) {
  return round_up(alpha2(kM) * (p.Cin * pl.ldv + p.Kout * pl.ldm), kAlign);
}
index_t needed_floats(const Problem& p, const Plan& pl, int kM) {
  return u_floats(p, kM) + ap_floats(p, kM) + pl.threads * slice_floats(p, pl, kM);
}

// One block of the plan: image n, output slices [od0, od0 + nod), tile positions [tp0, tp0 + ntp).
struct Block {
  index_t n, od0, nod, tp0, ntp;
  index_t cols() const { return nod * ntp; }
};

Block block_at(const Problem& p, const Plan& pl, index_t b) {
  Block k{};
  k.n = b / (pl.od_blocks * pl.tp_blocks);
  const index_t ob = (b / pl.tp_blocks) % pl.od_blocks, tb = b % pl.tp_blocks;
  k.od0 = ob * pl.nod;
  k.nod = std::min(pl.nod, p.OD - k.od0);
  k.tp0 = tb * pl.ntp;
  k.ntp = std::min(pl.ntp, p.tpp - k.tp0);
  return k;
}

index_t v_cols(const Problem& p, const Block& k) { return (k.nod + (p.T - 1) * p.dil) * k.ntp; }

// U[xi][o][t][i] = G g G^T for output channels [o0, o1), every depth tap t and input i of o's group.
template <int kM>
void transform_weights(const Problem& p, const float* w, float* U, index_t o0, index_t o1) {
  using Tr = Tf<kM>;
  constexpr int kA = Tr::A;
  for (index_t o = o0; o < o1; ++o) {
    const index_t grp = o / p.Og, oo = o % p.Og;
    for (index_t t = 0; t < p.T; ++t)
      for (index_t i = 0; i < p.Ig; ++i) {
        double g[3][3];
        for (int r = 0; r < 3; ++r)
          for (int c = 0; c < 3; ++c)
            g[r][c] = p.flipped ? w[((((grp * p.Ig + i) * p.Og + oo) * p.T + (p.T - 1 - t)) * 3 + (2 - r)) * 3 + (2 - c)]
                                : w[(((o * p.Ig + i) * p.T + t) * 3 + r) * 3 + c];
        double tmp[kA][3], u[kA][kA];  // tmp = G g, u = tmp G^T
        for (int c = 0; c < 3; ++c) {
          const double col[3] = {g[0][c], g[1][c], g[2][c]};
          double out[kA];
          Tr::weight(col, out);
          for (int a = 0; a < kA; ++a) tmp[a][c] = out[a];
        }
        for (int a = 0; a < kA; ++a) Tr::weight(tmp[a], u[a]);
        for (int a = 0; a < kA; ++a)
          for (int b = 0; b < kA; ++b)
            U[(((a * kA + b) * p.Kout + o) * p.T + t) * p.Ig + i] = static_cast<float>(u[a][b]);
      }
  }
}

// Ap[(xi*groups + g)*T + t] = U[xi][g's outputs][t][:] packed for sgemm_prepacked_a, for the
// (xi, g, t) triples [q0, q1).
void pack_weights(const Problem& p, const float* U, float* Ap, index_t q0, index_t q1) {
  for (index_t q = q0; q < q1; ++q) {
    const index_t t = q % p.T, g = (q / p.T) % p.groups, xi = q / (p.T * p.groups);
    sgemm_pack_a(false, p.Og, p.Ig, 1.0f, U + ((xi * p.Kout + g * p.Og) * p.T + t) * p.Ig, p.T * p.Ig,
                 Ap + q * packed_floats(p));
  }
}

// Per V column: where its patch starts in the input (offset of the image's input slice, or -1 for a
// slice in the depth padding) and its top-left row and column (maybe negative).
struct InCols {
  std::vector<index_t> off, ih0, iw0;
  explicit InCols(index_t n) : off(n), ih0(n), iw0(n) {}
};

// Per output column: offset of its top-left output in channel 0, and its rows and columns inside P x Q.
struct OutCols {
  std::vector<index_t> off;
  std::vector<int> rows, cols;
  explicit OutCols(index_t n) : off(n), rows(n), cols(n) {}
};

template <int kM>
void in_cols(const Problem& p, const Block& k, InCols& ic) {
  const index_t vc = v_cols(p, k), plane = p.H * p.W;
  for (index_t j = 0; j < vc; ++j) {
    const index_t d = k.od0 - p.pd + j / k.ntp, tp = k.tp0 + j % k.ntp;
    ic.off[j] = (d >= 0 && d < p.D) ? (k.n * p.Cin * p.D + d) * plane : -1;
    ic.ih0[j] = (tp / p.tiles_w) * kM - p.ph;
    ic.iw0[j] = (tp % p.tiles_w) * kM - p.pw;
  }
}

template <int kM>
void out_cols(const Problem& p, const Block& k, OutCols& oc) {
  const index_t PQ = p.P * p.Q;
  for (index_t j = 0; j < k.cols(); ++j) {
    const index_t od = k.od0 + j / k.ntp, tp = k.tp0 + j % k.ntp, th = tp / p.tiles_w, tw = tp % p.tiles_w;
    oc.off[j] = (k.n * p.Kout * p.OD + od) * PQ + th * kM * p.Q + tw * kM;
    oc.rows[j] = static_cast<int>(std::min<index_t>(kM, p.P - th * kM));
    oc.cols[j] = static_cast<int>(std::min<index_t>(kM, p.Q - tw * kM));
  }
}

// V[xi][c][j] for the block's vc columns (up to ldv: zero), input channels [c0, c1). Channel c of
// the input is at x + c * D*H*W from a column's offset.
template <int kM>
void transform_input(const Problem& p, const float* x, const InCols& ic, index_t vc, index_t ldv, float* V,
                     index_t c0, index_t c1) {
  using Tr = Tf<kM>;
  constexpr int kA = Tr::A, kAA = kA * kA;
  alignas(64) float d[kAA * L], tmp[kAA * L];
  const index_t H = p.H, W = p.W, vol = p.D * H * W, vs = p.Cin * ldv;  // vs: between consecutive xi
  for (index_t c = c0; c < c1; ++c) {
    const float* xc = x + c * vol;
    for (index_t j0 = 0; j0 < ldv; j0 += L) {
      for (int l = 0; l < L; ++l) {
        const index_t j = j0 + l;
        if (j >= vc || ic.off[j] < 0) {
          for (int e = 0; e < kAA; ++e) d[e * L + l] = 0.0f;
          continue;
        }
        const index_t ih0 = ic.ih0[j], iw0 = ic.iw0[j];
        const float* src = xc + ic.off[j];
        if (ih0 >= 0 && iw0 >= 0 && ih0 + kA <= H && iw0 + kA <= W) {
          const float* s0 = src + ih0 * W + iw0;
          for (int a = 0; a < kA; ++a)
            for (int b = 0; b < kA; ++b) d[(a * kA + b) * L + l] = s0[a * W + b];
        } else {  // the patch crosses the padding (or the plane's edge)
          for (int a = 0; a < kA; ++a) {
            const index_t ih = ih0 + a;
            for (int b = 0; b < kA; ++b) {
              const index_t iw = iw0 + b;
              d[(a * kA + b) * L + l] = (ih >= 0 && ih < H && iw >= 0 && iw < W) ? src[ih * W + iw] : 0.0f;
            }
          }
        }
      }
      for (int b = 0; b < kA; ++b) Tr::input(d + b * L, kA * L, tmp + b * L, kA * L);  // B^T d, by column
      float* out = V + c * ldv + j0;
      for (int a = 0; a < kA; ++a) Tr::input(tmp + a * kA * L, L, out + a * kA * vs, vs);  // . B, by row
    }
  }
}

// The block's output tiles from Mx[xi][k][j] (+ bias).
template <int kM>
void transform_output(const Problem& p, const float* Mx, const OutCols& oc, index_t cols, index_t ldm,
                      const float* bias, float* y) {
  using Tr = Tf<kM>;
  constexpr int kA = Tr::A;
  alignas(64) float tmp[kM * kA * L], o[kM * kM * L];
  const index_t vol = p.OD * p.P * p.Q, Q = p.Q, ms = p.Kout * ldm;  // ms: between consecutive xi
  for (index_t k = 0; k < p.Kout; ++k) {
    const float bk = bias != nullptr ? bias[k] : 0.0f;
    float* yk = y + k * vol;
    for (index_t j0 = 0; j0 < cols; j0 += L) {
      const float* in = Mx + k * ldm + j0;
      for (int b = 0; b < kA; ++b) Tr::output(in + b * ms, kA * ms, tmp + b * L, kA * L);  // A^T m, by column
      for (int a = 0; a < kM; ++a) Tr::output(tmp + a * kA * L, L, o + a * kM * L, L);      // . A, by row
      const int ln = static_cast<int>(std::min<index_t>(L, cols - j0));
      for (int l = 0; l < ln; ++l) {
        const index_t j = j0 + l;
        float* dst = yk + oc.off[j];
        const int rows = oc.rows[j], cc = oc.cols[j];
        for (int a = 0; a < rows; ++a)
          for (int b = 0; b < cc; ++b) dst[a * Q + b] = o[(a * kM + b) * L + l] + bk;
      }
    }
  }
}

template <int kM>
bool run(const Problem& p, const float* x, const float* w, const float* bias, float* y, float* workspace,
         index_t workspace_floats) {
  constexpr int kAA = (kM + 2) * (kM + 2);
  const int team = omp_in_parallel() ? 1 : max_threads();
  Plan pl = make_plan(p, fwd_cols(), team);
  while (pl.threads > 1 && needed_floats(p, pl, kM) > workspace_floats) pl = make_plan(p, fwd_cols(), pl.threads - 1);
  if (needed_floats(p, pl, kM) > workspace_floats) return false;
  if (pl.blocks == 0) return true;
  float* U = workspace;
  float* Ap = U + u_floats(p, kM);
  float* slices = Ap + ap_floats(p, kM);
  const index_t slice = slice_floats(p, pl, kM), triples = kAA * p.groups * p.T;
  const int TT = pl.threads;

  auto body = [&](int t, int nthreads) {
    transform_weights<kM>(p, w, U, p.Kout * t / nthreads, p.Kout * (t + 1) / nthreads);
    if (nthreads > 1) {
#pragma omp barrier
    }
    pack_weights(p, U, Ap, triples * t / nthreads, triples * (t + 1) / nthreads);
    if (nthreads > 1) {
#pragma omp barrier
    }
    InCols ic(pl.ldv);
    OutCols oc(pl.ldm);
    for (int chunk = t; chunk < TT; chunk += nthreads) {
      float* V = slices + chunk * slice;
      float* Mx = V + kAA * p.Cin * pl.ldv;
      for (index_t b = pl.blocks * chunk / TT; b < pl.blocks * (chunk + 1) / TT; ++b) {
        const Block k = block_at(p, pl, b);
        const index_t vc = v_cols(p, k), ldv = round_up(vc, L), cols = k.cols(), ldm = round_up(cols, L);
        in_cols<kM>(p, k, ic);
        out_cols<kM>(p, k, oc);
        transform_input<kM>(p, x, ic, vc, ldv, V, 0, p.Cin);
        for (int xi = 0; xi < kAA; ++xi)
          for (index_t g = 0; g < p.groups; ++g)
            for (index_t tap = 0; tap < p.T; ++tap)
              sgemm_prepacked_a(p.Og, 0, p.Og, cols, p.Ig, Ap + ((xi * p.groups + g) * p.T + tap) * packed_floats(p),
                                V + (xi * p.Cin + g * p.Ig) * ldv + tap * p.dil * k.ntp, ldv, tap == 0 ? 0.0f : 1.0f,
                                Mx + (xi * p.Kout + g * p.Og) * ldm, ldm);
        transform_output<kM>(p, Mx, oc, cols, ldm, bias, y);
      }
    }
  };
  run_on_team(TT, body);
  return true;
}

// ---- Backward-weight: per block, V = the input patches transformed (as the forward), D = A dy A^T
// for the block's output tiles, then Mw[xi][o][t][i] += D[xi][o][:] * V[xi][i][t*dil*ntp : ...]^T
// over the block's columns. Blocks are split statically over the threads, each with its own V, D and
// partial Mw (no barriers: on this shared machine a team that met twice per block stalled whenever
// one thread lost its core, 0.78x PyTorch at 2 threads against 1.3x at 1); the partial sums are
// added in thread order, so results are deterministic for a given thread count.

index_t mw_floats(const Problem& p, int kM) { return round_up(alpha2(kM) * p.Kout * p.T * p.Ig, kAlign); }
index_t bw_slice_floats(const Problem& p, const Plan& pl, int kM) {
  return mw_floats(p, kM) + round_up(alpha2(kM) * (p.Cin * pl.ldv + p.Kout * pl.ldm), kAlign);
}

// Blocks of about bw_cols() columns, but at least two per thread where the problem allows.
Plan bw_plan(const Problem& p, int threads) {
  const index_t total = p.N * p.OD * p.tpp;
  const index_t target = std::max<index_t>(L, std::min(bw_cols(), total / std::max(1, 2 * threads)));
  return make_plan(p, target, threads);
}

index_t bw_needed_floats(const Problem& p, int threads, int kM) {
  const Plan pl = bw_plan(p, threads);
  return pl.threads * bw_slice_floats(p, pl, kM);
}

// D[xi][k][j] = A dy A^T for output channels [k0, k1) of the block's columns (up to ldm: zero).
template <int kM>
void transform_grad_out(const Problem& p, const float* go, const OutCols& oc, index_t cols, index_t ldm, float* D,
                        index_t k0, index_t k1) {
  using Tr = Tf<kM>;
  constexpr int kA = Tr::A;
  alignas(64) float d[kM * kM * L], tmp[kA * kM * L];
  const index_t vol = p.OD * p.P * p.Q, Q = p.Q, ds = p.Kout * ldm;
  for (index_t k = k0; k < k1; ++k) {
    const float* gk = go + k * vol;
    for (index_t j0 = 0; j0 < ldm; j0 += L) {
      for (int l = 0; l < L; ++l) {
        const index_t j = j0 + l;
        const int rows = j < cols ? oc.rows[j] : 0, cc = j < cols ? oc.cols[j] : 0;
        const float* src = j < cols ? gk + oc.off[j] : gk;
        if (rows == kM && cc == kM) {
          for (int a = 0; a < kM; ++a)
            for (int b = 0; b < kM; ++b) d[(a * kM + b) * L + l] = src[a * Q + b];
          continue;
        }
        for (int a = 0; a < kM; ++a)
          for (int b = 0; b < kM; ++b) d[(a * kM + b) * L + l] = (a < rows && b < cc) ? src[a * Q + b] : 0.0f;
      }
      for (int b = 0; b < kM; ++b) Tr::grad(d + b * L, kM * L, tmp + b * L, kM * L);  // A dy, by column
      float* out = D + k * ldm + j0;
      for (int a = 0; a < kA; ++a) Tr::grad(tmp + a * kM * L, L, out + a * kA * ds, ds);  // . A^T, by row
    }
  }
}

template <int kM>
bool run_backward_weight(const Problem& p, const float* go, const float* x, float* gw, float* workspace,
                         index_t workspace_floats) {
  using Tr = Tf<kM>;
  constexpr int kA = Tr::A, kAA = kA * kA;
  Plan pl = bw_plan(p, omp_in_parallel() ? 1 : max_threads());
  while (pl.threads > 1 && pl.threads * bw_slice_floats(p, pl, kM) > workspace_floats) --pl.threads;
  if (bw_slice_floats(p, pl, kM) > workspace_floats) return false;
  const index_t gw_size = p.Kout * p.Ig * p.T * 9, slice = bw_slice_floats(p, pl, kM), ms = p.Kout * p.T * p.Ig;
  if (pl.blocks == 0) {
    std::fill(gw, gw + gw_size, 0.0f);
    return true;
  }
  const int TT = pl.threads;

  auto chunk = [&](int t) {  // blocks [blocks*t/TT, blocks*(t+1)/TT) into thread t's partial Mw
    float* Mw = workspace + t * slice;  // [xi][o][t][i]
    float* V = Mw + mw_floats(p, kM);
    float* D = V + kAA * p.Cin * pl.ldv;
    InCols ic(pl.ldv);
    OutCols oc(pl.ldm);
    const index_t b0 = pl.blocks * t / TT, b1 = pl.blocks * (t + 1) / TT;
    if (b0 == b1) std::fill(Mw, Mw + kAA * ms, 0.0f);
    for (index_t b = b0; b < b1; ++b) {
      const Block k = block_at(p, pl, b);
      const index_t vc = v_cols(p, k), ldv = round_up(vc, L), cols = k.cols(), ldm = round_up(cols, L);
      in_cols<kM>(p, k, ic);
      out_cols<kM>(p, k, oc);
      transform_input<kM>(p, x, ic, vc, ldv, V, 0, p.Cin);
      transform_grad_out<kM>(p, go, oc, cols, ldm, D, 0, p.Kout);
      for (int xi = 0; xi < kAA; ++xi)
        for (index_t g = 0; g < p.groups; ++g)
          for (index_t tap = 0; tap < p.T; ++tap)
            sgemm(false, true, p.Og, p.Ig, cols, 1.0f, D + (xi * p.Kout + g * p.Og) * ldm, ldm,
                  V + (xi * p.Cin + g * p.Ig) * ldv + tap * p.dil * k.ntp, ldv, b == b0 ? 0.0f : 1.0f,
                  Mw + ((xi * p.Kout + g * p.Og) * p.T + tap) * p.Ig, p.T * p.Ig);
    }
  };
  // grad_w[o][i][t] = G^T (sum over threads, in order, of Mw[.][o][t][i]) G for outputs [o0, o1).
  auto finish = [&](index_t o0, index_t o1) {
    for (index_t o = o0; o < o1; ++o)
      for (index_t tap = 0; tap < p.T; ++tap)
        for (index_t i = 0; i < p.Ig; ++i) {
          double m[kA][kA], tmp[3][kA], g[3][3];
          for (int a = 0; a < kA; ++a)
            for (int bb = 0; bb < kA; ++bb) {
              const index_t at = (a * kA + bb) * ms + (o * p.T + tap) * p.Ig + i;
              float acc = workspace[at];
              for (int t = 1; t < TT; ++t) acc += workspace[t * slice + at];
              m[a][bb] = acc;
            }
          for (int bb = 0; bb < kA; ++bb) {  // G^T m, by column
            double col[kA], out[3];
            for (int a = 0; a < kA; ++a) col[a] = m[a][bb];
            Tr::weight_t(col, out);
            for (int r = 0; r < 3; ++r) tmp[r][bb] = out[r];
          }
          for (int r = 0; r < 3; ++r) Tr::weight_t(tmp[r], g[r]);  // . G, by row
          float* dst = gw + ((o * p.Ig + i) * p.T + tap) * 9;
          for (int r = 0; r < 3; ++r)
            for (int c = 0; c < 3; ++c) dst[r * 3 + c] = static_cast<float>(g[r][c]);
        }
  };
  if (TT > 1) {
#pragma omp parallel num_threads(TT)
    {
      for (int t = omp_get_thread_num(); t < TT; t += omp_get_num_threads()) chunk(t);
#pragma omp barrier
      const int t = omp_get_thread_num(), nt = omp_get_num_threads();
      finish(p.Kout * t / nt, p.Kout * (t + 1) / nt);
    }
  } else {
    chunk(0);
    finish(0, p.Kout);
  }
  return true;
}

// -1: by size, 0: never, 1: wherever the geometry allows (the knob conv2d's Winograd reads too).
int forced_mode() {
  const char* e = std::getenv("FASTLAYERS_CONV_WINOGRAD");
  if (e == nullptr) return -1;
  if (std::strcmp(e, "0") == 0) return 0;
  if (std::strcmp(e, "1") == 0) return 1;
  return -1;
}

int tile_size(const Conv3dShape& s, ConvPass pass) {
  if (pass == ConvPass::backward_weight) return 4;
  const index_t reduced = (pass == ConvPass::backward_data ? s.K : s.C) / s.groups * s.T;
  return reduced >= kF4MinReduction ? 4 : 2;
}

}  // namespace

bool winograd3d_applies(const Conv3dShape& s, ConvPass pass) {
  if (s.R != 3 || s.S != 3 || s.stride_d != 1 || s.stride_h != 1 || s.stride_w != 1 || s.dil_h != 1 || s.dil_w != 1)
    return false;
  if (pass == ConvPass::backward_data && (s.pad_h > 2 || s.pad_w > 2 || s.pad_d > s.dil_d * (s.T - 1))) return false;
  const int mode = forced_mode();
  if (mode >= 0) return mode == 1;
  const index_t Cg = s.C / s.groups, Kg = s.K / s.groups;
  if (pass == ConvPass::backward_weight) {
    const index_t tiles = s.N * s.OD * ((s.P + 3) / 4) * ((s.Q + 3) / 4);
    return Cg >= 16 && Kg >= 16 && tiles >= 128;
  }
  const index_t reduced = (pass == ConvPass::forward ? Cg : Kg) * s.T;
  const index_t outs = pass == ConvPass::forward ? Kg : Cg;
  return reduced >= kF4MinReduction && outs >= 8;
}

index_t winograd3d_workspace_floats(const Conv3dShape& s, ConvPass pass, int threads) {
  const int m = tile_size(s, pass);
  if (pass == ConvPass::backward_weight) {
    const Problem p = make_problem(s, ConvPass::forward, m);
    return bw_needed_floats(p, threads, m);
  }
  const Problem p = make_problem(s, pass, m);
  return needed_floats(p, make_plan(p, fwd_cols(), threads), m);
}

bool winograd3d_forward(const Conv3dShape& s, const float* x, const float* w, const float* b, float* y,
                        float* workspace, index_t workspace_floats) {
  const int m = tile_size(s, ConvPass::forward);
  const Problem p = make_problem(s, ConvPass::forward, m);
  return m == 4 ? run<4>(p, x, w, b, y, workspace, workspace_floats) : run<2>(p, x, w, b, y, workspace, workspace_floats);
}

bool winograd3d_backward_data(const Conv3dShape& s, const float* grad_out, const float* w, float* grad_x,
                              float* workspace, index_t workspace_floats) {
  const int m = tile_size(s, ConvPass::backward_data);
  const Problem p = make_problem(s, ConvPass::backward_data, m);
  return m == 4 ? run<4>(p, grad_out, w, nullptr, grad_x, workspace, workspace_floats)
                : run<2>(p, grad_out, w, nullptr, grad_x, workspace, workspace_floats);
}

bool winograd3d_backward_weight(const Conv3dShape& s, const float* grad_out, const float* x, float* grad_w,
                                float* workspace, index_t workspace_floats) {
  const Problem p = make_problem(s, ConvPass::forward, 4);
  return run_backward_weight<4>(p, grad_out, x, grad_w, workspace, workspace_floats);
}

}  // namespace fastlayers::cpu
