// Device code of the CUDA 3-D convolution (csrc/cuda/conv3d.cu has the launchers): the three
// operand "ops" that let conv2d's implicit-GEMM kernel (conv_kernels.cuh) read NCDHW tensors.
// Same table as conv.cu, with a depth axis:
//   pass             M (rows)   columns          reduction          A[m][kk]          B[kk][col]
//   forward          K/groups   N*OD*P*Q         C/groups*T*R*S     w                 x patch (gathered)
//   backward_data    C/groups   N*D*H*W          K/groups*T*R*S     w (permuted)      grad_out where a tap
//                                                                                     lands on (d, h, w)
//   backward_weight  K/groups   C/groups*T*R*S   N*OD*P*Q (split)   grad_out          x patch (gathered)
// A header with no host-only CUDA API, so csrc/cuda/host_emulation can compile and run it with g++.
#pragma once
#include "cuda/conv3d_gemm.cuh"

namespace fastlayers::cuda::conv3d_detail {

template <class I>
struct Dims3 {
  I N, C, D, H, W, K, T, R, S, OD, P, Q, sd, sh, sw, pd, ph, pw, dd, dh, dw, G;
  I Cg, Kg, RS, TRS, CTRS, PQ, ODPQ, HW, DHW;
};

// Shape: any struct with Conv3dShape's fields (csrc/common/conv3d_shape.h).
template <class I, class Shape>
Dims3<I> dims3_of(const Shape& s) {
  Dims3<I> d;
  d.N = static_cast<I>(s.N), d.C = static_cast<I>(s.C), d.D = static_cast<I>(s.D), d.H = static_cast<I>(s.H);
  d.W = static_cast<I>(s.W), d.K = static_cast<I>(s.K), d.T = static_cast<I>(s.T), d.R = static_cast<I>(s.R);
  d.S = static_cast<I>(s.S), d.OD = static_cast<I>(s.OD), d.P = static_cast<I>(s.P), d.Q = static_cast<I>(s.Q);
  d.sd = static_cast<I>(s.stride_d), d.sh = static_cast<I>(s.stride_h), d.sw = static_cast<I>(s.stride_w);
  d.pd = static_cast<I>(s.pad_d), d.ph = static_cast<I>(s.pad_h), d.pw = static_cast<I>(s.pad_w);
  d.dd = static_cast<I>(s.dil_d), d.dh = static_cast<I>(s.dil_h), d.dw = static_cast<I>(s.dil_w);
  d.G = static_cast<I>(s.groups);
  d.Cg = d.C / d.G, d.Kg = d.K / d.G, d.RS = d.R * d.S, d.TRS = d.T * d.RS, d.CTRS = d.Cg * d.TRS;
  d.PQ = d.P * d.Q, d.ODPQ = d.OD * d.PQ, d.HW = d.H * d.W, d.DHW = d.D * d.HW;
  return d;
}

template <class I>
__device__ __forceinline__ bool inside3(I d, I h, I w, const Dims3<I>& s) {
  return d >= 0 && d < s.D && h >= 0 && h < s.H && w >= 0 && w < s.W;
}

template <class I>
struct ForwardOp3 {
  const float* x;
  const float* w;
  const float* bias;  // may be null
  float* y;
  Dims3<I> d;

  struct Col {
    bool ok;
    I x_base, d0, h0, w0;  // x offset of image n, group g; first input cell of output (od, p, q)
  };
  __device__ Col column(I g, I col, I ncol) const {
    Col c{col < ncol, 0, 0, 0, 0};
    if (!c.ok) return c;
    const I n = col / d.ODPQ, v = col % d.ODPQ, od = v / d.PQ, pq = v % d.PQ;
    c.x_base = (n * d.C + g * d.Cg) * d.DHW;
    c.d0 = od * d.sd - d.pd;
    c.h0 = (pq / d.Q) * d.sh - d.ph;
    c.w0 = (pq % d.Q) * d.sw - d.pw;
    return c;
  }
  __device__ float a(I g, I m, I kk) const { return w[(g * d.Kg + m) * d.CTRS + kk]; }
  __device__ float b(const Col& c, I kk) const {
    const I ci = kk / d.TRS, trs = kk % d.TRS, t = trs / d.RS, rs = trs % d.RS;
    const I id = c.d0 + t * d.dd, ih = c.h0 + (rs / d.S) * d.dh, iw = c.w0 + (rs % d.S) * d.dw;
    return inside3(id, ih, iw, d) ? x[c.x_base + ci * d.DHW + id * d.HW + ih * d.W + iw] : 0.0f;
  }
  __device__ void store(I g, I /*split*/, I m, I col, float v) const {
    const I n = col / d.ODPQ, vox = col % d.ODPQ, k = g * d.Kg + m;
    y[(n * d.K + k) * d.ODPQ + vox] = bias ? v + bias[k] : v;
  }
};

template <class I>
struct BackwardDataOp3 {
  const float* go;
  const float* w;
  float* gx;
  Dims3<I> d;

