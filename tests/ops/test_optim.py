"""The in-place optimizer kernels against the float64 reference (and torch.optim when installed).

Tolerance: each step does a handful of float32 roundings per element (about 5 for SGD, 10 for
Adam), and the errors of successive steps add up, so after `steps` steps the states are compared
with reduction_tol(10 * steps), relative to max(1, max|state|).
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastlayers as fl
from fastlayers import reference as ref

from ..helpers import assert_close, reduction_tol

SHAPES = [(1,), (7,), (3, 5), (2, 3, 4, 5), (40000,)]  # 40000 crosses the OpenMP grain
SGD_CONFIGS = [
    dict(lr=0.1),
    dict(lr=0.05, weight_decay=0.01),
    dict(lr=0.05, l1=0.003),
    dict(lr=0.02, momentum=0.9),
    dict(lr=0.02, momentum=0.9, nesterov=True),
    dict(lr=0.01, momentum=0.5, weight_decay=1e-3, l1=1e-3, nesterov=True),
]
ADAM_CONFIGS = [
    dict(),
    dict(lr=0.01, beta1=0.5, beta2=0.9, eps=1e-6),
    dict(lr=3e-3, weight_decay=0.05),
    dict(lr=1e-2, beta1=0.0, beta2=0.0),
]


def _run_sgd(device, rng, shape, cfg, steps):
    p0 = rng.standard_normal(shape).astype(np.float32)
    grads = [rng.standard_normal(shape).astype(np.float32) for _ in range(steps)]
    momentum = cfg.get("momentum", 0.0)
    p, p64 = device.put(p0.copy()), p0.astype(np.float64)
    v = device.put(np.zeros(shape, np.float32)) if momentum else None
    v64 = np.zeros(shape) if momentum else None
    for g in grads:
        g_before = g.copy()
        assert fl.sgd_update(p, device.put(g), v, **cfg) is None
        ref.sgd_update(p64, g.astype(np.float64), v64, **cfg)
        np.testing.assert_array_equal(g, g_before)
    return p, p64, v, v64


@pytest.mark.parametrize("cfg", SGD_CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_sgd_matches_reference(device, rng, cfg):
    steps = 6
    for shape in SHAPES:
        p, p64, v, v64 = _run_sgd(device, rng, shape, cfg, steps)
        tol = reduction_tol(10 * steps)
        assert_close(p, p64, tol, f"sgd param {shape} {cfg}")
        if v is not None:
            assert_close(v, v64, tol, f"sgd velocity {shape} {cfg}")


@pytest.mark.parametrize("cfg", ADAM_CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "default")
def test_adam_matches_reference(device, rng, cfg):
    steps = 10
    for shape in SHAPES:
        p0 = rng.standard_normal(shape).astype(np.float32)
        p, m, v = device.put(p0.copy()), device.put(np.zeros(shape, np.float32)), device.put(np.zeros(shape, np.float32))
        p64, m64, v64 = p0.astype(np.float64), np.zeros(shape), np.zeros(shape)
        for t in range(1, steps + 1):
            g = rng.standard_normal(shape).astype(np.float32)
            g_before = g.copy()
            fl.adam_update(p, device.put(g), m, v, step=t, **cfg)
            ref.adam_update(p64, g.astype(np.float64), m64, v64, step=t, **cfg)
            np.testing.assert_array_equal(g, g_before)
        tol = reduction_tol(10 * steps)
        assert_close(p, p64, tol, f"adam param {shape} {cfg}")
        assert_close(m, m64, tol, f"adam m {shape} {cfg}")
        assert_close(v, v64, tol, f"adam v {shape} {cfg}")


def test_updates_leave_velocity_alone_without_momentum(device, rng):
    v0 = rng.standard_normal(5).astype(np.float32)
    v = device.put(v0.copy())
    fl.sgd_update(device.put(np.ones(5, np.float32)), device.put(np.ones(5, np.float32)), v, lr=0.1)
    np.testing.assert_array_equal(device.get(v), v0)


def test_grad_is_converted(device, rng):
    p0 = rng.standard_normal((4, 3)).astype(np.float32)
    g = rng.standard_normal((4, 6))[:, ::2]  # float64, non-contiguous
    p, p64 = device.put(p0.copy()), p0.astype(np.float64)
    fl.sgd_update(p, device.put(g), lr=0.5)
    ref.sgd_update(p64, g, lr=0.5)
    assert_close(p, p64, reduction_tol(5), "sgd with float64 strided grad")


def test_nan_gradient_propagates_to_its_element_only(device):
    p, v = device.put(np.zeros(3, np.float32)), device.put(np.zeros(3, np.float32))
    fl.sgd_update(p, device.put(np.array([1, np.nan, 1], np.float32)), v, lr=0.1, momentum=0.9)
    assert np.isnan(device.get(p)).tolist() == [False, True, False]
    assert np.isnan(device.get(v)).tolist() == [False, True, False]


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 300), momentum=st.sampled_from([0.0, 0.3, 0.9]), nesterov=st.booleans(),
       wd=st.sampled_from([0.0, 1e-2]), l1=st.sampled_from([0.0, 1e-2]), adam=st.booleans(),
       seed=st.integers(0, 2**31 - 1))
def test_hypothesis_updates(n, momentum, nesterov, wd, l1, adam, seed):
    rng = np.random.default_rng(seed)
    p0 = rng.standard_normal(n).astype(np.float32)
    p, p64 = p0.copy(), p0.astype(np.float64)
    s1, s2 = np.zeros(n, np.float32), np.zeros(n, np.float32)
    r1, r2 = np.zeros(n), np.zeros(n)
    for t in range(1, 5):
        g = rng.standard_normal(n).astype(np.float32)
        if adam:
            fl.adam_update(p, g, s1, s2, step=t, lr=0.01, weight_decay=wd)
            ref.adam_update(p64, g.astype(np.float64), r1, r2, step=t, lr=0.01, weight_decay=wd)
        else:
            kw = dict(lr=0.05, momentum=momentum, nesterov=nesterov and momentum > 0, weight_decay=wd, l1=l1)
            fl.sgd_update(p, g, s1 if momentum else None, **kw)
            ref.sgd_update(p64, g.astype(np.float64), r1 if momentum else None, **kw)
    assert_close(p, p64, reduction_tol(40), "param")
    assert_close(s1, r1, reduction_tol(40), "state")


# --- bad input ----------------------------------------------------------------------------------

def test_inplace_arguments_must_be_float32_contiguous(device):
    g = device.put(np.ones(4, np.float32))
    with pytest.raises(TypeError, match="param is updated in place and must be float32, got float64"):
        fl.sgd_update(device.put(np.ones(4)), g, lr=0.1)
    with pytest.raises(ValueError, match="param .* must be C-contiguous"):
        fl.sgd_update(device.put(np.ones(8, np.float32))[::2], g, lr=0.1)
    with pytest.raises(TypeError, match="velocity .* must be float32"):
        fl.sgd_update(device.put(np.ones(4, np.float32)), g, device.put(np.zeros(4)), lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match=r"velocity must have shape \(4,\), got \(5,\)"):
        fl.sgd_update(device.put(np.ones(4, np.float32)), g, device.put(np.zeros(5, np.float32)), lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match=r"grad must have shape \(4,\), got \(3,\)"):
        fl.sgd_update(device.put(np.ones(4, np.float32)), device.put(np.ones(3, np.float32)), lr=0.1)
    with pytest.raises(TypeError, match="m is updated in place and must be float32"):
        fl.adam_update(device.put(np.ones(4, np.float32)), g, device.put(np.zeros(4)),
                       device.put(np.zeros(4, np.float32)), step=1)
    with pytest.raises(ValueError, match=r"v must have shape \(4,\), got \(2, 2\)"):
        fl.adam_update(device.put(np.ones(4, np.float32)), g, device.put(np.zeros(4, np.float32)),
                       device.put(np.zeros((2, 2), np.float32)), step=1)
    with pytest.raises(ValueError, match="m and v .* must not share memory"):
        mv = device.put(np.zeros(4, np.float32))
        fl.adam_update(device.put(np.ones(4, np.float32)), g, mv, mv, step=1)


def test_inplace_arguments_cpu_only_cases():
    with pytest.raises(TypeError, match="param .* must be a numpy.ndarray .* got list"):
        fl.sgd_update([1.0, 2.0], np.ones(2, np.float32), lr=0.1)
    ro = np.ones(3, np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="param .* must be writeable"):
        fl.sgd_update(ro, np.ones(3, np.float32), lr=0.1)
    p = np.ones(3, np.float32)
    with pytest.raises(ValueError, match="param and velocity .* must not share memory"):
        fl.sgd_update(p, np.ones(3, np.float32), p, lr=0.1, momentum=0.5)


def test_bad_hyperparameters(device):
    p, g = device.put(np.ones(3, np.float32)), device.put(np.ones(3, np.float32))
    z = lambda: device.put(np.zeros(3, np.float32))  # noqa: E731
    with pytest.raises(ValueError, match="velocity is required when momentum != 0"):
        fl.sgd_update(p, g, lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="nesterov=True needs momentum > 0"):
        fl.sgd_update(p, g, z(), lr=0.1, nesterov=True)
    with pytest.raises(TypeError, match="nesterov must be a bool"):
        fl.sgd_update(p, g, z(), lr=0.1, momentum=0.5, nesterov=1)
    cases = [("lr", dict(lr=-0.1)), ("lr", dict(lr=float("nan"))), ("momentum", dict(lr=0.1, momentum=1.0)),
             ("momentum", dict(lr=0.1, momentum=-0.1)), ("weight_decay", dict(lr=0.1, weight_decay=-1.0)),
             ("l1", dict(lr=0.1, l1=-1e-3))]
    for name, kw in cases:
        with pytest.raises(ValueError, match=f"{name} must lie in .*got"):
            fl.sgd_update(p, g, z(), **kw)
    with pytest.raises(TypeError, match="lr must be a real number"):
        fl.sgd_update(p, g, lr="0.1")
    adam_cases = [("beta1", dict(beta1=1.0)), ("beta2", dict(beta2=-0.5)), ("eps", dict(eps=0.0)),
                  ("weight_decay", dict(weight_decay=-1.0)), ("lr", dict(lr=-1.0))]
    for name, kw in adam_cases:
        with pytest.raises(ValueError, match=f"{name} must lie in .*got"):
            fl.adam_update(p, g, z(), z(), step=1, **kw)
    with pytest.raises(ValueError, match="step must be >= 1 .* got 0"):
        fl.adam_update(p, g, z(), z(), step=0)
    with pytest.raises(TypeError, match="step must be an int, got float"):
        fl.adam_update(p, g, z(), z(), step=1.0)
    np.testing.assert_array_equal(device.get(p), np.ones(3))  # nothing ran


def test_mixed_numpy_and_cupy():
    cupy = pytest.importorskip("cupy", reason="CuPy not installed: cannot make a GPU array")
    try:
        g = cupy.ones(3, dtype=cupy.float32)
    except Exception as exc:  # CuPy without a usable GPU
        pytest.skip(f"CuPy cannot allocate on a GPU here: {exc}")
    with pytest.raises(TypeError, match="different devices"):
        fl.sgd_update(np.ones(3, np.float32), g, lr=0.1)


# --- torch.optim -----------------------------------------------------------------------------------

def _torch_run(torch, make_opt, p0, grads):
    w = torch.nn.Parameter(torch.tensor(p0, dtype=torch.float64))
    opt = make_opt([w])
    for g in grads:
        w.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
    return w.detach().numpy()


@pytest.mark.parametrize("cfg", [c for c in SGD_CONFIGS if c.get("l1", 0) == 0],
                         ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_sgd_matches_torch(device, rng, cfg):
    torch = pytest.importorskip("torch", reason="PyTorch not installed: the torch.optim cross-check is skipped")
    steps, shape = 10, (6, 5)
    p0 = rng.standard_normal(shape).astype(np.float32)
    grads = [rng.standard_normal(shape).astype(np.float32) for _ in range(steps)]
    p = device.put(p0.copy())
    v = device.put(np.zeros(shape, np.float32)) if cfg.get("momentum") else None
    for g in grads:
        fl.sgd_update(p, device.put(g), v, **cfg)
    expected = _torch_run(torch, lambda ps: torch.optim.SGD(ps, **cfg), p0, grads)
    assert_close(p, expected, reduction_tol(10 * steps), f"sgd {cfg} vs torch")


@pytest.mark.parametrize("cfg", ADAM_CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "default")
def test_adam_matches_torch(device, rng, cfg):
    torch = pytest.importorskip("torch", reason="PyTorch not installed: the torch.optim cross-check is skipped")
    steps, shape = 10, (6, 5)
    p0 = rng.standard_normal(shape).astype(np.float32)
    grads = [rng.standard_normal(shape).astype(np.float32) for _ in range(steps)]
    p, m, v = (device.put(a) for a in (p0.copy(), np.zeros(shape, np.float32), np.zeros(shape, np.float32)))
    for t, g in enumerate(grads, start=1):
        fl.adam_update(p, device.put(g), m, v, step=t, **cfg)
    tcfg = dict(lr=cfg.get("lr", 1e-3), betas=(cfg.get("beta1", 0.9), cfg.get("beta2", 0.999)),
                eps=cfg.get("eps", 1e-8), weight_decay=cfg.get("weight_decay", 0.0))
    expected = _torch_run(torch, lambda ps: torch.optim.Adam(ps, **tcfg), p0, grads)
    assert_close(p, expected, reduction_tol(10 * steps), f"adam {cfg} vs torch")
