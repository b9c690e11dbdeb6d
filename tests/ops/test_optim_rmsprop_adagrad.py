"""rmsprop_update and adagrad_update: the kernels against the float64 reference and against
torch.optim.RMSprop / Adagrad step for step, with every combination of options; argument checks.

Tolerance as tests/ops/test_optim.py: a handful of float32 roundings per element and step, adding
up over the steps: reduction_tol(10 * steps) relative to max(1, max|state|).
"""

import itertools

import numpy as np
import pytest

import fastlayers as fl
from fastlayers import reference as ref

from ..helpers import assert_close, reduction_tol

SHAPES = [(1,), (7,), (3, 5), (40000,)]  # 40000 crosses the OpenMP grain
RMSPROP_CONFIGS = [dict(momentum=m, centered=c, weight_decay=wd, **extra)
                   for m, c, wd, extra in itertools.product(
                       (0.0, 0.9), (False, True), (0.0, 0.01),
                       (dict(), dict(lr=0.003, alpha=0.9, eps=1e-6)))]
ADAGRAD_CONFIGS = [dict(lr_decay=ld, weight_decay=wd, eps=e, lr=0.05)
                   for ld, wd, e in itertools.product((0.0, 0.05), (0.0, 0.1), (1e-10, 1e-3))]


def _ids(cfg):
    return ",".join(f"{k}={v}" for k, v in cfg.items())


def _rmsprop_states(shape, cfg, dtype, put=lambda a: a):
    z = np.zeros(shape, dtype)
    return dict(square_avg=put(z.copy()),
                momentum_buffer=put(z.copy()) if cfg["momentum"] > 0 else None,
                grad_avg=put(z.copy()) if cfg["centered"] else None)


@pytest.mark.parametrize("cfg", RMSPROP_CONFIGS, ids=_ids)
def test_rmsprop_matches_reference(device, rng, cfg):
    steps = 8
    for shape in SHAPES:
        p0 = rng.standard_normal(shape).astype(np.float32)
        p, p64 = device.put(p0.copy()), p0.astype(np.float64)
        st, st64 = _rmsprop_states(shape, cfg, np.float32, device.put), _rmsprop_states(shape, cfg, np.float64)
        for _ in range(steps):
            g = rng.standard_normal(shape).astype(np.float32)
            g0 = g.copy()
            assert fl.rmsprop_update(p, device.put(g), st["square_avg"], momentum_buffer=st["momentum_buffer"],
                                     grad_avg=st["grad_avg"], **cfg) is None
            ref.rmsprop_update(p64, g.astype(np.float64), st64["square_avg"],
                               momentum_buffer=st64["momentum_buffer"], grad_avg=st64["grad_avg"], **cfg)
            np.testing.assert_array_equal(g, g0)
        tol = reduction_tol(10 * steps)
        assert_close(p, p64, tol, f"rmsprop param {shape}")
        for k in st:
            if st[k] is not None:
                assert_close(st[k], st64[k], tol, f"rmsprop {k} {shape}")


@pytest.mark.parametrize("cfg", ADAGRAD_CONFIGS, ids=_ids)
@pytest.mark.parametrize("init", [0.0, 0.5])
def test_adagrad_matches_reference(device, rng, cfg, init):
    steps = 8
    for shape in SHAPES:
        p0 = rng.standard_normal(shape).astype(np.float32)
        p, p64 = device.put(p0.copy()), p0.astype(np.float64)
        s, s64 = device.put(np.full(shape, init, np.float32)), np.full(shape, init)
        for step in range(1, steps + 1):
            g = rng.standard_normal(shape).astype(np.float32)
            assert fl.adagrad_update(p, device.put(g), s, step=step, **cfg) is None
            ref.adagrad_update(p64, g.astype(np.float64), s64, step=step, **cfg)
        tol = reduction_tol(10 * steps)
        assert_close(p, p64, tol, f"adagrad param {shape}")
        assert_close(s, s64, tol, f"adagrad state_sum {shape}")


