"""The pooling reference: backward against finite differences (float64), forward against PyTorch."""

import numpy as np
import pytest

from fastlayers import reference as ref

from ..helpers import assert_close, assert_grad_matches, reduction_tol

# (shape, kernel, stride, padding): overlapping, strided, padded, non-square.
GEOMETRIES = [
    ((2, 3, 5, 6), 2, None, 0),
    ((1, 2, 7, 5), 3, 2, 1),
    ((2, 1, 6, 7), (3, 2), (1, 2), (1, 1)),
    ((1, 2, 5, 5), 3, 1, 0),
    ((1, 1, 8, 9), (2, 3), 3, (1, 0)),
]


def _spaced(rng, shape):
    """Distinct values at least 0.1 apart (a random permutation), away from 0: no ties, no kinks."""
    x = (rng.permutation(int(np.prod(shape))) + 1.0) * 0.1
    return (x * rng.choice([-1.0, 1.0], size=x.size)).reshape(shape)


@pytest.mark.parametrize("shape,k,s,p", GEOMETRIES)
def test_max_pool_backward_finite_differences(rng, shape, k, s, p):
    x = _spaced(rng, shape)
    g = rng.standard_normal(ref.max_pool2d(x, k, s, p).shape)
    assert_grad_matches(ref.max_pool2d_backward(g, x, k, s, p),
                        lambda t: np.sum(g * ref.max_pool2d(t, k, s, p)), x, "max_pool2d")


@pytest.mark.parametrize("shape,k,s,p", GEOMETRIES)
@pytest.mark.parametrize("include", [True, False])
@pytest.mark.parametrize("ceil", [False, True])
def test_avg_pool_backward_finite_differences(rng, shape, k, s, p, include, ceil):
    x = rng.standard_normal(shape)
    for div in (None, -3):
        opts = dict(ceil_mode=ceil, count_include_pad=include, divisor_override=div)
        g = rng.standard_normal(ref.avg_pool2d(x, k, s, p, **opts).shape)
        assert_grad_matches(ref.avg_pool2d_backward(g, x, k, s, p, **opts),
                            lambda t: np.sum(g * ref.avg_pool2d(t, k, s, p, **opts)), x, f"avg_pool2d {opts}")


@pytest.mark.parametrize("shape,k,s,pad", GEOMETRIES)
@pytest.mark.parametrize("p", [1.0, 2.0, 3.5, 0.7])
@pytest.mark.parametrize("ceil", [False, True])
def test_lp_pool_backward_finite_differences(rng, shape, k, s, pad, p, ceil):
    x = _spaced(rng, shape)  # |x| >= 0.1: away from the kink of |x| at 0
    g = rng.standard_normal(ref.lp_pool2d(x, p, k, s, ceil, padding=pad).shape)
    assert_grad_matches(ref.lp_pool2d_backward(g, x, p, k, s, ceil, padding=pad),
                        lambda t: np.sum(g * ref.lp_pool2d(t, p, k, s, ceil, padding=pad)), x, f"lp_pool2d p={p}")


@pytest.mark.parametrize("shape,k,s,p", GEOMETRIES)
@pytest.mark.parametrize("d,ceil", [(1, True), (2, False), ((2, 1), True)])
def test_max_pool_dilation_ceil_finite_differences(rng, shape, k, s, p, d, ceil):
    x = _spaced(rng, shape)
    try:
        y = ref.max_pool2d(x, k, s, p, d, ceil)
    except (ValueError, IndexError):
        pytest.skip("no output for this dilation")
    g = rng.standard_normal(y.shape)
    assert_grad_matches(ref.max_pool2d_backward(g, x, k, s, p, d, ceil),
                        lambda t: np.sum(g * ref.max_pool2d(t, k, s, p, d, ceil)), x, "max_pool2d")


@pytest.mark.parametrize("shape,size", [((2, 2, 7, 5), (3, 4)), ((1, 2, 4, 4), (6, 5)), ((1, 1, 6, 6), 1),
                                        ((1, 2, 5, 7), (None, 3))])
def test_adaptive_finite_differences(rng, shape, size):
    x = _spaced(rng, shape)
    g = rng.standard_normal(ref.adaptive_avg_pool2d(x, size).shape)
    assert_grad_matches(ref.adaptive_avg_pool2d_backward(g, x, size),
                        lambda t: np.sum(g * ref.adaptive_avg_pool2d(t, size)), x, "adaptive_avg_pool2d")
    assert_grad_matches(ref.adaptive_max_pool2d_backward(g, x, size),
                        lambda t: np.sum(g * ref.adaptive_max_pool2d(t, size)), x, "adaptive_max_pool2d")


def test_max_unpool_finite_differences(rng):
    # Non-overlapping windows: every index distinct (with duplicates the last write wins, and the
    # gather backward, PyTorch's, still gives each duplicate the gradient: not a derivative).
    x = _spaced(rng, (2, 2, 6, 7))
    y, idx = ref.max_pool2d(x, 2, 2, 0, 1, True, return_indices=True)
    g = rng.standard_normal((2, 2, 6, 7))
    assert_grad_matches(ref.max_unpool2d_backward(g, y, idx, 2, 2, 0, (6, 7)),
                        lambda t: np.sum(g * ref.max_unpool2d(t, idx, 2, 2, 0, (6, 7))), y, "max_unpool2d")


