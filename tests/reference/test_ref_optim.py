"""The optimizer reference: the momentum form against the course's recursion, known first steps,
and torch.optim (float64) when it is installed."""

import numpy as np
import pytest

from fastlayers import reference as ref


def test_sgd_momentum_is_the_course_recursion(rng):
    # Course form: W(t+1) = W(t) - lr * grad(W(t)) + mu * (W(t) - W(t-1)), W(-1) = W(0).
    # Minimise 0.5 * w^T A w: grad = A w (depends on the path, so the whole trajectory is compared).
    a = rng.standard_normal((5, 5))
    a = a @ a.T / 5 + np.eye(5)
    lr, mu = 0.05, 0.8
    w0 = rng.standard_normal(5)
    w, v = w0.copy(), np.zeros(5)
    prev, cur = w0.copy(), w0.copy()
    for _ in range(25):
        ref.sgd_update(w, a @ w, v, lr=lr, momentum=mu)
        prev, cur = cur, cur - lr * (a @ cur) + mu * (cur - prev)
        np.testing.assert_allclose(w, cur, rtol=1e-12, atol=1e-12)


def test_known_single_steps():
    p = np.array([2.0, -3.0, 0.0])
    ref.sgd_update(p, np.zeros(3), lr=0.5, l1=0.1)  # l1 moves toward 0 by lr*l1, leaves 0 alone
    np.testing.assert_allclose(p, [1.95, -2.95, 0.0], rtol=1e-15)
    p = np.array([1.0, 1.0])
    ref.sgd_update(p, np.zeros(2), lr=0.1, weight_decay=0.5)  # pure decay: p *= 1 - lr*wd
    np.testing.assert_allclose(p, [0.95, 0.95], rtol=1e-15)
    # Adam's first step is lr * g / (|g| + eps): about lr * sign(g) whatever the gradient's size.
    p, m, v = np.zeros(3), np.zeros(3), np.zeros(3)
    ref.adam_update(p, np.array([1e-3, -5.0, 100.0]), m, v, step=1, lr=0.01, eps=1e-12)
    np.testing.assert_allclose(p, [-0.01, 0.01, -0.01], rtol=1e-8)


def test_nesterov_looks_ahead():
    # With a constant gradient g, velocity after 2 steps is (1 + mu) g; Nesterov steps by
    # g + mu * v = (1 + mu + mu^2) g.
    mu, lr = 0.5, 1.0
    p, v = np.zeros(1), np.zeros(1)
    ref.sgd_update(p, np.ones(1), v, lr=lr, momentum=mu, nesterov=True)
    np.testing.assert_allclose(p, [-(1 + mu)])
    ref.sgd_update(p, np.ones(1), v, lr=lr, momentum=mu, nesterov=True)
    np.testing.assert_allclose(p, [-(1 + mu) - (1 + mu + mu * mu)])


@pytest.mark.parametrize("cfg", [dict(lr=0.1, momentum=0.9), dict(lr=0.1, momentum=0.9, nesterov=True),
                                 dict(lr=0.05, momentum=0.5, weight_decay=0.1), dict(lr=0.2, weight_decay=0.01)])
def test_sgd_matches_torch(rng, cfg):
    torch = pytest.importorskip("torch", reason="PyTorch not installed: the torch.optim cross-check is skipped")
    p0, grads = rng.standard_normal(7), [rng.standard_normal(7) for _ in range(10)]
    w = torch.nn.Parameter(torch.tensor(p0))
    opt = torch.optim.SGD([w], **cfg)
    p, v = p0.copy(), np.zeros(7)
    for g in grads:
        w.grad = torch.tensor(g)
        opt.step()
        ref.sgd_update(p, g, v, **cfg)
    np.testing.assert_allclose(p, w.detach().numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cfg", [dict(), dict(lr=0.01, beta1=0.8, beta2=0.95, eps=1e-6, weight_decay=0.1)])
def test_adam_matches_torch(rng, cfg):
    torch = pytest.importorskip("torch", reason="PyTorch not installed: the torch.optim cross-check is skipped")
    p0, grads = rng.standard_normal(7), [rng.standard_normal(7) for _ in range(10)]
    w = torch.nn.Parameter(torch.tensor(p0))
    opt = torch.optim.Adam([w], lr=cfg.get("lr", 1e-3), betas=(cfg.get("beta1", 0.9), cfg.get("beta2", 0.999)),
                           eps=cfg.get("eps", 1e-8), weight_decay=cfg.get("weight_decay", 0.0))
    p, m, v = p0.copy(), np.zeros(7), np.zeros(7)
    for t, g in enumerate(grads, start=1):
        w.grad = torch.tensor(g)
        opt.step()
        ref.adam_update(p, g, m, v, step=t, **cfg)
    np.testing.assert_allclose(p, w.detach().numpy(), rtol=1e-12, atol=1e-14)
