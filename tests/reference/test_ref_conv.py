import numpy as np
import pytest

from fastlayers import reference as ref

from ..helpers import assert_close, assert_grad_matches

# (N, C, H, W, K, R, S, stride, padding, dilation, groups): small, so finite differences stay fast.
CASES = [
    (2, 3, 5, 6, 4, 3, 2, 1, 0, 1, 1),               # non-square kernel and input
    (1, 2, 7, 5, 3, 3, 3, 2, 1, 1, 1),               # stride 2, padding, batch 1
    (2, 4, 6, 7, 4, 2, 3, (2, 1), (0, 2), (2, 1), 2),  # asymmetric pairs, dilation, groups 2
    (1, 3, 5, 5, 3, 3, 3, 1, 1, 2, 3),               # depthwise, dilation 2
    (2, 2, 4, 3, 1, 1, 1, 1, 0, 1, 1),               # 1x1, K = 1
    (1, 1, 8, 8, 2, 3, 3, 3, 2, 1, 1),               # stride 3, C = 1
]


def _data(rng, case):
    N, C, H, W, K, R, S, stride, padding, dilation, groups = case
    x = rng.standard_normal((N, C, H, W))
    w = rng.standard_normal((K, C // groups, R, S))
    b = rng.standard_normal(K)
    params = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    return x, w, b, params


@pytest.mark.parametrize("case", CASES)
def test_conv2d_backward_matches_finite_differences(rng, case):
    x, w, b, params = _data(rng, case)
    y = ref.conv2d(x, w, b, **params)
    g = rng.standard_normal(y.shape)
    gx, gw, gb = ref.conv2d_backward(g, x, w, **params)
    assert_grad_matches(gx, lambda t: np.sum(g * ref.conv2d(t, w, b, **params)), x, "grad_x")
    assert_grad_matches(gw, lambda t: np.sum(g * ref.conv2d(x, t, b, **params)), w, "grad_w")
    assert_grad_matches(gb, lambda t: np.sum(g * ref.conv2d(x, w, t, **params)), b, "grad_b")


def test_conv2d_forward_matches_direct_sum(rng):
    # The definition written out with scalar loops, independent of the tap/einsum formulation.
    x, w, b, params = _data(rng, (1, 4, 5, 6, 2, 2, 3, (2, 1), (1, 2), (1, 2), 2))
    y = ref.conv2d(x, w, b, **params)
    (sh, sw), (ph, pw), (dh, dw), G = params["stride"], params["padding"], params["dilation"], params["groups"]
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    K, Cg, R, S = w.shape
    expect = np.empty_like(y)
    for k in range(K):
        c0 = (k // (K // G)) * Cg
        for p in range(y.shape[2]):
            for q in range(y.shape[3]):
                acc = b[k]
                for c in range(Cg):
                    for r in range(R):
                        for s in range(S):
                            acc += w[k, c, r, s] * xp[0, c0 + c, p * sh + r * dh, q * sw + s * dw]
                expect[0, k, p, q] = acc
    np.testing.assert_allclose(y, expect, rtol=1e-12, atol=1e-12)


def test_conv1d_backward_matches_finite_differences(rng):
    x = rng.standard_normal((2, 4, 9))
    w = rng.standard_normal((6, 2, 3))
    b = rng.standard_normal(6)
    params = dict(stride=2, padding=1, dilation=2, groups=2)
    y = ref.conv1d(x, w, b, **params)
    assert y.shape == (2, 6, (9 + 2 - 2 * 2 - 1) // 2 + 1)
    g = rng.standard_normal(y.shape)
    gx, gw, gb = ref.conv1d_backward(g, x, w, **params)
    assert_grad_matches(gx, lambda t: np.sum(g * ref.conv1d(t, w, b, **params)), x, "grad_x")
    assert_grad_matches(gw, lambda t: np.sum(g * ref.conv1d(x, t, b, **params)), w, "grad_w")
    assert_grad_matches(gb, lambda t: np.sum(g * ref.conv1d(x, w, t, **params)), b, "grad_b")


def test_reference_keeps_float32(rng):
    x, w, b, params = _data(rng, CASES[1])
    y = ref.conv2d(x.astype(np.float32), w.astype(np.float32), b.astype(np.float32), **params)
    assert y.dtype == np.float32
    assert all(g.dtype == np.float32 for g in ref.conv2d_backward(y, x.astype(np.float32), w.astype(np.float32), **params))


@pytest.mark.parametrize("case", CASES)
def test_conv2d_matches_torch(rng, case):
    torch = pytest.importorskip("torch", reason="torch not installed: the PyTorch cross-check is skipped")
    F = torch.nn.functional
    x, w, b, params = _data(rng, case)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = F.conv2d(tx, tw, tb, **params)
    y = ref.conv2d(x, w, b, **params)
    g = rng.standard_normal(y.shape)
    ty.backward(torch.tensor(g))
    assert_close(y, ty.detach().numpy(), 1e-12, "forward")
    for mine, theirs, what in zip(ref.conv2d_backward(g, x, w, **params), (tx, tw, tb), ("grad_x", "grad_w", "grad_b")):
        assert_close(mine, theirs.grad.numpy(), 1e-12, what)


def test_conv1d_matches_torch(rng):
    torch = pytest.importorskip("torch", reason="torch not installed: the PyTorch cross-check is skipped")
    x, w, b = rng.standard_normal((3, 6, 11)), rng.standard_normal((4, 3, 4)), rng.standard_normal(4)
    params = dict(stride=3, padding=2, dilation=2, groups=2)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = torch.nn.functional.conv1d(tx, tw, tb, **params)
    y = ref.conv1d(x, w, b, **params)
    g = rng.standard_normal(y.shape)
    ty.backward(torch.tensor(g))
    assert_close(y, ty.detach().numpy(), 1e-12, "forward")
    for mine, theirs, what in zip(ref.conv1d_backward(g, x, w, **params), (tx, tw, tb), ("grad_x", "grad_w", "grad_b")):
        assert_close(mine, theirs.grad.numpy(), 1e-12, what)