@pytest.mark.parametrize("cfg", RMSPROP_CONFIGS, ids=_ids)
def test_rmsprop_matches_torch_step_for_step(device, rng, cfg):
    torch = pytest.importorskip("torch")
    steps, shape = 30, (257,)
    p0 = rng.standard_normal(shape).astype(np.float32)
    tp = torch.tensor(p0, requires_grad=True)
    opt = torch.optim.RMSprop([tp], **cfg)
    p = device.put(p0.copy())
    st = _rmsprop_states(shape, cfg, np.float32, device.put)
    tol = reduction_tol(10 * steps)
    for _ in range(steps):
        g = rng.standard_normal(shape).astype(np.float32)
        tp.grad = torch.tensor(g)
        opt.step()
        fl.rmsprop_update(p, device.put(g), st["square_avg"], momentum_buffer=st["momentum_buffer"],
                          grad_avg=st["grad_avg"], **cfg)
        assert_close(p, tp.detach().numpy(), tol, "param vs torch.optim.RMSprop")
    tstate = opt.state[tp]
    assert_close(st["square_avg"], tstate["square_avg"].numpy(), tol, "square_avg vs torch")
    if cfg["momentum"] > 0:
        assert_close(st["momentum_buffer"], tstate["momentum_buffer"].numpy(), tol, "momentum_buffer vs torch")
    if cfg["centered"]:
        assert_close(st["grad_avg"], tstate["grad_avg"].numpy(), tol, "grad_avg vs torch")


@pytest.mark.parametrize("cfg", ADAGRAD_CONFIGS, ids=_ids)
@pytest.mark.parametrize("init", [0.0, 0.5])
def test_adagrad_matches_torch_step_for_step(device, rng, cfg, init):
    torch = pytest.importorskip("torch")
    steps, shape = 30, (257,)
    p0 = rng.standard_normal(shape).astype(np.float32)
    tp = torch.tensor(p0, requires_grad=True)
    opt = torch.optim.Adagrad([tp], initial_accumulator_value=init, **cfg)
    p, s = device.put(p0.copy()), device.put(np.full(shape, init, np.float32))
    tol = reduction_tol(10 * steps)
    for step in range(1, steps + 1):
        g = rng.standard_normal(shape).astype(np.float32)
        tp.grad = torch.tensor(g)
        opt.step()
        fl.adagrad_update(p, device.put(g), s, step=step, **cfg)
        assert_close(p, tp.detach().numpy(), tol, "param vs torch.optim.Adagrad")
    assert_close(s, opt.state[tp]["sum"].numpy(), tol, "state_sum vs torch")


def test_known_first_steps():
    # RMSprop's first step from zeros: avg = sqrt(1 - alpha) |g|, so param moves by lr / sqrt(1 - alpha).
    p, sa = np.zeros(3, np.float32), np.zeros(3, np.float32)
    fl.rmsprop_update(p, np.array([2.0, -0.5, 4.0], np.float32), sa, lr=0.1, alpha=0.75, eps=0.0)
    np.testing.assert_allclose(p, [-0.2, 0.2, -0.2], rtol=1e-6)
    # Adagrad: the first step is lr * sign(g); lr_decay shrinks the rate to lr / (1 + (step - 1) lr_decay).
    p, s = np.zeros(2, np.float32), np.zeros(2, np.float32)
    fl.adagrad_update(p, np.array([3.0, -0.01], np.float32), s, step=1, lr=0.5, eps=0.0)
    np.testing.assert_allclose(p, [-0.5, 0.5], rtol=1e-6)
    p, s = np.zeros(1, np.float32), np.full(1, 3.0, np.float32)
    fl.adagrad_update(p, np.array([1.0], np.float32), s, step=3, lr=1.0, lr_decay=0.5, eps=0.0)
    np.testing.assert_allclose(p, [-0.5 * 1 / 2], rtol=1e-6)  # clr = 1/2, g / sqrt(3 + 1) = 1/2


