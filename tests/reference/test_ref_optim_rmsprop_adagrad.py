"""The RMSprop and Adagrad references against torch.optim in float64 (the same rule, to rounding)."""

import itertools

import numpy as np
import pytest

from fastlayers import reference as ref


@pytest.mark.parametrize("momentum,centered,weight_decay",
                         list(itertools.product((0.0, 0.7), (False, True), (0.0, 0.05))))
def test_rmsprop_reference_is_torch(rng, momentum, centered, weight_decay):
    torch = pytest.importorskip("torch")
    p = rng.standard_normal(11)
    tp = torch.tensor(p.copy(), requires_grad=True)
    cfg = dict(lr=0.02, alpha=0.8, eps=1e-6, weight_decay=weight_decay, momentum=momentum, centered=centered)
    opt = torch.optim.RMSprop([tp], **cfg)
    sa, buf, ga = np.zeros(11), np.zeros(11), np.zeros(11)
    for _ in range(20):
        g = rng.standard_normal(11)
        tp.grad = torch.tensor(g)
        opt.step()
        ref.rmsprop_update(p, g, sa, momentum_buffer=buf, grad_avg=ga, **cfg)
    np.testing.assert_allclose(p, tp.detach().numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("lr_decay,weight_decay", [(0.0, 0.0), (0.1, 0.0), (0.0, 0.1), (0.03, 0.02)])
def test_adagrad_reference_is_torch(rng, lr_decay, weight_decay):
    torch = pytest.importorskip("torch")
    p = rng.standard_normal(11)
    tp = torch.tensor(p.copy(), requires_grad=True)
    cfg = dict(lr=0.3, lr_decay=lr_decay, weight_decay=weight_decay, eps=1e-10)
    opt = torch.optim.Adagrad([tp], initial_accumulator_value=0.2, **cfg)
    s = np.full(11, 0.2)
    for step in range(1, 21):
        g = rng.standard_normal(11)
        tp.grad = torch.tensor(g)
        opt.step()
        ref.adagrad_update(p, g, s, step=step, **cfg)
    np.testing.assert_allclose(p, tp.detach().numpy(), rtol=1e-12, atol=1e-12)
