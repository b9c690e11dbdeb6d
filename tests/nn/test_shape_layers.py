"""nn.Identity, nn.Reshape, nn.Constant, nn.Pad: forward, backward by finite differences, save/load."""

from __future__ import annotations

import numpy as np
import pytest

import fastlayers as fl
from fastlayers import nn


def _fd_check(layer, x, eps=1e-3, tol=2e-2):
    y = layer.forward(x, training=True)
    g = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
    gx = layer.backward(g)
    num = np.zeros_like(x, dtype=np.float64)
    for i in np.ndindex(*x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += eps
        xm[i] -= eps
        num[i] = (np.sum(layer.forward(xp) * g, dtype=np.float64) - np.sum(layer.forward(xm) * g, dtype=np.float64)) / (2 * eps)
    np.testing.assert_allclose(gx, num, atol=tol, rtol=tol)


def test_reshape_keeps_batch_and_infers():
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    layer = nn.Reshape((-1, 2))
    y = layer.forward(x)
    assert y.shape == (2, 6, 2)
    assert layer.backward(y).shape == x.shape
    with pytest.raises(ValueError, match="cannot reshape"):
        nn.Reshape((5,)).forward(x)
    with pytest.raises(ValueError, match="at most one -1"):
        nn.Reshape((-1, -1))


@pytest.mark.parametrize("op,shape", [("add", (3, 1, 1)), ("mul", (3, 1, 1)), ("mul", (1,)), ("add", (3, 4, 4))])
def test_constant_broadcasts_and_differentiates(op, shape):
    c = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    layer = nn.Constant(c, op)
    x = np.random.default_rng(2).standard_normal((2, 3, 4, 4)).astype(np.float32)
    want = x + c if op == "add" else x * c
    np.testing.assert_allclose(layer.forward(x), want, rtol=1e-6)
    _fd_check(layer, x)
    with pytest.raises(ValueError, match="'add' or 'mul'"):
        nn.Constant(c, "sub")


def test_constant_refuses_shapes_that_change_the_batch():
    inp = nn.Input((3, 4))
    with pytest.raises(ValueError, match="batch"):
        nn.Constant(np.zeros((2, 3, 4), np.float32))(inp)


@pytest.mark.skipif(not hasattr(fl, "pad"), reason="this fastlayers build has no pad op")
def test_pad_layer_matches_the_op():
    x = np.random.default_rng(0).standard_normal((2, 2, 3, 3)).astype(np.float32)
    layer = nn.Pad([1, 2, 0, 1], "reflect")
    np.testing.assert_array_equal(layer.forward(x), fl.pad(x, [1, 2, 0, 1], "reflect"))
    _fd_check(layer, x)


def test_layers_save_and_load(tmp_path):
    inp = nn.Input((2, 3))
    y = nn.Constant(np.array([1.0, 2.0, 3.0], np.float32), "mul")(nn.Identity()(inp))
    out = nn.Reshape((6,))(y)
    model = nn.Model(inp, out)
    x = np.random.default_rng(0).standard_normal((4, 2, 3)).astype(np.float32)
    model.save(tmp_path / "m.npz")
    again = nn.load_model(tmp_path / "m.npz")
    np.testing.assert_array_equal(again.predict(x), model.predict(x))