  struct Col {
    bool ok;
    I go_base, dz, h, w;  // grad_out offset of image n, group g; the input cell this column produces
  };
  __device__ Col column(I g, I col, I ncol) const {
    Col c{col < ncol, 0, 0, 0, 0};
    if (!c.ok) return c;
    const I n = col / d.DHW, v = col % d.DHW, hw = v % d.HW;
    c.go_base = (n * d.K + g * d.Kg) * d.ODPQ;
    c.dz = v / d.HW;
    c.h = hw / d.W;
    c.w = hw % d.W;
    return c;
  }
  // A[c][(k, t, r, s)] = w[g*Kg + k][c][t][r][s]
  __device__ float a(I g, I m, I kk) const {
    const I k = kk / d.TRS, trs = kk % d.TRS;
    return w[((g * d.Kg + k) * d.Cg + m) * d.TRS + trs];
  }
  // grad_out[k][od][p][q] where od*sd - pd + t*dd == dz (likewise p, q), if such an output exists.
  __device__ float b(const Col& c, I kk) const {
    const I k = kk / d.TRS, trs = kk % d.TRS, t = trs / d.RS, rs = trs % d.RS, r = rs / d.S, s = rs % d.S;
    const I dp = c.dz + d.pd - t * d.dd, hp = c.h + d.ph - r * d.dh, wp = c.w + d.pw - s * d.dw;
    if (dp < 0 || hp < 0 || wp < 0 || dp % d.sd != 0 || hp % d.sh != 0 || wp % d.sw != 0) return 0.0f;
    const I od = dp / d.sd, p = hp / d.sh, q = wp / d.sw;
    return (od < d.OD && p < d.P && q < d.Q) ? go[c.go_base + k * d.ODPQ + (od * d.P + p) * d.Q + q] : 0.0f;
  }
  __device__ void store(I g, I /*split*/, I m, I col, float v) const {
    const I n = col / d.DHW, v_ = col % d.DHW;
    gx[(n * d.C + g * d.Cg + m) * d.DHW + v_] = v;
  }
};

template <class I>
struct BackwardWeightOp3 {
  const float* go;
  const float* x;
  float* out;  // grad_w (one split) or the workspace (splits x K x CTRS partial sums)
  Dims3<I> d;

  struct Col {
    bool ok;
    I x_off, doff, hoff, woff;  // x offset of channel g*Cg + c within an image; the tap's offsets
  };
  __device__ Col column(I g, I col, I ncol) const {
    Col c{col < ncol, 0, 0, 0, 0};
    if (!c.ok) return c;
    const I ci = col / d.TRS, trs = col % d.TRS, rs = trs % d.RS;
    c.x_off = (g * d.Cg + ci) * d.DHW;
    c.doff = (trs / d.RS) * d.dd - d.pd;
    c.hoff = (rs / d.S) * d.dh - d.ph;
    c.woff = (rs % d.S) * d.dw - d.pw;
    return c;
  }
  // A[k][(n, od, p, q)] = grad_out[n][g*Kg + k][od][p][q]
  __device__ float a(I g, I m, I kk) const {
    const I n = kk / d.ODPQ, v = kk % d.ODPQ;
    return go[(n * d.K + g * d.Kg + m) * d.ODPQ + v];
  }
  __device__ float b(const Col& c, I kk) const {
    const I n = kk / d.ODPQ, v = kk % d.ODPQ, od = v / d.PQ, pq = v % d.PQ;
    const I id = od * d.sd + c.doff, ih = (pq / d.Q) * d.sh + c.hoff, iw = (pq % d.Q) * d.sw + c.woff;
    return inside3(id, ih, iw, d) ? x[n * d.C * d.DHW + c.x_off + id * d.HW + ih * d.W + iw] : 0.0f;
  }
  __device__ void store(I g, I split, I m, I col, float v) const {
    out[split * d.K * d.CTRS + (g * d.Kg + m) * d.CTRS + col] = v;
  }
};

// y[n][c][i] += b[c] over (N, C, inner) (conv_transpose2d's bias: its forward is a backward-data pass).
template <class I>
__global__ void add_channel_bias_kernel(float* __restrict__ y, const float* __restrict__ b, I C, I inner, I total) {
  for (I i = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<I>(gridDim.x) * blockDim.x)
    y[i] += b[(i / inner) % C];
}

}  // namespace fastlayers::cuda::conv3d_detail
