"""The loss reference with torch.nn.functional's options: every backward against central
differences in float64 (for "none" through a random upstream gradient), and the forward and
backward against PyTorch's own autograd."""

import numpy as np
import pytest

from fastlayers import reference as ref

from ..helpers import assert_grad_matches

REDUCTIONS = ["none", "mean", "sum"]


def _pm1(rng, shape):
    return np.asarray(np.where(rng.random(shape) < 0.5, -1.0, 1.0))


def _away_from(x, kinks, gap=1e-2):
    """x nudged off the points where a loss has a kink (finite differences need a smooth point)."""
    x = np.array(x, dtype=np.float64)
    for k in kinks:
        close = np.abs(x - k) < gap
        x[close] += 3 * gap
    return x


def _cases(rng):
    """(name, input, target, keywords), inputs away from every kink."""
    shape = (3, 4)
    x = 2 * rng.standard_normal(shape)
    y = 2 * rng.standard_normal(shape)
    pm = _pm1(rng, shape)
    d = x - y
    cases = [
        ("mse_loss", x, y, {}),
        ("l1_loss", y + _away_from(d, [0.0]), y, {}),
        ("smooth_l1_loss", y + _away_from(d, [0.0, 0.7, -0.7]), y, {"beta": 0.7}),
        ("huber_loss", y + _away_from(d, [0.0, 1.3, -1.3]), y, {"delta": 1.3}),
        ("soft_margin_loss", x, y, {}),
        ("hinge_embedding_loss", _away_from(x, [1.5]), pm, {"margin": 1.5}),
        ("hinge_embedding_loss", _away_from(x, [-0.5]), np.round(y), {"margin": -0.5}),
        ("binary_cross_entropy_with_logits", x, rng.random(shape), {}),
        ("binary_cross_entropy_with_logits", x, rng.random(shape),
         {"weight": rng.random(4), "pos_weight": 3 * rng.random((1, 4))}),
        ("logistic_loss", x, pm, {}),
    ]
    for shape, c in [((5, 4), 4), ((4,), 4), ((2, 3, 2, 3), 3)]:
        z = 2 * rng.standard_normal(shape)
        lshape = () if len(shape) == 1 else (shape[0],) + shape[2:]
        labels = np.asarray(rng.integers(0, c, lshape))
        w = rng.random(c) + 0.2
        cases += [
            ("cross_entropy", z, labels, {}),
            ("cross_entropy", z, labels, {"weight": w, "ignore_index": 1, "label_smoothing": 0.3}),
            ("cross_entropy", z, rng.random(shape), {"weight": w, "label_smoothing": 0.2}),
            ("nll_loss", z, labels, {"weight": w, "ignore_index": 2}),
        ]
    return cases


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_backward_matches_finite_differences(rng, reduction):
    for name, x, t, kw in _cases(rng):
        f, f_b = getattr(ref, name), getattr(ref, name + "_backward")
        loss = f(x, t, reduction=reduction, **kw)
        up = rng.standard_normal(np.shape(loss))  # the upstream gradient, shaped like the loss
        grad = f_b(x, t, reduction=reduction, grad_out=up, **kw)
        assert grad.dtype == np.float64 and grad.shape == np.shape(x), name
        assert_grad_matches(grad, lambda v: float(np.sum(up * f(v, t, reduction=reduction, **kw))), x,
                            f"{name} {kw} {reduction}")


def test_matches_torch_autograd(rng):
    torch = pytest.importorskip("torch", reason="PyTorch not installed: the torch cross-check is skipped")
    F = torch.nn.functional
    for name, x, t, kw in _cases(rng):
        tname = "soft_margin_loss" if name == "logistic_loss" else name
        for reduction in REDUCTIONS:
            xt = torch.tensor(x, requires_grad=True)
            tkw = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
            want = getattr(F, tname)(xt, torch.tensor(t), reduction=reduction, **tkw)
            up = rng.standard_normal(tuple(want.shape))
            want.backward(torch.tensor(up))
            np.testing.assert_allclose(ref.__dict__[name](x, t, reduction=reduction, **kw), want.detach().numpy(),
                                       rtol=1e-10, atol=1e-12, err_msg=f"{name} {kw} {reduction}")
            grad = ref.__dict__[name + "_backward"](x, t, reduction=reduction, grad_out=up, **kw)
            np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=1e-10, atol=1e-12,
                                       err_msg=f"{name} {kw} {reduction} backward")


def test_torch_corner_cases(rng):
    torch = pytest.importorskip("torch", reason="PyTorch not installed: the torch cross-check is skipped")
    F = torch.nn.functional
    z = rng.standard_normal((4, 3))
    everything = np.full(4, 1)
    for reduction in REDUCTIONS:  # all targets ignored: "mean" is NaN (0 / 0), the gradient 0
        for eps in (0.0, 0.2):
            want = F.cross_entropy(torch.tensor(z), torch.tensor(everything), ignore_index=1, reduction=reduction,
                                   label_smoothing=eps)
            got = ref.cross_entropy(z, everything, ignore_index=1, reduction=reduction, label_smoothing=eps)
            np.testing.assert_array_equal(got, want.numpy())
    g = ref.cross_entropy_backward(z, everything, ignore_index=1)
    np.testing.assert_array_equal(g, 0.0)
    # ignore_index -1 with a -1 target (a sample of torch's own nll_loss inputs)
    y = np.array([-1, 2, 0, 1])
    np.testing.assert_allclose(ref.nll_loss(z, y, ignore_index=-1), F.nll_loss(torch.tensor(z), torch.tensor(y),
                                                                              ignore_index=-1).numpy(), rtol=1e-12)


def test_reference_rejects_bad_options():
    z, y = np.zeros((2, 3)), np.array([0, 1])
    with pytest.raises(ValueError, match="reduction"):
        ref.cross_entropy(z, y, reduction="avg")
    with pytest.raises(ValueError, match="ignore_index is not supported with probability targets"):
        ref.cross_entropy(z, np.full((2, 3), 1 / 3), ignore_index=0)
    with pytest.raises(ValueError, match="label_smoothing"):
        ref.cross_entropy(z, y, label_smoothing=2.0)
    with pytest.raises(ValueError, match="beta"):
        ref.smooth_l1_loss(z, z, beta=-1.0)
    with pytest.raises(ValueError, match="delta"):
        ref.huber_loss(z, z, delta=0.0)
    with pytest.raises(ValueError, match="target must lie in"):
        ref.nll_loss(z, np.array([0, 3]))
