"""The loss classes of the new torch options: each calls its op with its options, prepares targets
(per-pixel labels, ignore_index, probabilities), scores per-pixel predictions sensibly in fit, and
survives save/load with array options."""

from __future__ import annotations

import numpy as np
import pytest

import fastlayers as fl
from fastlayers import nn

from ..helpers import assert_grad_matches

W3 = np.array([0.5, 1.0, 2.0], np.float32)
CASES = [
    (nn.L1Loss(), "l1_loss", {}, lambda rng: rng.standard_normal((5, 3))),
    (nn.SmoothL1Loss(beta=0.5), "smooth_l1_loss", {"beta": 0.5}, lambda rng: rng.standard_normal((5, 3))),
    (nn.HuberLoss(delta=2.0, reduction="sum"), "huber_loss", {"delta": 2.0}, lambda rng: rng.standard_normal((5, 3))),
    (nn.SoftMarginLoss(), "soft_margin_loss", {}, lambda rng: rng.choice([-1.0, 1.0], (5, 3))),
    (nn.HingeEmbeddingLoss(margin=0.3), "hinge_embedding_loss", {"margin": 0.3}, lambda rng: rng.choice([-1.0, 1.0], (5, 3))),
    (nn.BCEWithLogitsLoss(weight=W3, pos_weight=W3[::-1].copy()), "binary_cross_entropy_with_logits",
     {"weight": W3, "pos_weight": W3[::-1].copy()}, lambda rng: rng.random((5, 3))),
    (nn.CrossEntropyLoss(weight=W3, ignore_index=1, label_smoothing=0.1), "cross_entropy",
     {"weight": W3, "ignore_index": 1, "label_smoothing": 0.1}, lambda rng: rng.integers(0, 3, 5)),
    (nn.NLLLoss(weight=W3), "nll_loss", {"weight": W3}, lambda rng: rng.integers(0, 3, 5)),
    (nn.CrossEntropyLoss(reduction="none"), "cross_entropy", {}, lambda rng: rng.integers(0, 3, 5)),
]


@pytest.mark.parametrize("loss, op, kw, make_target", CASES, ids=[f"{op}-{i}" for i, (_, op, _, _) in enumerate(CASES)])
def test_loss_classes_call_their_ops(loss, op, kw, make_target, rng):
    pred = rng.standard_normal((5, 3)).astype(np.float32)
    target = make_target(rng)
    value = loss(pred, target)
    np.testing.assert_array_equal(value, getattr(fl, op)(pred, target, reduction=loss.reduction, **kw))
    np.testing.assert_array_equal(loss.backward(), getattr(fl, op + "_backward")(pred, target, reduction=loss.reduction, **kw))
    up = rng.standard_normal(np.shape(value)).astype(np.float32)
    np.testing.assert_array_equal(loss.backward(up), getattr(fl, op + "_backward")(
        pred, target, reduction=loss.reduction, grad_out=up, **kw))
    with nn.use_ops(fl.reference):  # and the gradient is the derivative of the value (float64)
        p64 = pred.astype(np.float64)
        loss(p64, target)
        g = loss.backward()
        assert_grad_matches(g, lambda v: float(np.sum(loss(v, target))), p64, op)


def test_segmentation_targets_and_pixel_accuracy():
    ce = nn.CrossEntropyLoss(ignore_index=255)
    y = np.array([[[0, 1], [2, 255]]])  # (N, H, W) with one ignored pixel
    t = ce.prepare_target(y, (3, 2, 2))
    assert t.dtype == np.int64 and t.shape == (1, 2, 2)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\) or equal ignore_index \(255\), got a label 7"):
        ce.prepare_target(np.array([[[0, 7], [1, 1]]]), (3, 2, 2))
    with pytest.raises(ValueError, match=r"class labels \(N, 2, 2\) or probabilities \(N, 3, 2, 2\)"):
        ce.prepare_target(np.zeros((1, 3, 3)), (3, 2, 2))
    probs = ce.prepare_target(np.full((1, 3, 2, 2), 1 / 3), (3, 2, 2))
    assert probs.dtype == np.float32
    logits = np.zeros((2, 3, 2, 2), np.float32)
    logits[:, 0] = 1.0  # class 0 everywhere
    labels = np.array([[[0, 0], [1, 255]], [[0, 2], [255, 255]]])
    # sample 0: 2 of its 3 valid pixels right, sample 1: 1 of 2: the batch's 3 of 5, times N = 2
    assert float(ce.correct(logits, labels)) == pytest.approx(0.6 * 2)
    assert float(ce.correct(logits, np.full((2, 2, 2), 255))) == 0.0  # nothing to score


