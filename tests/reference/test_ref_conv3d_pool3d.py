"""The NumPy references of conv3d, conv_transpose2d and the 3-D pools: backward passes against
float64 finite differences, forwards against loops written out from the definition and against
torch.nn.functional (when installed)."""

import numpy as np
import pytest

from fastlayers import reference as ref

from ..helpers import assert_close, assert_grad_matches

# conv3d: (N, C, D, H, W, K, T, R, S, stride, padding, dilation, groups), small for finite differences.
CONV3D = [
    (1, 2, 4, 3, 4, 3, 2, 2, 3, 1, 1, 1, 1),
    (2, 2, 5, 4, 3, 2, 3, 1, 2, (2, 1, 1), (1, 0, 1), (1, 1, 2), 2),
    (1, 3, 3, 3, 3, 3, 1, 1, 1, 1, 0, 1, 3),  # 1x1x1 depthwise
]

# conv_transpose2d: (N, C_in, H, W, C_out/groups, R, S, stride, padding, output_padding, groups, dilation)
CONVT = [
    (2, 2, 3, 4, 3, 3, 2, 1, 0, 0, 1, 1),
    (1, 4, 3, 3, 2, 3, 3, 2, 1, 1, 2, 1),              # stride 2 with output_padding, groups
    (1, 2, 2, 3, 2, 2, 3, (2, 3), (1, 0), (1, 2), 1, (1, 2)),
    (1, 2, 3, 3, 1, 2, 2, 1, 1, 1, 1, 2),              # output_padding >= stride (< dilation)
]