def test_global_avg_pool_backward_finite_differences(rng):
    x = rng.standard_normal((2, 3, 4, 5))
    g = rng.standard_normal((2, 3))
    assert_grad_matches(ref.global_avg_pool2d_backward(g, x),
                        lambda t: np.sum(g * ref.global_avg_pool2d(t)), x, "global_avg_pool2d")


def test_lp_pool_gradient_is_zero_not_nan_at_zero():
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 0, 0] = 2.0  # one window with a single non-zero cell, three all-zero windows
    for p in (0.5, 1.0, 2.0, 3.5):
        gi = ref.lp_pool2d_backward(np.ones((1, 1, 2, 2)), x, p, 2)
        assert np.all(np.isfinite(gi))
        expected = np.zeros_like(x)
        expected[0, 0, 0, 0] = 1.0  # d|x|/dx = 1 when x is the only non-zero cell: y = |x|
        np.testing.assert_allclose(gi, expected, atol=1e-12)


def test_max_pool_ties_and_nan_rules():
    x = np.array([[[[1.0, 3.0], [3.0, 2.0]]]])
    gi = ref.max_pool2d_backward(np.ones((1, 1, 1, 1)), x, 2)
    np.testing.assert_array_equal(gi, [[[[0, 1], [0, 0]]]])  # first of the tied maxima
    x = np.array([[[[1.0, np.nan], [9.0, np.nan]]]])
    assert np.isnan(ref.max_pool2d(x, 2)[0, 0, 0, 0])
    # the last NaN, as PyTorch (every NaN displaces the running maximum)
    np.testing.assert_array_equal(ref.max_pool2d_backward(np.ones((1, 1, 1, 1)), x, 2), [[[[0, 0], [0, 1]]]])




def _torch():
    return pytest.importorskip("torch", reason="PyTorch not installed: no cross-check against torch.nn.functional")


@pytest.mark.parametrize("shape,k,s,p", GEOMETRIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_and_backward_match_torch(rng, shape, k, s, p, dtype):
    torch = _torch()
    F = torch.nn.functional
    x = rng.standard_normal(shape).astype(dtype)
    tx = torch.tensor(x, requires_grad=True)
    kh, kw = (k, k) if isinstance(k, int) else k
    tol = reduction_tol(kh * kw) if dtype == np.float32 else 1e-12

    ty = F.max_pool2d(tx, k, s, p)
    g = rng.standard_normal(tuple(ty.shape)).astype(dtype)
    ty.backward(torch.tensor(g))
    np.testing.assert_array_equal(ref.max_pool2d(x, k, s, p), ty.detach().numpy())
    np.testing.assert_array_equal(ref.max_pool2d_backward(g, x, k, s, p), tx.grad.numpy())

    for include in (True, False):
        tx.grad = None
        ty = F.avg_pool2d(tx, k, s, p, count_include_pad=include)
        ty.backward(torch.tensor(g))
        assert_close(ref.avg_pool2d(x, k, s, p, count_include_pad=include), ty.detach().numpy(), tol, "avg_pool2d")
        assert_close(ref.avg_pool2d_backward(g, x, k, s, p, count_include_pad=include), tx.grad.numpy(), tol,
                     "avg backward")

    if p == 0 or p == (0, 0):  # torch's lp_pool2d has no padding; on positive input |x| = x
        xp = np.abs(x) + dtype(0.5)
        txp = torch.tensor(xp, requires_grad=True)
        for pw in (1.0, 2.0, 3.5):
            txp.grad = None
            ty = F.lp_pool2d(txp, pw, k, s)
            ty.backward(torch.tensor(g))
            assert_close(ref.lp_pool2d(xp, pw, k, s), ty.detach().numpy(), tol, f"lp p={pw}")
            assert_close(ref.lp_pool2d_backward(g, xp, pw, k, s), txp.grad.numpy(), tol, f"lp backward p={pw}")


def test_global_avg_matches_torch(rng):
    torch = _torch()
    x = rng.standard_normal((2, 3, 7, 5))
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.adaptive_avg_pool2d(tx, 1)[:, :, 0, 0]
    g = rng.standard_normal((2, 3))
    ty.backward(torch.tensor(g))
    assert_close(ref.global_avg_pool2d(x), ty.detach().numpy(), 1e-12, "global_avg_pool2d")
    assert_close(ref.global_avg_pool2d_backward(g, x), tx.grad.numpy(), 1e-12, "global backward")


@pytest.mark.parametrize("shape,k,s,p", GEOMETRIES)
def test_max_pool_ties_nan_inf_match_torch(rng, shape, k, s, p):
    torch = _torch()
    x = rng.integers(0, 3, size=shape).astype(np.float32)  # many tied maxima
    x[rng.random(shape) < 0.15] = np.nan
    x[rng.random(shape) < 0.15] = -np.inf
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.max_pool2d(tx, k, s, p)
    g = rng.standard_normal(tuple(ty.shape)).astype(np.float32)
    ty.backward(torch.tensor(g))
    np.testing.assert_array_equal(ref.max_pool2d(x, k, s, p), ty.detach().numpy())
    np.testing.assert_array_equal(ref.max_pool2d_backward(g, x, k, s, p), tx.grad.numpy())
