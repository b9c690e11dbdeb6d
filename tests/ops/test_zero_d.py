"""0-d inputs keep their shape through every op that takes them (as PyTorch), and relu_backward
passes the gradient at NaN inputs (PyTorch's mask is x <= 0 -> 0), on every backend and ISA."""

import numpy as np
import pytest

import fastlayers as fl
from fastlayers import reference as ref

from ..helpers import assert_close, reduction_tol


def _scalar(v):
    return np.asarray(v, np.float32)


UNARY = [("relu", ()), ("leaky_relu", (0.1,)), ("sigmoid", ()), ("tanh", ()), ("sign", ()), ("heaviside", (0.5,)),
         ("softmax", (0,)), ("log_softmax", (-1,))]
BACKWARD = [("relu_backward", "x"), ("leaky_relu_backward", "x"), ("sigmoid_backward", "y"), ("tanh_backward", "y"),
            ("softmax_backward", "y"), ("log_softmax_backward", "y")]


@pytest.mark.parametrize("name,extra", UNARY)
def test_unary_ops_keep_0d(device, name, extra):
    for v in (0.5, -2.0, 0.0):
        x = _scalar(v)
        y = getattr(fl, name)(device.put(x), *extra)
        assert y.shape == () and y.dtype == np.float32, name
        assert_close(y, getattr(ref, name)(x.astype(np.float64), *extra), reduction_tol(1), name)


@pytest.mark.parametrize("name,arg", BACKWARD)
def test_activation_backwards_keep_0d(device, name, arg):
    g, t = _scalar(1.5), _scalar(0.3)
    out = getattr(fl, name)(device.put(g), device.put(t))
    assert out.shape == (), name
    assert_close(out, getattr(ref, name)(g.astype(np.float64), t.astype(np.float64)), reduction_tol(1), name)


def test_softmax_axis_of_0d(device):
    x = device.put(_scalar(3.0))
    assert float(fl.softmax(x, axis=0)) == 1.0 and float(fl.log_softmax(x)) == 0.0
    with pytest.raises(ValueError, match=r"axis must be in \[-1, 0\] for a 0-D input, got 1"):
        fl.softmax(x, axis=1)


def test_add_and_losses_keep_0d(device):
    a, b = device.put(_scalar(1.25)), device.put(_scalar(-0.5))
    assert fl.add(a, b).shape == () and float(fl.add(a, b)) == 0.75
    ga, gb = fl.add_backward(fl.add(a, b))
    assert ga.shape == () and gb.shape == ()
    assert fl.mul(a, b).shape == ()
    for name in ("mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "soft_margin_loss",
                 "binary_cross_entropy_with_logits", "hinge_embedding_loss"):
        t = device.put(_scalar(1.0)) if name in ("soft_margin_loss", "hinge_embedding_loss") else b
        if name == "binary_cross_entropy_with_logits":
            t = device.put(_scalar(0.25))
        for red in ("none", "mean", "sum"):
            assert getattr(fl, name)(a, t, reduction=red).shape == (), name
            assert getattr(fl, name + "_backward")(a, t, reduction=red).shape == (), name


def test_relu_backward_passes_the_gradient_at_nan(device, isa):
    x = np.array([np.nan, -1.0, 0.0, -0.0, 2.0, np.inf, -np.inf] * 7000, np.float32)  # past the OpenMP grain
    g = np.arange(x.size, dtype=np.float32) + 1
    got = device.get(fl.relu_backward(device.put(g), device.put(x)))
    want = np.where(x <= 0, 0, g)  # NaN <= 0 is False: NaN passes grad_out on
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(ref.relu_backward(g, x), want)
    assert got[0] == g[0]


def test_relu_backward_matches_torch_at_nan(device):
    torch = pytest.importorskip("torch", reason="PyTorch not installed: the torch cross-check is skipped")
    x = np.array([np.nan, -1.0, 0.0, 3.0], np.float32)
    g = np.array([1.0, 2.0, 3.0, 4.0], np.float32)
    want = torch.ops.aten.threshold_backward(torch.tensor(g), torch.tensor(x), 0).numpy()
    np.testing.assert_array_equal(device.get(fl.relu_backward(device.put(g), device.put(x))), want)
