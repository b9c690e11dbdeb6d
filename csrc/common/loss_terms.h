// The losses' per-element formulas and the constants shared by the CPU kernels (csrc/cpu/loss*),
// the CUDA kernels (csrc/cuda/loss*) and the op layer (python/fastlayers/ops/loss.py), so the
// two backends compute the same terms. Header-only, host and device alike (no standard library).
//
// The definitions are torch.nn.functional's (python/fastlayers/reference/loss.py is the oracle).
// value() is the loss term of one element (input x, target y); grad() its derivative in x.
// Terms and derivatives are evaluated in double; the kernels round each per-element result to
// float once, and sum reduced losses in double.
#pragma once
#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define FL_LOSS_HD __host__ __device__ __forceinline__
#else
#define FL_LOSS_HD inline
#endif

namespace fastlayers::loss {

// reduction= of the op layer. "mean" divides by the number of terms, or for class-index
// cross-entropy / nll_loss by the summed weight of the non-ignored targets (PyTorch's rule).
enum Reduction : int { kNone = 0, kSum = 1, kMean = 2 };

// Codes in a CUDA label-status word (see csrc/cuda/loss.h): which op met a bad label.
enum StatusCode : std::int64_t {
  kStatusOk = 0,
  kStatusCrossEntropyLabel = 1,  // class index outside [0, C) and not ignore_index
  kStatusNllLabel = 2,
  kStatusLogisticLabel = 3,  // a label that is not -1 or +1
  kStatusHingeLabel = 4,
};
constexpr int kStatusWords = 4;  // [code, bad value (int64, or the float's bits), C, unused]

// CUDA loss forwards sum in two deterministic passes; the caller passes this many doubles of
// workspace (CuPy's pool), the CPU kernels ignore it. ops/loss.py reads it from the module.
constexpr std::int64_t kWorkspaceDoubles = 4096;

FL_LOSS_HD double fabs_(double x) { return x < 0.0 ? -x : x; }
// sign with sign(0) = 0 and NaN -> NaN (as torch.sign)
FL_LOSS_HD double sign_(double x) { return x > 0.0 ? 1.0 : (x < 0.0 ? -1.0 : x); }
FL_LOSS_HD double max0_(double x) { return x > 0.0 ? x : (x != x ? x : 0.0); }  // NaN stays

struct Mse {
  FL_LOSS_HD double value(double x, double y) const { return (x - y) * (x - y); }
  FL_LOSS_HD double grad(double x, double y) const { return 2.0 * (x - y); }
};

struct L1 {
  FL_LOSS_HD double value(double x, double y) const { return fabs_(x - y); }
  FL_LOSS_HD double grad(double x, double y) const { return sign_(x - y); }
};

// beta > 0 (beta == 0 is l1, chosen by the op layer)
struct SmoothL1 {
  double beta;
  FL_LOSS_HD double value(double x, double y) const {
    const double z = fabs_(x - y);
    return z < beta ? 0.5 * z * z / beta : z - 0.5 * beta;
  }
  FL_LOSS_HD double grad(double x, double y) const {
    const double d = x - y;
    return fabs_(d) < beta ? d / beta : sign_(d);
  }
};

struct Huber {  // delta > 0
  double delta;
  FL_LOSS_HD double value(double x, double y) const {
    const double z = fabs_(x - y);
    return z < delta ? 0.5 * z * z : delta * (z - 0.5 * delta);
  }
  FL_LOSS_HD double grad(double x, double y) const {
    const double d = x - y;
    return fabs_(d) < delta ? d : delta * sign_(d);
  }
};

// Hinge embedding, PyTorch's form for any target: max(0, margin - x) where y != 1, plus x where
// y != -1. The clamp passes its gradient at the kink (margin - x >= 0), as PyTorch's clamp_min.
struct HingeEmbedding {
  double margin;
  FL_LOSS_HD double value(double x, double y) const {
    return (y != 1.0 ? max0_(margin - x) : 0.0) + (y != -1.0 ? x : 0.0);
  }
  FL_LOSS_HD double grad(double x, double y) const {
    return (y != 1.0 && margin - x >= 0.0 ? -1.0 : 0.0) + (y != -1.0 ? 1.0 : 0.0);
  }
};

// log(1 + exp(x)) without overflow; NaN stays NaN.
FL_LOSS_HD double softplus(double x) { return max0_(x) + log1p(exp(-fabs_(x))); }
// exp(-|x|) never overflows; both branches are the same function.
FL_LOSS_HD double sigmoid(double x) {
  const double e = exp(-fabs_(x));
  return x >= 0.0 ? 1.0 / (1.0 + e) : (x != x ? x : e / (1.0 + e));
}

// log(1 + exp(-y x)) for any target y (soft_margin_loss; logistic_loss on +-1 labels).
struct SoftMargin {
  FL_LOSS_HD double value(double x, double y) const { return softplus(-y * x); }
  FL_LOSS_HD double grad(double x, double y) const { return -y * sigmoid(-y * x); }
};

// Binary cross-entropy on a logit x with target t, PyTorch's formula:
// (1 - t) x + lw softplus(-x), lw = 1 + (pos_weight - 1) t; d/dx = (1 - t) - lw sigmoid(-x).
// The weight multiplies both. Without pos_weight this is softplus(x) - t x, sigmoid(x) - t.
FL_LOSS_HD double bce_value(double x, double t, double pos_weight) {
  return (1.0 - t) * x + (1.0 + (pos_weight - 1.0) * t) * softplus(-x);
}
FL_LOSS_HD double bce_grad(double x, double t, double pos_weight) {
  return (1.0 - t) - (1.0 + (pos_weight - 1.0) * t) * sigmoid(-x);
}

// Labels in {-1, +1} (logistic_loss, hinge_loss): the CUDA kernels check them on the device.
FL_LOSS_HD bool is_pm1(double y) { return y == 1.0 || y == -1.0; }

// Hinge on +-1 labels: max(0, margin - y s); subgradient 0 at the kink; NaN stays NaN.
struct Hinge {
  double margin;
  FL_LOSS_HD double value(double s, double y) const { return max0_(margin - y * s); }
  FL_LOSS_HD double grad(double s, double y) const {
    const double m = margin - y * s;
    return m > 0.0 ? -y : (m != m ? m : 0.0);
  }
};

}  // namespace fastlayers::loss
