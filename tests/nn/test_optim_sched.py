"""fastlayers.optim: SGD / Adam against the update formulas written out in NumPy (float64), frozen
parameters skipped, the schedules' learning rates, bad arguments."""

from __future__ import annotations

import numpy as np
import pytest

from fastlayers import nn, optim

from ..helpers import assert_close, reduction_tol


def _param(rng, shape=(3, 4)):
    return nn.Parameter(rng.standard_normal(shape).astype(np.float32), "w")


@pytest.mark.parametrize("momentum, nesterov, wd, l1", [(0.0, False, 0.0, 0.0), (0.9, False, 0.0, 0.0),
                                                        (0.9, True, 0.01, 0.0), (0.5, False, 0.0, 0.02)])
def test_sgd_matches_formula(rng, momentum, nesterov, wd, l1):
    p = _param(rng)
    w = p.data.astype(np.float64)
    v = np.zeros_like(w)
    opt = optim.SGD([p], lr=0.1, momentum=momentum, nesterov=nesterov, weight_decay=wd, l1=l1)
    for _ in range(5):
        g = rng.standard_normal(p.shape).astype(np.float32)
        p.grad = g
        opt.step()
        gg = g + wd * w + l1 * np.sign(w)
        v = momentum * v + gg
        w = w - 0.1 * ((gg + momentum * v) if nesterov else (v if momentum else gg))
    assert_close(p.data, w, reduction_tol(5), "sgd")


def test_adam_matches_formula(rng):
    p = _param(rng)
    w = p.data.astype(np.float64)
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    opt = optim.Adam([p], lr=0.01)
    for t in range(1, 6):
        g = rng.standard_normal(p.shape).astype(np.float32)
        p.grad = g
        opt.step()
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        w = w - 0.01 * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
    assert_close(p.data, w, 1e-5, "adam")  # 5 steps of size ~lr; float32 rounding of w (|w| ~ 1)


def test_frozen_and_gradless_parameters_are_skipped(rng):
    a, b, c = _param(rng), _param(rng), _param(rng)
    b.trainable = False
    a.grad = b.grad = np.ones(a.shape, np.float32)
    a0, b0, c0 = a.data.copy(), b.data.copy(), c.data.copy()
    for opt in (optim.SGD([a, b, c], lr=0.1, momentum=0.9, weight_decay=0.1), optim.Adam([a, b, c], lr=0.1)):
        opt.step()
    assert not np.array_equal(a.data, a0)
    np.testing.assert_array_equal(b.data, b0)
    np.testing.assert_array_equal(c.data, c0)


def test_schedules():
    def lrs(make, n=6):
        opt = optim.SGD([nn.Parameter(np.zeros(2, np.float32))], lr=0.8)
        s = make(opt)
        return [s.step() for _ in range(n)]

    np.testing.assert_allclose(lrs(lambda o: optim.StepLR(o, step_size=2, gamma=0.5)),
                               [0.8, 0.4, 0.4, 0.2, 0.2, 0.1])
    np.testing.assert_allclose(lrs(lambda o: optim.ExponentialLR(o, gamma=0.5)), 0.8 * 0.5 ** np.arange(1, 7))
    np.testing.assert_allclose(lrs(lambda o: optim.InverseTimeLR(o, decay=1.0)), 0.8 / (1 + np.arange(1, 7)))


def test_schedule_as_fit_callback(rng):
    model = nn.Sequential([nn.Linear(2, 1, rng=rng)], loss="mse")
    opt = optim.SGD(model.parameters(), lr=0.1)
    model.fit(rng.standard_normal((8, 2)), rng.standard_normal((8, 1)), epochs=3, optimizer=opt,
              callbacks=[optim.StepLR(opt, step_size=1, gamma=0.5)], verbose=0)
    assert opt.lr == pytest.approx(0.1 * 0.5 ** 3)


def test_bad_arguments(rng):
    p = _param(rng)
    with pytest.raises(ValueError, match=r"lr must be in \(0.0, inf\), got 0"):
        optim.SGD([p], lr=0)
    with pytest.raises(ValueError, match="momentum"):
        optim.SGD([p], lr=0.1, momentum=1.5)
    with pytest.raises(ValueError, match="nesterov"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="empty"):
        optim.Adam([], lr=0.1)
    with pytest.raises(ValueError, match="step_size"):
        optim.StepLR(optim.SGD([p], lr=0.1), step_size=0)