def test_fit_segmentation_end_to_end(rng):
    # per-pixel 3-class labels given by intensity bands: a 1x1 conv can learn them
    x = rng.uniform(-3, 3, (64, 1, 6, 6)).astype(np.float32)
    y = np.digitize(x[:, 0], [-1.0, 1.0]).astype(np.int64)
    y[:, 0, 0] = 255  # an ignored corner
    model = nn.Sequential([nn.Conv2d(1, 8, 1, rng=0), nn.ReLU(), nn.Conv2d(8, 3, 1, rng=1)],
                          loss=nn.CrossEntropyLoss(ignore_index=255, label_smoothing=0.05))
    hist = model.fit(x, y, epochs=12, batch_size=16, verbose=0, seed=0, optimizer=fl.optim.SGD(model.parameters(), lr=0.5))
    acc = hist["accuracy"]
    assert 0.0 <= acc[0] <= 1.0 and acc[-1] > 0.85 and acc[-1] > acc[0]
    ev = model.evaluate(x, y)
    assert 0.85 < ev["accuracy"] <= 1.0


def test_save_load_keeps_array_options(tmp_path, rng):
    model = nn.Sequential([nn.Linear(4, 3, rng=0)], loss=nn.CrossEntropyLoss(weight=W3, ignore_index=2, label_smoothing=0.2),
                          input_shape=(4,))
    path = tmp_path / "m.json"
    model.save(str(path))
    back = nn.load_model(str(path))
    assert isinstance(back.loss, nn.CrossEntropyLoss)
    np.testing.assert_array_equal(back.loss.weight, W3)
    assert back.loss.ignore_index == 2 and back.loss.label_smoothing == 0.2
    bce = nn.BCEWithLogitsLoss("sum")  # the historical positional reduction
    assert bce.reduction == "sum" and bce.weight is None


def test_bad_options():
    with pytest.raises(ValueError, match="label_smoothing"):
        nn.CrossEntropyLoss(label_smoothing=2)
    with pytest.raises(TypeError, match="ignore_index must be an int"):
        nn.NLLLoss(ignore_index=1.5)
    with pytest.raises(ValueError, match="beta"):
        nn.SmoothL1Loss(beta=-1)
    with pytest.raises(ValueError, match="delta"):
        nn.HuberLoss(delta=0)
    with pytest.raises(ValueError, match="reduction"):
        nn.L1Loss(reduction="avg")
    assert isinstance(nn.get_loss("nll"), nn.NLLLoss) and isinstance(nn.get_loss("huber"), nn.HuberLoss)


def test_log_softmax_layer_with_nll_equals_cross_entropy(rng):
    x = rng.standard_normal((6, 4)).astype(np.float32)
    y = rng.integers(0, 4, 6)
    layer = nn.LogSoftmax(axis=1)
    nll = nn.NLLLoss(weight=W3.tolist() + [1.5], ignore_index=2)
    ce = nn.CrossEntropyLoss(weight=W3.tolist() + [1.5], ignore_index=2)
    logp = layer.forward(x)
    np.testing.assert_allclose(float(nll(logp, y)), float(ce(x, y)), rtol=1e-6)
    np.testing.assert_allclose(layer.backward(nll.backward()), ce.backward(), atol=1e-6)
    model = nn.Sequential([nn.Linear(4, 4, rng=0), nn.LogSoftmax(axis=1)], loss=nn.NLLLoss(), input_shape=(4,))
    hist = model.fit(x, y, epochs=2, batch_size=3, verbose=0, seed=0)
    assert len(hist["loss"]) == 2 and 0.0 <= hist["accuracy"][-1] <= 1.0