def test_bad_arguments():
    p, g, z = np.zeros(4, np.float32), np.ones(4, np.float32), np.zeros(4, np.float32)
    cases = [
        (lambda: fl.rmsprop_update(p, g, np.zeros(4)), TypeError, "square_avg is updated in place and must be float32"),
        (lambda: fl.rmsprop_update(p, g, np.zeros(5, np.float32)), ValueError, r"square_avg must have shape \(4,\)"),
        (lambda: fl.rmsprop_update(p, np.ones(3, np.float32), z), ValueError, "grad must have shape"),
        (lambda: fl.rmsprop_update(p, g, z, momentum=0.9), ValueError, "momentum_buffer is required"),
        (lambda: fl.rmsprop_update(p, g, z, centered=True), ValueError, "grad_avg is required"),
        (lambda: fl.rmsprop_update(p, g, z, lr=-1.0), ValueError, "lr must lie in"),
        (lambda: fl.rmsprop_update(p, g, z, alpha=-0.1), ValueError, "alpha must lie in"),
        (lambda: fl.rmsprop_update(p, g, z, eps=-1.0), ValueError, "eps must lie in"),
        (lambda: fl.rmsprop_update(p, g, z, momentum=-0.5), ValueError, "momentum must lie in"),
        (lambda: fl.rmsprop_update(p, g, z, weight_decay=float("nan")), ValueError, "weight_decay"),
        (lambda: fl.rmsprop_update(p, g, z, centered=1), TypeError, "centered must be a bool"),
        (lambda: fl.rmsprop_update(p, g, z, lr="0.1"), TypeError, "lr must be a real number"),
        (lambda: fl.adagrad_update(p, g, z, step=0), ValueError, "step must be >= 1"),
        (lambda: fl.adagrad_update(p, g, z, step=1.0), TypeError, "step must be an int"),
        (lambda: fl.adagrad_update(p, g, z, step=1, lr_decay=-1.0), ValueError, "lr_decay must lie in"),
        (lambda: fl.adagrad_update(p, g, np.zeros(4, np.float32)[::1].reshape(2, 2), step=1), ValueError,
         "state_sum must have shape"),
        (lambda: fl.adagrad_update(p, g, np.zeros(8, np.float32)[::2], step=1), ValueError, "C-contiguous"),
        (lambda: fl.adagrad_update(p.tolist(), g, z, step=1), TypeError, "param is updated in place"),
    ]
    for fn, exc, msg in cases:
        with pytest.raises(exc, match=msg):
            fn()
    np.testing.assert_array_equal(p, 0)  # nothing ran


def test_overlapping_arrays_are_rejected():
    buf = np.zeros(8, np.float32)
    p, sa = buf[:4], buf[4:]
    g = np.ones(4, np.float32)
    fl.rmsprop_update(p, g, sa)  # disjoint halves of one buffer are fine
    with pytest.raises(ValueError, match="param and square_avg .* must not share memory"):
        fl.rmsprop_update(p, g, p)
    with pytest.raises(ValueError, match="param and grad overlap; param is updated in place and must not share memory"):
        fl.rmsprop_update(p, p, sa)
    m = np.zeros(4, np.float32)
    with pytest.raises(ValueError, match="square_avg and momentum_buffer"):
        fl.rmsprop_update(p, g, m, momentum=0.5, momentum_buffer=m)
    with pytest.raises(ValueError, match="grad_avg"):
        fl.rmsprop_update(p, g, sa, centered=True, grad_avg=buf[2:6])
    with pytest.raises(ValueError, match="param and state_sum"):
        fl.adagrad_update(p, g, buf[2:6], step=1)
    with pytest.raises(ValueError, match="state_sum and grad overlap; state_sum is updated in place"):
        fl.adagrad_update(p, sa, sa, step=1)


def test_ignored_states_may_be_anything():
    # momentum_buffer without momentum, grad_avg without centered: not used, not checked (torch
    # keeps no such state then either).
    p, sa = np.zeros(3, np.float32), np.zeros(3, np.float32)
    fl.rmsprop_update(p, np.ones(3, np.float32), sa, momentum_buffer=np.zeros(5), grad_avg=np.zeros(2))
    np.testing.assert_allclose(p, -0.01 / (0.1 + 1e-8), rtol=1e-6)
