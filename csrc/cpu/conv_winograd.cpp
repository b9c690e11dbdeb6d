#include "cpu/conv_winograd.h"

// Structure (Lavin & Gray 2016): the output is cut into M x M tiles (M = 4, or 2 for few channels:
// tile_size), each computed from an A x A input patch (A = M + 2). Per call the weights are transformed once, U[xi][o][i] = G g G^T
// (A*A matrices, o = output channel, i = input channel of its group). The tiles are then taken in
// blocks of `nt` (a multiple of 16, across images): per block, the input patches are transformed,
// V[xi][c][t] = B^T d B, then A*A GEMMs M[xi] = U[xi] * V[xi] (our sgemm, single-threaded inside
// the parallel region) and the inverse transform y = A^T M A writes the M x M outputs (+ bias).
// Blocks are split statically over the threads, one workspace slice (V and M of one block) each.
// The transforms work on 16 tiles at a time (lane arrays GCC vectorises). Backward-weight (below,
// run_backward_weight) reuses the input transform and tiling with the adjoint transforms.

#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "common/checked.h"
#include "cpu/conv_winograd_tf.h"
#include "cpu/gemm.h"
#include "cpu/parallel.h"

namespace fastlayers::cpu {

namespace {

using winograd_tf::L;
using winograd_tf::Tf;

// Tiles per block (FASTLAYERS_WINOGRAD_TILES, default 32). 32 and 48 measured best on layers c and
// d (16: 30% slower on c; 64 and 128: ~15% slower on d, their V and M no longer fit in L2 next to
// U[xi]); below that sgemm's per-call packing of U[xi] is no longer amortised.
constexpr index_t kMaxTiles = 256;

// F(4x4) needs this many reduced channels per group: below it (1-2 channels) its rounding error
// reached 1.2x the tests' tolerance in a 300-shape random sweep, F(2x2)'s 0.11x; from 16 up F(4x4)
// stayed under 0.3x.
constexpr index_t kF4MinChannels = 16;

// Backward-weight's tile size: F(4x4) stayed within 0.25x of the tests' tolerance (its reduction is
// over tiles, so the channel count does not matter), and measured 15-20% faster than F(2x2) on c, d.
constexpr int kBwTile = 4;
// Backward-weight by default (winograd_applies): both channel counts per group, and F(4x4) tiles.
constexpr index_t kBwMinChannels = 48;
constexpr index_t kBwMinTiles = 128;

// The convolution that both passes run: input `x` (N, Cin, H, W) -> `y` (N, Kout, P, Q), 3x3 taps,
// stride 1, padding (ph, pw), `groups` groups of Ig inputs / Og outputs. The taps come from the
// caller's w as is (forward: w is (Kout, Ig, 3, 3)) or, for backward-data, flipped and transposed:
// w is the forward (K, C/groups, 3, 3) = (groups*Ig, Og, 3, 3), and tap (r, s) of output o (group
// grp, o = grp*Og + oo) and input i is w[grp*Ig + i][oo][2-r][2-s].
struct Problem {
  index_t N, Cin, H, W, Kout, P, Q, ph, pw, groups, Ig, Og;
  bool flipped;
  index_t tiles_h, tiles_w, tiles;  // per image: tiles_h x tiles_w; all images: tiles
};

Problem make_problem(const Conv2dShape& s, ConvPass pass, int kM) {
  Problem p{};
  p.N = s.N;
  p.groups = s.groups;
  if (pass == ConvPass::forward) {
    p.Cin = s.C, p.H = s.H, p.W = s.W, p.Kout = s.K, p.P = s.P, p.Q = s.Q;
    p.ph = s.pad_h, p.pw = s.pad_w;
    p.Ig = s.C / s.groups, p.Og = s.K / s.groups;
    p.flipped = false;
  } else {  // grad_x = conv(grad_out, flipped w^T), padding 2 - p: output H x W again
    p.Cin = s.K, p.H = s.P, p.W = s.Q, p.Kout = s.C, p.P = s.H, p.Q = s.W;
    p.ph = 2 - s.pad_h, p.pw = 2 - s.pad_w;
    p.Ig = s.K / s.groups, p.Og = s.C / s.groups;
    p.flipped = true;
  }
  p.tiles_h = (p.P + kM - 1) / kM;
  p.tiles_w = (p.Q + kM - 1) / kM;
  p.tiles = p.N * p.tiles_h * p.tiles_w;
  return p;
}

index_t round_up(index_t a, index_t b) { return (a + b - 1) / b * b; }

struct Plan {
  int threads;
  index_t nt;       // tile slots per block (multiple of L)
  index_t blocks;   // number of blocks (a multiple of threads where there are enough tiles)
};

index_t alpha2(int kM) { return (kM + 2) * (kM + 2); }
index_t u_floats(const Problem& p, int kM) { return alpha2(kM) * p.Kout * p.Ig; }
index_t slice_floats(const Problem& p, index_t nt, int kM) { return alpha2(kM) * (p.Cin + p.Kout) * nt; }

index_t block_tiles() {
  // Development knob (FASTLAYERS_WINOGRAD_TILES, read once): tile slots per block.
  static const index_t v = [] {
    const char* e = std::getenv("FASTLAYERS_WINOGRAD_TILES");
    const long n = e != nullptr ? std::atol(e) : 0;
    return n >= L && n <= kMaxTiles ? round_up(n, L) : index_t{32};
  }();
  return v;
}

Plan plan(const Problem& p, int threads) {
  Plan pl{};
  pl.threads = std::max(1, threads);
  const index_t want = block_tiles(), tiles = std::max<index_t>(p.tiles, 1);
  index_t blocks = (tiles + want - 1) / want;
  if (pl.threads > 1) blocks = round_up(blocks, pl.threads);
  pl.nt = std::min(kMaxTiles, round_up((tiles + blocks - 1) / blocks, L));
  pl.blocks = (tiles + pl.nt - 1) / pl.nt;
  if (pl.blocks < pl.threads) pl.threads = static_cast<int>(std::max<index_t>(pl.blocks, 1));
  return pl;
}

// Workspace sizes in checked arithmetic: -1 if they overflow int64 (the checked geometry rules it
// out; a -1 never fits, see too_small).
index_t needed_floats(const Problem& p, const Plan& pl, int kM) {
  const CheckedSize a2 = alpha2(kM);
  return (a2 * p.Kout * p.Ig + CheckedSize(pl.threads) * a2 * (CheckedSize(p.Cin) + p.Kout) * pl.nt).value();
}
bool too_small(index_t workspace_floats, index_t need) { return need < 0 || need > workspace_floats; }

// U[xi][o][i] for every output channel o and input channel i of o's group.
template <int kM>
void transform_weights(const Problem& p, const float* w, float* U, index_t o0, index_t o1) {
  using T = Tf<kM>;
  constexpr int kA = T::A;
  for (index_t o = o0; o < o1; ++o) {
    const index_t grp = o / p.Og, oo = o % p.Og;
    for (index_t i = 0; i < p.Ig; ++i) {
      double g[3][3];
      for (int r = 0; r < 3; ++r)
        for (int t = 0; t < 3; ++t)
          g[r][t] = p.flipped ? w[(((grp * p.Ig + i) * p.Og + oo) * 3 + (2 - r)) * 3 + (2 - t)]
                              : w[((o * p.Ig + i) * 3 + r) * 3 + t];
      double tmp[kA][3], u[kA][kA];  // tmp = G g, u = tmp G^T
      for (int t = 0; t < 3; ++t) {
        const double col[3] = {g[0][t], g[1][t], g[2][t]};
        double out[kA];
        T::weight(col, out);
        for (int a = 0; a < kA; ++a) tmp[a][t] = out[a];
      }
      for (int a = 0; a < kA; ++a) T::weight(tmp[a], u[a]);
      for (int a = 0; a < kA; ++a)
        for (int b = 0; b < kA; ++b) U[((a * kA + b) * p.Kout + o) * p.Ig + i] = static_cast<float>(u[a][b]);
    }
  }
}

// Where tile slot j of a block starts, in the input (image offset, top-left row and column, maybe
// negative) and in the output (offset of its top-left output, rows and columns inside P x Q).
struct TileInfo {
  index_t in_off[kMaxTiles], ih0[kMaxTiles], iw0[kMaxTiles];
  index_t out_off[kMaxTiles];
  int rows[kMaxTiles], cols[kMaxTiles];
};

template <int kM>
void tile_info(const Problem& p, index_t t0, index_t n, TileInfo& ti) {
  const index_t per_img = p.tiles_h * p.tiles_w;
  for (index_t j = 0; j < n; ++j) {
    const index_t t = t0 + j, img = t / per_img, th = (t % per_img) / p.tiles_w, tw = t % p.tiles_w;
    ti.in_off[j] = img * p.Cin * p.H * p.W;
    ti.ih0[j] = th * kM - p.ph;
    ti.iw0[j] = tw * kM - p.pw;
    ti.out_off[j] = img * p.Kout * p.P * p.Q + th * kM * p.Q + tw * kM;
    ti.rows[j] = static_cast<int>(std::min<index_t>(kM, p.P - th * kM));
    ti.cols[j] = static_cast<int>(std::min<index_t>(kM, p.Q - tw * kM));
  }
}

// V[xi][c][j] for the block's n tiles (slots n..nt-1 zero), every input channel.
template <int kM>
void transform_input(const Problem& p, const float* x, const TileInfo& ti, index_t n, index_t nt, float* V,
                     index_t c0, index_t c1) {
  using T = Tf<kM>;
  constexpr int kA = T::A, kAA = kA * kA;
  alignas(64) float d[kAA * L], tmp[kAA * L];
  const index_t H = p.H, W = p.W, plane = H * W;
  for (index_t c = c0; c < c1; ++c) {
    const float* xc = x + c * plane;
    for (index_t j0 = 0; j0 < nt; j0 += L) {
      for (int l = 0; l < L; ++l) {
        const index_t j = j0 + l;
        if (j >= n) {
          for (int e = 0; e < kAA; ++e) d[e * L + l] = 0.0f;
          continue;
        }
        const index_t ih0 = ti.ih0[j], iw0 = ti.iw0[j];
        const float* src = xc + ti.in_off[j];
        if (ih0 >= 0 && iw0 >= 0 && ih0 + kA <= H && iw0 + kA <= W) {
          const float* s0 = src + ih0 * W + iw0;
          for (int a = 0; a < kA; ++a)
            for (int b = 0; b < kA; ++b) d[(a * kA + b) * L + l] = s0[a * W + b];
        } else {  // the patch crosses the padding (or the image edge)
          for (int a = 0; a < kA; ++a) {
            const index_t ih = ih0 + a;
            for (int b = 0; b < kA; ++b) {
              const index_t iw = iw0 + b;
              d[(a * kA + b) * L + l] = (ih >= 0 && ih < H && iw >= 0 && iw < W) ? src[ih * W + iw] : 0.0f;
            }
          }
        }
      }
      // Columns (B^T d), then rows (. B), straight into V's A*A rows.
      for (int b = 0; b < kA; ++b) T::input(d + b * L, kA * L, tmp + b * L, kA * L);
      float* out = V + c * nt + j0;
      const index_t vs = p.Cin * nt;  // between consecutive xi
      for (int a = 0; a < kA; ++a) T::input(tmp + a * kA * L, L, out + a * kA * vs, vs);
    }
  }
}

// y tiles from Mx[xi][k][j] (+ bias).
template <int kM>
void transform_output(const Problem& p, const float* Mx, const TileInfo& ti, index_t n, index_t nt, const float* bias,
                      float* y) {
  using T = Tf<kM>;
  constexpr int kA = T::A;
  alignas(64) float tmp[kM * kA * L], o[kM * kM * L];
  const index_t PQ = p.P * p.Q, Q = p.Q, ms = p.Kout * nt;  // ms: between consecutive xi
  for (index_t k = 0; k < p.Kout; ++k) {
    const float bk = bias != nullptr ? bias[k] : 0.0f;
    float* yk = y + k * PQ;
    for (index_t j0 = 0; j0 < n; j0 += L) {
      const float* in = Mx + k * nt + j0;
      for (int b = 0; b < kA; ++b) T::output(in + b * ms, kA * ms, tmp + b * L, kA * L);  // A^T m, by column
      for (int a = 0; a < kM; ++a) T::output(tmp + a * kA * L, L, o + a * kM * L, L);      // . A, by row
      const int ln = static_cast<int>(std::min<index_t>(L, n - j0));
      for (int l = 0; l < ln; ++l) {
        const index_t j = j0 + l;
        float* dst = yk + ti.out_off[j];
        const int rows = ti.rows[j], cols = ti.cols[j];
        for (int a = 0; a < rows; ++a)
          for (int b = 0; b < cols; ++b) dst[a * Q + b] = o[(a * kM + b) * L + l] + bk;
      }
    }
  }
}

template <int kM>
bool run(const Problem& p, const float* x, const float* w, const float* bias, float* y, float* workspace,
         index_t workspace_floats) {
  constexpr int kAA = (kM + 2) * (kM + 2);
  const int team = omp_in_parallel() ? 1 : max_threads();
  Plan pl = plan(p, team);
  while (pl.threads > 1 && too_small(workspace_floats, needed_floats(p, pl, kM))) pl = plan(p, pl.threads - 1);
  if (too_small(workspace_floats, needed_floats(p, pl, kM))) return false;
  if (p.tiles == 0) return true;
  float* U = workspace;
  float* slices = workspace + u_floats(p, kM);
  const index_t slice = slice_floats(p, pl.nt, kM);
  const int TT = pl.threads;

  auto body = [&](int t, int nthreads) {
    // Weights: output channels split over the team.
    transform_weights<kM>(p, w, U, p.Kout * t / nthreads, p.Kout * (t + 1) / nthreads);
    if (nthreads > 1) {
#pragma omp barrier
    }
    TileInfo ti;
    for (int chunk = t; chunk < TT; chunk += nthreads) {
      float* V = slices + chunk * slice;
      float* Mx = V + kAA * p.Cin * pl.nt;
      for (index_t blk = pl.blocks * chunk / TT; blk < pl.blocks * (chunk + 1) / TT; ++blk) {
        const index_t t0 = blk * pl.nt, n = std::min(pl.nt, p.tiles - t0);
        tile_info<kM>(p, t0, n, ti);
        transform_input<kM>(p, x, ti, n, pl.nt, V, 0, p.Cin);
        const index_t nn = round_up(n, L);
        for (int xi = 0; xi < kAA; ++xi)
          for (index_t grp = 0; grp < p.groups; ++grp)
            sgemm(false, false, p.Og, nn, p.Ig, 1.0f, U + (xi * p.Kout + grp * p.Og) * p.Ig, p.Ig,
                  V + (xi * p.Cin + grp * p.Ig) * pl.nt, pl.nt, 0.0f, Mx + (xi * p.Kout + grp * p.Og) * pl.nt,
                  pl.nt);
        transform_output<kM>(p, Mx, ti, n, pl.nt, bias, y);
      }
    }
  };
  run_on_team(TT, body);
  return true;
}

// ---- Backward-weight: the adjoint of the forward with respect to g. Per tile the forward is
// y = A^T [(G g G^T) .* (B^T d B)] A, so grad_g = G^T [sum over tiles (B^T d B) .* (A dy A^T)] G,
// where dy is grad_out's m x m tile (zero past the output's edge). Per block of tiles: V = the
// input patches transformed as in the forward (C channels), D = A dy A^T (K channels), then for
// each of the A*A positions xi one GEMM Mw[xi] (K/groups x C/groups) += D[xi] * V[xi]^T, reducing
// over the block's tiles. At the end grad_w = G^T Mw G.
// Threads share one Mw: the transforms of a block are split over channels, then the A*A GEMMs over
// the threads (xi = t, t + T, ...), each GEMM a fixed call on one thread, so every element of Mw is
// summed in the same order (block after block) whatever the thread count: the same bits for any T.

// Tiles per backward-weight block (FASTLAYERS_WINOGRAD_BW_TILES, development knob, read once).
index_t bw_block_tiles() {
  static const index_t v = [] {
    const char* e = std::getenv("FASTLAYERS_WINOGRAD_BW_TILES");
    const long n = e != nullptr ? std::atol(e) : 0;
    return n >= L && n <= kMaxTiles ? round_up(n, L) : index_t{64};
  }();
  return v;
}

index_t bw_nt(const Problem& p) { return std::min(bw_block_tiles(), round_up(std::max<index_t>(p.tiles, 1), L)); }

index_t bw_needed_floats(const Problem& p, int kM) {
  return (CheckedSize(alpha2(kM)) * (CheckedSize(p.Kout) * p.Ig + (CheckedSize(p.Cin) + p.Kout) * bw_nt(p))).value();
}

// D[xi][k][j] = A dy A^T for output channels [k0, k1) of the block's tiles (slots n..nt-1 zero).
template <int kM>
void transform_grad_out(const Problem& p, const float* go, const TileInfo& ti, index_t n, index_t nt, float* D,
                        index_t k0, index_t k1) {
  using T = Tf<kM>;
  constexpr int kA = T::A;
  alignas(64) float d[kM * kM * L], tmp[kA * kM * L];
  const index_t PQ = p.P * p.Q, Q = p.Q, ds = p.Kout * nt;  // ds: between consecutive xi
  for (index_t k = k0; k < k1; ++k) {
    const float* gk = go + k * PQ;
    for (index_t j0 = 0; j0 < nt; j0 += L) {
      for (int l = 0; l < L; ++l) {
        const index_t j = j0 + l;
        const int rows = j < n ? ti.rows[j] : 0, cols = j < n ? ti.cols[j] : 0;
        const float* src = j < n ? gk + ti.out_off[j] : gk;
        if (rows == kM && cols == kM) {  // a whole tile: no bounds logic
          for (int a = 0; a < kM; ++a)
            for (int b = 0; b < kM; ++b) d[(a * kM + b) * L + l] = src[a * Q + b];
          continue;
        }
        for (int a = 0; a < kM; ++a)
          for (int b = 0; b < kM; ++b) d[(a * kM + b) * L + l] = (a < rows && b < cols) ? src[a * Q + b] : 0.0f;
      }
      for (int b = 0; b < kM; ++b) T::grad(d + b * L, kM * L, tmp + b * L, kM * L);  // A dy, by column
      float* out = D + k * nt + j0;
      for (int a = 0; a < kA; ++a) T::grad(tmp + a * kM * L, L, out + a * kA * ds, ds);  // . A^T, by row
    }
  }
}

template <int kM>
bool run_backward_weight(const Problem& p, const float* go, const float* x, float* gw, float* workspace,
                         index_t workspace_floats) {
  using T = Tf<kM>;
  constexpr int kA = T::A, kAA = kA * kA;
  if (too_small(workspace_floats, bw_needed_floats(p, kM))) return false;
  const index_t gw_size = p.Kout * p.Ig * 9;
  if (p.tiles == 0) {
    std::fill(gw, gw + gw_size, 0.0f);
    return true;
  }
  const index_t nt = bw_nt(p), blocks = (p.tiles + nt - 1) / nt;
  float* Mw = workspace;  // [xi][k][i]
  float* V = Mw + kAA * p.Kout * p.Ig;
  float* D = V + kAA * p.Cin * nt;
  const int TT = omp_in_parallel() ? 1 : std::min(max_threads(), kAA);

  auto body = [&](int t, int nthreads) {
    TileInfo ti;
    const index_t chans = p.Cin + p.Kout, c0 = chans * t / nthreads, c1 = chans * (t + 1) / nthreads;
    for (index_t blk = 0; blk < blocks; ++blk) {
      const index_t t0 = blk * nt, n = std::min(nt, p.tiles - t0);
      tile_info<kM>(p, t0, n, ti);
      // Channels [0, Cin) of x, then [Cin, Cin + Kout) of grad_out, split over the team.
      if (c0 < p.Cin) transform_input<kM>(p, x, ti, n, nt, V, c0, std::min(c1, p.Cin));
      if (c1 > p.Cin) transform_grad_out<kM>(p, go, ti, n, nt, D, std::max(c0, p.Cin) - p.Cin, c1 - p.Cin);
      if (nthreads > 1) {
#pragma omp barrier
      }
      for (int xi = t; xi < kAA; xi += nthreads)
        for (index_t grp = 0; grp < p.groups; ++grp)
          sgemm(false, true, p.Og, p.Ig, n, 1.0f, D + (xi * p.Kout + grp * p.Og) * nt, nt,
                V + (xi * p.Cin + grp * p.Ig) * nt, nt, blk == 0 ? 0.0f : 1.0f, Mw + (xi * p.Kout + grp * p.Og) * p.Ig,
                p.Ig);
      if (nthreads > 1) {
#pragma omp barrier
      }
    }
    // grad_w[k][i] = G^T Mw[.][k][i] G, output channels split over the team.
    const index_t ms = p.Kout * p.Ig;
    for (index_t k = p.Kout * t / nthreads; k < p.Kout * (t + 1) / nthreads; ++k)
      for (index_t i = 0; i < p.Ig; ++i) {
        double m[kA][kA], tmp[3][kA], g[3][3];
        for (int a = 0; a < kA; ++a)
          for (int b = 0; b < kA; ++b) m[a][b] = Mw[(a * kA + b) * ms + k * p.Ig + i];
        for (int b = 0; b < kA; ++b) {  // G^T m, by column
          double col[kA], out[3];
          for (int a = 0; a < kA; ++a) col[a] = m[a][b];
          T::weight_t(col, out);
          for (int r = 0; r < 3; ++r) tmp[r][b] = out[r];
        }
        for (int r = 0; r < 3; ++r) T::weight_t(tmp[r], g[r]);  // . G, by row
        float* dst = gw + (k * p.Ig + i) * 9;
        for (int r = 0; r < 3; ++r)
          for (int c = 0; c < 3; ++c) dst[r * 3 + c] = static_cast<float>(g[r][c]);
      }
  };
  run_on_team(TT, body);
  return true;
}

// -1: by size, 0: never, 1: wherever the geometry allows.
int forced_mode() {
  const char* e = std::getenv("FASTLAYERS_CONV_WINOGRAD");
  if (e == nullptr) return -1;
  if (std::strcmp(e, "0") == 0) return 0;
  if (std::strcmp(e, "1") == 0) return 1;
  return -1;
}

// Output tile size: F(4x4, 3x3) where its rounding error stays inside the GEMM path's tolerance
// (enough input channels per group: see kF4MinChannels), else F(2x2, 3x3).
int tile_size(const Conv2dShape& s, ConvPass pass) {
  static const int forced = [] {  // development knob: FASTLAYERS_WINOGRAD_M=2|4
    const char* e = std::getenv("FASTLAYERS_WINOGRAD_M");
    return e != nullptr ? std::atoi(e) : 0;
  }();
  if (forced == 2 || forced == 4) return forced;
  if (pass == ConvPass::backward_weight) return kBwTile;
  const index_t in_channels = (pass == ConvPass::forward ? s.C : s.K) / s.groups;
  return in_channels >= kF4MinChannels ? 4 : 2;
}

}  // namespace

bool winograd_applies(const Conv2dShape& s, ConvPass pass) {
  if (s.R != 3 || s.S != 3 || s.stride_h != 1 || s.stride_w != 1 || s.dil_h != 1 || s.dil_w != 1) return false;
  if (pass == ConvPass::backward_data && (s.pad_h > 2 || s.pad_w > 2)) return false;
  const int mode = forced_mode();
  if (mode >= 0) return mode == 1;
  // By size: the pass reduces over enough channels per group that the GEMMs dominate the
  // transforms (forward, 1 thread, N=16 28x28 3x3 p1: C=K=16 1.66x the GEMM path, C=8 K=16 0.96x,
  // C=4 K=32 0.49x, C=32 K=4 1.38x). That is also where F(4x4) is accurate enough: F(2x2) never
  // runs by default.
  if (pass == ConvPass::backward_weight) {
    // Its GEMMs are (K/groups x C/groups) over a block's tiles, and the transforms of x and
    // grad_out cost as much as the GEMMs at 128 channels: both sides need enough channels, and
    // enough tiles to amortise the per-call weight-sized work (backward-weight alone, 1 thread,
    // Winograd / GEMM path speed-up: N=16 28x28 C=K=32 0.99, C=32 K=64 0.86, C=64 K=32 1.03,
    // C=K=48 1.30, C=K=64 1.12, C=K=128 1.53, C=64 K=128 1.46; N=4/8/16 14x14 C=K=256 (64/128/256
    // tiles) 0.84/1.14/1.39).
    const index_t tiles = s.N * ((s.P + 3) / 4) * ((s.Q + 3) / 4);
    // With several threads its per-block barriers and small per-position GEMMs lose on few
    // channels and tiles (64->64 7x7, N=64, 256 tiles, 2 threads: 2.95 ms against 2.14 by the
    // direct kernel; 1 thread 2.64 against 3.27): there it needs >= 1024 tiles or >= 128 channels
    // (ResNet-18 at N=16: 64 channels on 56x56 is 3136 tiles, 22.5 against 25.2 ms).
    const index_t channels = std::min(s.C, s.K) / s.groups;
    if (max_threads() > 1 && !omp_in_parallel() && tiles < 1024 && channels < 128) return false;
    return channels >= kBwMinChannels && tiles >= kBwMinTiles;
  }
  const index_t reduced = (pass == ConvPass::forward ? s.C : s.K) / s.groups;
  // Maps of at most 4 tiles (8x8) with large filters (ResNet-18's 512-channel 7x7 layers): the
  // transformed filters (4x the filters) are read once per block of tiles for little arithmetic,
  // and 7x7 wastes 23% of each 8x8 of tiles; the GEMM path's whole-batch products win (N=16,
  // 2 threads, Winograd / GEMM ms: forward 25-33 / 21-22, backward-data 26-32 / 22-23, N=1 25.7 /
  // 2.3).
  const index_t out_pixels = pass == ConvPass::forward ? s.P * s.Q : s.H * s.W;
  if (out_pixels <= 64 && (s.C / s.groups) * (s.K / s.groups) * 9 >= (index_t{1} << 19)) return false;
  return reduced >= kF4MinChannels;
}

index_t winograd_workspace_floats(const Conv2dShape& s, ConvPass pass, int threads) {
  const int m = tile_size(s, pass);
  if (pass == ConvPass::backward_weight) return bw_needed_floats(make_problem(s, ConvPass::forward, m), m);
  const Problem p = make_problem(s, pass, m);
  return needed_floats(p, plan(p, threads), m);
}

bool winograd_forward(const Conv2dShape& s, const float* x, const float* w, const float* b, float* y,
                      float* workspace, index_t workspace_floats) {
  const int m = tile_size(s, ConvPass::forward);
  const Problem p = make_problem(s, ConvPass::forward, m);
  return m == 4 ? run<4>(p, x, w, b, y, workspace, workspace_floats) : run<2>(p, x, w, b, y, workspace, workspace_floats);
}

bool winograd_backward_data(const Conv2dShape& s, const float* grad_out, const float* w, float* grad_x,
                            float* workspace, index_t workspace_floats) {
  const int m = tile_size(s, ConvPass::backward_data);
  const Problem p = make_problem(s, ConvPass::backward_data, m);
  return m == 4 ? run<4>(p, grad_out, w, nullptr, grad_x, workspace, workspace_floats)
                : run<2>(p, grad_out, w, nullptr, grad_x, workspace, workspace_floats);
}

bool winograd_backward_weight(const Conv2dShape& s, const float* grad_out, const float* x, float* grad_w,
                              float* workspace, index_t workspace_floats) {
  const int m = tile_size(s, ConvPass::backward_weight);
  const Problem p = make_problem(s, ConvPass::forward, m);
  return m == 4 ? run_backward_weight<4>(p, grad_out, x, grad_w, workspace, workspace_floats)
                : run_backward_weight<2>(p, grad_out, x, grad_w, workspace, workspace_floats);
}

}  // namespace fastlayers::cpu
