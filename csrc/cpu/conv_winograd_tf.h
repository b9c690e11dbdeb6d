// The Winograd F(m x m, 3x3) transforms (m = 4 or 2), shared by the 2-D (conv_winograd.cpp) and
// 3-D (conv3d_winograd.cpp) convolutions. Each works on L lanes (tiles) at a time, arrays GCC
// vectorises. Internal to those two files.
#pragma once
#include "common/types.h"

namespace fastlayers::cpu::winograd_tf {

constexpr int L = 16;  // tiles per transform step (vector lanes)

// F(m x m, 3x3) transforms. input(): v = B^T d over one dimension; output(): o = A^T m; weight():
// u = G g (in double: done once per call). Each works on L lanes; in + k*is is the k-th operand's
// lanes, out + k*os the k-th result's.
template <int M>
struct Tf;

template <>
struct Tf<4> {  // interpolation points 0, +-1, +-2, inf
  static constexpr int A = 6;
  static inline void input(const float* __restrict in, index_t is, float* __restrict out, index_t os) {
    for (int l = 0; l < L; ++l) {
      const float d0 = in[l], d1 = in[is + l], d2 = in[2 * is + l], d3 = in[3 * is + l], d4 = in[4 * is + l],
                  d5 = in[5 * is + l];
      out[l] = 4.0f * d0 - 5.0f * d2 + d4;
      out[os + l] = -4.0f * (d1 + d2) + (d3 + d4);
      out[2 * os + l] = 4.0f * (d1 - d2) + (d4 - d3);
      out[3 * os + l] = 2.0f * (d3 - d1) + (d4 - d2);
      out[4 * os + l] = 2.0f * (d1 - d3) + (d4 - d2);
      out[5 * os + l] = 4.0f * d1 - 5.0f * d3 + d5;
    }
  }
  static inline void output(const float* __restrict in, index_t is, float* __restrict out, index_t os) {
    for (int l = 0; l < L; ++l) {
      const float m0 = in[l], m1 = in[is + l], m2 = in[2 * is + l], m3 = in[3 * is + l], m4 = in[4 * is + l],
                  m5 = in[5 * is + l];
      const float a = m1 + m2, b = m1 - m2, c = m3 + m4, d = m3 - m4;
      out[l] = m0 + a + c;
      out[os + l] = b + 2.0f * d;
      out[2 * os + l] = a + 4.0f * c;
      out[3 * os + l] = b + 8.0f * d + m5;
    }
  }
  static void weight(const double g[3], double u[A]) {
    u[0] = g[0] / 4;
    u[1] = -(g[0] + g[1] + g[2]) / 6;
    u[2] = -(g[0] - g[1] + g[2]) / 6;
    u[3] = g[0] / 24 + g[1] / 12 + g[2] / 6;
    u[4] = g[0] / 24 - g[1] / 12 + g[2] / 6;
    u[5] = g[2];
  }
  // Backward-weight (the adjoints): grad(): u = A o (an output tile's m values -> A lanes);
  // weight_t(): g = G^T u (in double, once per call).
  static inline void grad(const float* __restrict in, index_t is, float* __restrict out, index_t os) {
    for (int l = 0; l < L; ++l) {
      const float o0 = in[l], o1 = in[is + l], o2 = in[2 * is + l], o3 = in[3 * is + l];
      const float e = o0 + o2, f = o1 + o3, g = o0 + 4.0f * o2, h = 2.0f * o1 + 8.0f * o3;
      out[l] = o0;
      out[os + l] = e + f;
      out[2 * os + l] = e - f;
      out[3 * os + l] = g + h;
      out[4 * os + l] = g - h;
      out[5 * os + l] = o3;
    }
  }
  static void weight_t(const double u[A], double g[3]) {
    g[0] = u[0] / 4 - (u[1] + u[2]) / 6 + (u[3] + u[4]) / 24;
    g[1] = (u[2] - u[1]) / 6 + (u[3] - u[4]) / 12;
    g[2] = (u[3] + u[4] - u[1] - u[2]) / 6 + u[5];
  }
};

template <>
struct Tf<2> {  // points 0, +-1, inf
  static constexpr int A = 4;
  static inline void input(const float* __restrict in, index_t is, float* __restrict out, index_t os) {
    for (int l = 0; l < L; ++l) {
      const float d0 = in[l], d1 = in[is + l], d2 = in[2 * is + l], d3 = in[3 * is + l];
      out[l] = d0 - d2;
      out[os + l] = d1 + d2;
      out[2 * os + l] = d2 - d1;
      out[3 * os + l] = d1 - d3;
    }
  }
  static inline void output(const float* __restrict in, index_t is, float* __restrict out, index_t os) {
    for (int l = 0; l < L; ++l) {
      const float m0 = in[l], m1 = in[is + l], m2 = in[2 * is + l], m3 = in[3 * is + l];
      out[l] = m0 + m1 + m2;
      out[os + l] = m1 - m2 - m3;
    }
  }
  static void weight(const double g[3], double u[A]) {
    u[0] = g[0];
    u[1] = (g[0] + g[1] + g[2]) / 2;
    u[2] = (g[0] - g[1] + g[2]) / 2;
    u[3] = g[2];
  }
  static inline void grad(const float* __restrict in, index_t is, float* __restrict out, index_t os) {
    for (int l = 0; l < L; ++l) {
      const float o0 = in[l], o1 = in[is + l];
      out[l] = o0;
      out[os + l] = o0 + o1;
      out[2 * os + l] = o0 - o1;
      out[3 * os + l] = -o1;
    }
  }
  static void weight_t(const double u[A], double g[3]) {
    g[0] = u[0] + (u[1] + u[2]) / 2;
    g[1] = (u[1] - u[2]) / 2;
    g[2] = (u[1] + u[2]) / 2 + u[3];
  }
};

}  // namespace fastlayers::cpu::winograd_tf