def _conv3d_data(rng, case):
    N, C, D, H, W, K, T, R, S, stride, padding, dilation, groups = case
    x = rng.standard_normal((N, C, D, H, W))
    w = rng.standard_normal((K, C // groups, T, R, S))
    b = rng.standard_normal(K)
    return x, w, b, dict(stride=stride, padding=padding, dilation=dilation, groups=groups)


@pytest.mark.parametrize("case", CONV3D)
def test_conv3d_backward_matches_finite_differences(rng, case):
    x, w, b, params = _conv3d_data(rng, case)
    g = rng.standard_normal(ref.conv3d(x, w, b, **params).shape)
    gx, gw, gb = ref.conv3d_backward(g, x, w, **params)
    assert_grad_matches(gx, lambda t: np.sum(g * ref.conv3d(t, w, b, **params)), x, "grad_x")
    assert_grad_matches(gw, lambda t: np.sum(g * ref.conv3d(x, t, b, **params)), w, "grad_w")
    assert_grad_matches(gb, lambda t: np.sum(g * ref.conv3d(x, w, t, **params)), b, "grad_b")


def test_conv3d_forward_matches_direct_sum(rng):
    x, w, b, params = _conv3d_data(rng, CONV3D[1])
    y = ref.conv3d(x, w, b, **params)
    (sd, sh, sw), (pd, ph, pw), (dd, dh, dw) = (2, 1, 1), (1, 0, 1), (1, 1, 2)
    K, Cg, T, R, S = w.shape
    want = np.zeros_like(y)
    for n, k, od, p, q in np.ndindex(*y.shape):
        acc = b[k]
        g = k // (K // 2)
        for c, t, r, s in np.ndindex(Cg, T, R, S):
            i, j, l = od * sd - pd + t * dd, p * sh - ph + r * dh, q * sw - pw + s * dw
            if 0 <= i < x.shape[2] and 0 <= j < x.shape[3] and 0 <= l < x.shape[4]:
                acc += w[k, c, t, r, s] * x[n, g * Cg + c, i, j, l]
        want[n, k, od, p, q] = acc
    assert_close(y, want, 1e-12, "conv3d direct sum")


def _convt_data(rng, case):
    N, Cin, H, W, Cog, R, S, stride, padding, opad, groups, dilation = case
    x = rng.standard_normal((N, Cin, H, W))
    w = rng.standard_normal((Cin, Cog, R, S))
    b = rng.standard_normal(Cog * groups)
    return x, w, b, dict(stride=stride, padding=padding, output_padding=opad, groups=groups, dilation=dilation)


@pytest.mark.parametrize("case", CONVT)
def test_conv_transpose2d_backward_matches_finite_differences(rng, case):
    x, w, b, params = _convt_data(rng, case)
    g = rng.standard_normal(ref.conv_transpose2d(x, w, b, **params).shape)
    gx, gw, gb = ref.conv_transpose2d_backward(g, x, w, **params)
    assert_grad_matches(gx, lambda t: np.sum(g * ref.conv_transpose2d(t, w, b, **params)), x, "grad_x")
    assert_grad_matches(gw, lambda t: np.sum(g * ref.conv_transpose2d(x, t, b, **params)), w, "grad_w")
    assert_grad_matches(gb, lambda t: np.sum(g * ref.conv_transpose2d(x, w, t, **params)), b, "grad_b")


@pytest.mark.parametrize("case", CONVT[:2])
def test_conv_transpose2d_is_the_adjoint_of_conv2d(rng, case):
    # <conv_transpose2d(x, w), y> == <x, conv2d(y, w)> for the conv2d whose output has x's shape.
    x, w, _, p = _convt_data(rng, case)
    y = rng.standard_normal(ref.conv_transpose2d(x, w, **p).shape)
    lhs = np.sum(ref.conv_transpose2d(x, w, **p) * y)
    rhs = np.sum(x * ref.conv2d(y, w, stride=p["stride"], padding=p["padding"], dilation=p["dilation"],
                                groups=p["groups"]))
    assert abs(lhs - rhs) <= 1e-9 * max(1.0, abs(lhs))


# Pools: (shape, kwargs); values are spread apart so no window has a tie within 2*eps.
MAXPOOL = [
    ((1, 2, 4, 5, 4), dict(kernel_size=2)),
    ((2, 1, 5, 4, 5), dict(kernel_size=3, stride=2, padding=1)),
    ((1, 2, 5, 6, 5), dict(kernel_size=(3, 2, 2), stride=(2, 1, 2), padding=(1, 1, 0), dilation=(1, 2, 1),
                           ceil_mode=True)),
]
AVGPOOL = [
    ((1, 2, 4, 5, 4), dict(kernel_size=2)),
    ((2, 1, 5, 4, 5), dict(kernel_size=3, stride=2, padding=1, count_include_pad=False, ceil_mode=True)),
    ((1, 2, 5, 3, 4), dict(kernel_size=(3, 2, 2), stride=(1, 2, 3), padding=(1, 1, 0), divisor_override=5)),
]


def _distinct(rng, shape):
    return rng.permutation(np.prod(shape)).reshape(shape) * 0.1 + rng.uniform(0, 0.01, shape)


@pytest.mark.parametrize("shape,kw", MAXPOOL)
def test_max_pool3d_backward_matches_finite_differences(rng, shape, kw):
    x = _distinct(rng, shape)
    g = rng.standard_normal(ref.max_pool3d(x, **kw).shape)
    assert_grad_matches(ref.max_pool3d_backward(g, x, **kw), lambda t: np.sum(g * ref.max_pool3d(t, **kw)), x,
                        "max_pool3d grad", eps=1e-4)


@pytest.mark.parametrize("shape,kw", AVGPOOL)
def test_avg_pool3d_backward_matches_finite_differences(rng, shape, kw):
    x = rng.standard_normal(shape)
    g = rng.standard_normal(ref.avg_pool3d(x, **kw).shape)
    assert_grad_matches(ref.avg_pool3d_backward(g, x, **kw), lambda t: np.sum(g * ref.avg_pool3d(t, **kw)), x,
                        "avg_pool3d grad")


def test_pool3d_reference_edges():
    x = np.arange(8.0).reshape(1, 1, 2, 2, 2)
    # Dilation 3 with padding 1 on a 2-cell axis: the only window's taps (-1, 2) are all padding.
    y, idx = ref.max_pool3d(x, 2, stride=1, padding=1, dilation=3, return_indices=True)
    assert y.shape == (1, 1, 1, 1, 1) and y[0, 0, 0, 0, 0] == -np.inf and idx[0, 0, 0, 0, 0] == -1
    assert np.all(ref.max_pool3d_backward(np.ones_like(y), x, 2, 1, 1, 3) == 0)
    # A NaN wins its window, and its gradient goes to the last NaN.
    x = np.zeros((1, 1, 2, 2, 2))
    x[0, 0, 0, 0, 1] = x[0, 0, 1, 1, 0] = np.nan
    y, idx = ref.max_pool3d(x, 2, return_indices=True)
    assert np.isnan(y).all() and idx[0, 0, 0, 0, 0] == 6
    # Unbatched input keeps its shape convention.
    assert ref.avg_pool3d(np.ones((2, 4, 4, 4)), 2).shape == (2, 2, 2, 2)


def test_references_match_torch(rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    t = torch.from_numpy
    for case in CONV3D:
        x, w, b, p = _conv3d_data(rng, case)
        assert_close(ref.conv3d(x, w, b, **p), F.conv3d(t(x), t(w), t(b), **p).numpy(), 1e-12, f"conv3d {case}")
    for case in CONVT:
        x, w, b, p = _convt_data(rng, case)
        assert_close(ref.conv_transpose2d(x, w, b, **p), F.conv_transpose2d(t(x), t(w), t(b), **p).numpy(), 1e-12,
                     f"conv_transpose2d {case}")
    for shape, kw in MAXPOOL:
        x = rng.standard_normal(shape)
        y, i = ref.max_pool3d(x, **kw, return_indices=True)
        ty, ti = F.max_pool3d(t(x), **kw, return_indices=True)
        assert_close(y, ty.numpy(), 0, f"max_pool3d {kw}")
        assert np.array_equal(i, ti.numpy())
    for shape, kw in AVGPOOL:
        x = rng.standard_normal(shape)
        assert_close(ref.avg_pool3d(x, **kw), F.avg_pool3d(t(x), **kw).numpy(), 1e-12, f"avg_pool3d {kw}")
