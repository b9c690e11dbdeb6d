"""Initialisers (fans, scales, seeding) and the loss classes (ops, label preparation, scoring)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import fastlayers as fl
from fastlayers import nn
from fastlayers.nn import init

from ..helpers import assert_grad_matches


def test_fans():
    assert init.fans((200, 1024)) == (1024, 200)
    assert init.fans((64, 32, 5, 5)) == (32 * 25, 64 * 25)
    assert init.fans((4, 2, 3)) == (6, 12)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        init.fans((5,))


@pytest.mark.parametrize("name, std_of", [
    ("lecun_uniform", lambda fi, fo: math.sqrt(1 / fi)), ("lecun_normal", lambda fi, fo: math.sqrt(1 / fi)),
    ("xavier_uniform", lambda fi, fo: math.sqrt(2 / (fi + fo))), ("glorot_normal", lambda fi, fo: math.sqrt(2 / (fi + fo))),
    ("he_uniform", lambda fi, fo: math.sqrt(2 / fi)), ("he_normal", lambda fi, fo: math.sqrt(2 / fi)),
])
def test_initialiser_scales(name, std_of):
    shape = (300, 40, 3, 3)  # 108,000 draws: the sample std is within ~0.5 % of the true one
    w = init.get(name)(shape, np.random.default_rng(0))
    assert w.dtype == np.float32 and w.shape == shape
    std = std_of(*init.fans(shape))
    assert abs(float(w.std()) / std - 1) < 0.02
    assert abs(float(w.mean())) < 0.02 * std
    if name.endswith("uniform"):
        assert float(np.abs(w).max()) <= math.sqrt(3) * std * (1 + 1e-6)
    np.testing.assert_array_equal(w, init.get(name)(shape, np.random.default_rng(0)))  # seeded
    assert not np.array_equal(w, init.get(name)(shape, np.random.default_rng(1)))


def test_layer_defaults_lecun_uniform_and_zero_bias():
    lin = nn.Linear(50, 400, rng=0)
    np.testing.assert_array_equal(lin.weight.data, init.lecun_uniform((400, 50), np.random.default_rng(0)))
    np.testing.assert_array_equal(lin.bias.data, np.zeros(400, np.float32))
    conv = nn.Conv2d(3, 8, 3, rng=5, init="he_normal")
    np.testing.assert_array_equal(conv.weight.data, init.he_normal((8, 3, 3, 3), np.random.default_rng(5)))
    with pytest.raises(ValueError, match="init must be one of"):
        nn.Linear(2, 2, init="orthogonal")
    with pytest.raises(TypeError, match="rng must be"):
        nn.Linear(2, 2, rng="seed")


LOSSES = [
    (nn.MSELoss(), "mse_loss", lambda rng: rng.standard_normal((5, 3))),
    (nn.BCEWithLogitsLoss(), "binary_cross_entropy_with_logits", lambda rng: rng.random((5, 3))),
    (nn.SoftmaxCrossEntropyLoss(), "softmax_cross_entropy", lambda rng: rng.integers(0, 3, 5)),
    (nn.LogisticLoss(reduction="sum"), "logistic_loss", lambda rng: rng.choice([-1.0, 1.0], (5, 3))),
    (nn.HingeLoss(margin=0.5), "hinge_loss", lambda rng: rng.choice([-1.0, 1.0], (5, 3))),
]


@pytest.mark.parametrize("loss, op, make_target", LOSSES, ids=[op for _, op, _ in LOSSES])
def test_loss_classes_call_their_ops(loss, op, make_target, rng):
    pred = rng.standard_normal((5, 3)).astype(np.float32)
    target = make_target(rng)
    extra = {"margin": 0.5} if op == "hinge_loss" else {}
    value = loss(pred, target)
    assert np.ndim(value) == 0
    assert float(value) == float(getattr(fl, op)(pred, target, reduction=loss.reduction, **extra))
    np.testing.assert_array_equal(loss.backward(),
                                  getattr(fl, op + "_backward")(pred, target, reduction=loss.reduction, **extra))
    # and the gradient is the derivative of the value (float64 through the reference)
    with nn.use_ops(fl.reference):
        p64 = pred.astype(np.float64)
        loss(p64, target)
        assert_grad_matches(loss.backward(), lambda v: float(loss(v, target)), p64, op)


def test_prepare_target():
    sce = nn.SoftmaxCrossEntropyLoss()
    assert sce.prepare_target(np.array([0.0, 2.0]), (3,)).dtype == np.int64
    with pytest.raises(ValueError, match="integers"):
        sce.prepare_target(np.array([0.5, 1.0]), (3,))
    hinge = nn.HingeLoss(margin=0)
    np.testing.assert_array_equal(hinge.prepare_target(np.array([0, 1, 1]), (1,)), [[-1], [1], [1]])
    np.testing.assert_array_equal(hinge.prepare_target(np.array([2, 0]), (3,)), [[-1, -1, 1], [1, -1, -1]])
    with pytest.raises(ValueError, match="-1, \\+1"):
        hinge.prepare_target(np.array([0.0, 2.0]), (1,))
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        nn.BCEWithLogitsLoss().prepare_target(np.array([0.0, 2.0]), (1,))
    with pytest.raises(ValueError, match="reduction"):
        nn.MSELoss(reduction="max")
    with pytest.raises(ValueError, match="loss must be"):
        nn.get_loss("l7")


def test_correct_counts():
    pred = np.array([[2.0, 1.0, 0.0], [0.0, 1.0, 3.0], [5.0, 0.0, 0.0]], np.float32)
    assert int(nn.SoftmaxCrossEntropyLoss().correct(pred, np.array([0, 2, 1]))) == 2
    assert int(nn.BCEWithLogitsLoss().correct(np.array([[1.0], [-1.0]]), np.array([[1.0], [1.0]]))) == 1
    assert int(nn.HingeLoss().correct(pred, np.array([[1, -1, -1], [-1, 1, -1], [1, -1, -1.0]]))) == 2
    assert nn.MSELoss().correct(pred, pred) is None
