"""The loss reference: backward against central differences in float64, stability at large
logits (closed forms), and the forward against torch.nn.functional when it is installed."""

import numpy as np
import pytest

from fastlayers import reference as ref

from ..helpers import assert_grad_matches


def _pm1(rng, shape):
    return np.where(rng.random(shape) < 0.5, -1.0, 1.0)


def _cases(rng):
    """(name, x, other, kwargs) in float64, x away from every kink."""
    x = 2 * rng.standard_normal((4, 5))
    y = _pm1(rng, x.shape)
    hinge_x = x.copy()
    for margin in (1.0, 0.0):  # keep y*s off the kink margin
        close = np.abs(margin - y * hinge_x) < 1e-2
        hinge_x[close] += 0.1 * y[close]
    unnormalised = rng.random((4, 5))  # rows need not sum to 1: the gradient is exact anyway
    return [
        ("mse_loss", x, rng.standard_normal(x.shape), {}),
        ("binary_cross_entropy_with_logits", x, rng.random(x.shape), {}),
        ("softmax_cross_entropy", x, rng.integers(0, 5, 4), {}),
        ("softmax_cross_entropy", x, unnormalised / unnormalised.sum(1, keepdims=True), {}),
        ("softmax_cross_entropy", x, unnormalised, {}),
        ("logistic_loss", x, y, {}),
        ("hinge_loss", hinge_x, y, {}),
        ("hinge_loss", hinge_x, y, {"margin": 0.0}),
    ]


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_backward_matches_finite_differences(rng, reduction):
    for name, x, other, kw in _cases(rng):
        f, f_b = getattr(ref, name), getattr(ref, name + "_backward")
        grad = f_b(x, other, reduction=reduction, **kw)
        assert grad.dtype == np.float64 and grad.shape == x.shape
        assert_grad_matches(grad, lambda t: float(f(t, other, reduction=reduction, **kw)), x,
                            f"{name} {kw} {reduction}")


def test_stable_closed_forms_at_large_logits():
    z = np.array([[1e4, -1e4, 0.0]])
    assert float(ref.softmax_cross_entropy(z, np.array([0]))) == 0.0
    assert float(ref.softmax_cross_entropy(z, np.array([1]))) == 2e4
    assert float(ref.binary_cross_entropy_with_logits(np.array([1e4, -1e4]), np.array([0.0, 1.0]),
                                                      reduction="sum")) == 2e4
    assert float(ref.logistic_loss(np.array([1e4, -1e4]), np.array([1.0, 1.0]), reduction="sum")) == 1e4
    g = ref.binary_cross_entropy_with_logits_backward(np.array([1e4, -1e4]), np.array([0.0, 0.0]), reduction="sum")
    np.testing.assert_array_equal(g, [1.0, 0.0])
    # float32 stays finite too
    z32 = np.array([[1e4, -1e4]], np.float32)
    assert np.isfinite(ref.softmax_cross_entropy(z32, np.array([1])))
    assert np.all(np.isfinite(ref.softmax_cross_entropy_backward(z32, np.array([1]))))


def test_reference_rejects_non_pm1_labels():
    with pytest.raises(ValueError, match="labels"):
        ref.logistic_loss(np.zeros(2), np.array([1.0, 0.0]))
    with pytest.raises(ValueError, match="reduction"):
        ref.mse_loss(np.zeros(2), np.zeros(2), reduction="max")


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_forward_matches_torch(rng, reduction):
    torch = pytest.importorskip("torch", reason="PyTorch not installed: the torch cross-check is skipped")
    F = torch.nn.functional
    x = 3 * rng.standard_normal((6, 4))
    t = rng.random(x.shape)
    probs = t / t.sum(1, keepdims=True)
    labels = rng.integers(0, 4, 6)
    y = _pm1(rng, x.shape)
    T = torch.tensor
    pairs = [
        (ref.mse_loss(x, t, reduction), F.mse_loss(T(x), T(t), reduction=reduction)),
        (ref.binary_cross_entropy_with_logits(x, t, reduction),
         F.binary_cross_entropy_with_logits(T(x), T(t), reduction=reduction)),
        (ref.softmax_cross_entropy(x, labels, reduction), F.cross_entropy(T(x), T(labels), reduction=reduction)),
        (ref.softmax_cross_entropy(x, probs, reduction), F.cross_entropy(T(x), T(probs), reduction=reduction)),
        (ref.logistic_loss(x, y, reduction), F.soft_margin_loss(T(x), T(y), reduction=reduction)),
    ]
    for ours, theirs in pairs:
        np.testing.assert_allclose(float(ours), float(theirs), rtol=1e-12)
