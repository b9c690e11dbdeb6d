"""The loss options of torch.nn.functional (issue #12): reduction="none" with grad_out on every loss,
cross-entropy with class weights, ignore_index, label smoothing, probability targets, K-dimensional
and unbatched input, nll_loss, l1/smooth_l1/huber/soft_margin/hinge_embedding, binary cross-entropy
with weight and pos_weight, elementwise broadcasting — kernels against the float64 reference on
every backend, and against torch.nn.functional itself.

Tolerances: reduced losses and per-element terms are summed / evaluated in double and rounded to
float32 once (reduction_tol(1) relative to max(1, |value|)); cross-entropy's float softmax and
log-sum-exp over C classes add about sqrt(C) roundings of the row (reduction_tol(C)).
"""

import math

import numpy as np
import pytest

import fastlayers as fl
from fastlayers import reference as ref

from ..helpers import Device, assert_close, reduction_tol

REDUCTIONS = ["none", "mean", "sum"]
ELEMENTWISE = {  # name -> (keywords, target kind)
    "mse_loss": ({}, "real"),
    "l1_loss": ({}, "real"),
    "smooth_l1_loss": ({"beta": 0.7}, "real"),
    "huber_loss": ({"delta": 0.7}, "real"),
    "soft_margin_loss": ({}, "pm1"),
    "hinge_embedding_loss": ({"margin": 1.5}, "pm1"),
    "logistic_loss": ({}, "pm1"),
    "hinge_loss": ({"margin": 0.5}, "pm1"),
    "binary_cross_entropy_with_logits": ({}, "prob"),
}


def _target(kind, rng, shape):
    if kind == "pm1":
        return np.asarray(np.where(rng.random(shape) < 0.5, -1.0, 1.0), np.float32)
    if kind == "prob":
        return np.asarray(rng.random(shape), np.float32)
    return np.asarray(2 * rng.standard_normal(shape), np.float32)


def _64(a):
    return None if a is None else (np.asarray(a, np.float64) if np.asarray(a).dtype.kind == "f" else np.asarray(a))


def _grad_out(rng, red, loss_shape):
    if red == "none":
        return np.asarray(rng.standard_normal(loss_shape), np.float32)
    return np.asarray(rng.standard_normal(), np.float32)  # a 0-d upstream gradient


def check(device, name, args, kwargs, red, rng, tol=reduction_tol(1), what=""):
    """fl.<name> and fl.<name>_backward (with and without grad_out) against the reference."""
    what = f"{name} {red} {what}"
    dev = [device.put(a) for a in args]
    dkw = {k: device.put(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    rkw = {k: _64(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    r64 = [_64(a) for a in args]
    before = [np.array(a, copy=True) for a in args]
    want = getattr(ref, name)(*r64, reduction=red, **rkw)
    got = getattr(fl, name)(*dev, reduction=red, **dkw)
    assert got.dtype == np.float32 and type(got) is type(dev[0]), what
    assert_close(got, want, tol, what)
    go = _grad_out(rng, red, np.shape(want))
    for g in (None, go):
        gw = getattr(ref, name + "_backward")(*r64, reduction=red, grad_out=None if g is None else _64(g), **rkw)
        gg = getattr(fl, name + "_backward")(*dev, reduction=red, grad_out=device.put(g), **dkw)
        assert gg.shape == np.shape(args[0]), what
        assert_close(gg, gw, tol, what + (" backward" if g is None else " backward with grad_out"))
    for a, b in zip(args, before):
        np.testing.assert_array_equal(a, b, err_msg=f"{what}: input modified")
    return device.get(got)


# --- elementwise losses -----------------------------------------------------------------------------

@pytest.mark.parametrize("red", REDUCTIONS)
@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_elementwise_losses_every_reduction(device, rng, name, red):
    kw, kind = ELEMENTWISE[name]
    for shape in [(), (1,), (7,), (3, 5), (2, 3, 4), (40000,)]:  # 40000 crosses the OpenMP grain
        x = np.asarray(3 * rng.standard_normal(shape), np.float32)
        out = check(device, name, (x, _target(kind, rng, shape)), kw, red, rng, what=str(shape))
        assert np.shape(out) == (shape if red == "none" else ())


@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "soft_margin_loss",
                                  "hinge_embedding_loss"])
def test_elementwise_losses_broadcast_as_torch(device, rng, name):
    # input and target broadcast together; the input's gradient is summed back to its shape
    kw, kind = ELEMENTWISE[name]
    for xs, ts in [((5, 5), (1, 5)), ((5, 1), (4,)), ((1, 5), (4, 1)), ((2, 3, 4), ()), ((), (3,))]:
        x = np.asarray(rng.standard_normal(xs), np.float32)
        for red in REDUCTIONS:
            check(device, name, (x, _target(kind, rng, ts)), kw, red, rng, what=f"{xs} vs {ts}")


def test_smooth_l1_and_huber_parameters(device, rng):
    x = np.asarray(3 * rng.standard_normal((6, 7)), np.float32)
    y = np.asarray(3 * rng.standard_normal((6, 7)), np.float32)
    for beta in [0.0, 1e-3, 1.0, 5.0, 100.0]:  # 0 is l1_loss, as PyTorch
        check(device, "smooth_l1_loss", (x, y), {"beta": beta}, "sum", rng)
    for delta in [1e-3, 1.0, 9.0]:
        check(device, "huber_loss", (x, y), {"delta": delta}, "mean", rng)
    # at |d| == beta / delta exactly: the linear branch (|d| < beta is false), as PyTorch
    x, y = np.array([1.0, -2.0], np.float32), np.array([0.0, 0.0], np.float32)
    g = device.get(fl.smooth_l1_loss_backward(device.put(x), device.put(y), reduction="sum", beta=1.0))
    np.testing.assert_array_equal(g, [1.0, -1.0])


def test_hinge_embedding_any_margin_and_targets(device, rng):
    x = np.asarray(3 * rng.standard_normal(50), np.float32)
    y = np.asarray(rng.integers(-2, 3, 50), np.float32)  # PyTorch's formula for any target value
    for margin in [-9.0, -1.0, 0.0, 1.0, 8.5]:
        check(device, "hinge_embedding_loss", (x, y), {"margin": margin}, "none", rng)
    # at the kink margin - x == 0 the clamp passes its gradient (PyTorch's clamp_min)
    g = device.get(fl.hinge_embedding_loss_backward(device.put(np.array([1.0], np.float32)),
                                                    device.put(np.array([-1.0], np.float32)), reduction="sum"))
    np.testing.assert_array_equal(g, [-1.0])


def test_elementwise_nan_and_inf(device, rng):
    x = np.array([np.nan, np.inf, -np.inf, 1.0], np.float32)
    y = np.array([1.0, -1.0, 1.0, -1.0], np.float32)
    for name in ["mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "hinge_embedding_loss", "soft_margin_loss"]:
        kw = ELEMENTWISE[name][0]
        want = ref.__dict__[name](_64(x), _64(y), reduction="none", **kw)
        got = device.get(getattr(fl, name)(device.put(x), device.put(y), reduction="none", **kw))
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=name)
        ok = ~np.isnan(want)
        np.testing.assert_array_equal(np.isinf(got[ok]), np.isinf(want[ok]), err_msg=name)
        np.testing.assert_allclose(got[ok], want[ok], rtol=reduction_tol(1), err_msg=name)


@pytest.mark.parametrize("wshape,pwshape", [((1,), None), ((1, 5), None), ((5,), None), ((5, 5), None),
                                            (None, (5,)), ((5, 5), (5,)), ((4, 1), (1, 5)), (None, ())])
def test_bce_weight_and_pos_weight_broadcast(device, rng, wshape, pwshape):
    x = np.asarray(3 * rng.standard_normal((4, 5)) if wshape != (5, 5) else rng.standard_normal((5, 5)), np.float32)
    t = np.asarray(rng.random(x.shape), np.float32)
    kw = {}
    if wshape is not None and np.broadcast_shapes(wshape, x.shape) == x.shape:
        kw["weight"] = np.asarray(rng.random(wshape) * 2, np.float32)
    if pwshape is not None:
        kw["pos_weight"] = np.asarray(rng.random(pwshape) * 3, np.float32)
    for red in REDUCTIONS:
        check(device, "binary_cross_entropy_with_logits", (x, t), kw, red, rng, what=f"{wshape} {pwshape}")


# --- cross-entropy, nll_loss ------------------------------------------------------------------------

def _ce_case(rng, shape, ignore=None, probs=False, scale=3.0):
    x = np.asarray(scale * rng.standard_normal(shape), np.float32)
    c = shape[0] if len(shape) == 1 else shape[1]
    lshape = () if len(shape) == 1 else (shape[0],) + tuple(shape[2:])
    if probs:
        return x, np.asarray(rng.random(shape), np.float32), c
    y = np.asarray(rng.integers(0, c, lshape))
    if ignore is not None:
        y = np.where(rng.random(lshape) < 0.3, ignore, y)
    return x, y, c


CE_SHAPES = [(3,), (1, 1), (4, 1), (2, 3), (7, 10), (3, 300), (2, 3, 1), (2, 3, 1, 2), (2, 3, 1, 2, 3),
             (3, 5, 70), (1, 4, 9, 9), (2, 1200)]


def _ce_tol(c):
    return reduction_tol(max(c, 1))


@pytest.mark.parametrize("red", REDUCTIONS)
@pytest.mark.parametrize("name", ["cross_entropy", "softmax_cross_entropy", "nll_loss"])
def test_class_losses_every_shape(device, rng, name, red):
    for shape in CE_SHAPES:
        x, y, c = _ce_case(rng, shape)
        out = check(device, name, (x, y), {}, red, rng, _ce_tol(c), what=str(shape))
        assert np.shape(out) == (np.shape(y) if red == "none" else ())


@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss"])
def test_class_weight_and_ignore_index(device, rng, name):
    for shape in [(3,), (6, 4), (2, 5, 3, 3), (40, 7, 33)]:
        c = shape[0] if len(shape) == 1 else shape[1]
        for weight in [None, np.asarray(rng.random(c) * 2, np.float32), np.asarray(rng.standard_normal(c), np.float32)]:
            for ignore in [-100, -1, 1]:
                x, y, c = _ce_case(rng, shape, ignore=ignore if ignore != -100 else None)
                for red in REDUCTIONS:
                    check(device, name, (x, y), {"weight": weight, "ignore_index": ignore}, red, rng, _ce_tol(c),
                          what=f"{shape} w={weight is not None} ignore={ignore}")


def test_ignore_index_on_every_position(device, rng):
    # each position of a K-dim batch ignored in turn: its loss term is 0, its gradient row exactly 0
    x, y, c = _ce_case(rng, (2, 4, 3, 2))
    w = np.asarray(rng.random(c) + 0.5, np.float32)
    for p in range(y.size):
        yp = y.copy().reshape(-1)
        yp[p] = 3 if yp[p] != 3 else 2
        yp = yp.reshape(y.shape)
        ign = int(yp.reshape(-1)[p])
        for red in REDUCTIONS:
            check(device, "cross_entropy", (x, yp), {"weight": w, "ignore_index": ign, "label_smoothing": 0.1},
                  red, rng, _ce_tol(c), what=f"ignored position {p}")
        g = device.get(fl.cross_entropy_backward(device.put(x), device.put(yp), ignore_index=ign))
        mask = (yp == ign)
        np.testing.assert_array_equal(np.moveaxis(g, 1, -1)[mask], 0.0)


def test_label_smoothing_with_weight(device, rng):
    for shape in [(5, 4), (3, 6, 7), (4,), (2, 300)]:
        c = shape[0] if len(shape) == 1 else shape[1]
        w = np.asarray(rng.random(c) * 2, np.float32)
        for eps in [0.0, 0.1, 0.5, 1.0]:
            for ignore in [-100, 0]:
                x, y, c = _ce_case(rng, shape)
                for red in REDUCTIONS:
                    check(device, "cross_entropy", (x, y), {"weight": w, "ignore_index": ignore, "label_smoothing": eps},
                          red, rng, _ce_tol(c), what=f"{shape} eps={eps}")


def test_probability_targets(device, rng):
    for shape in [(4,), (5, 3), (2, 3, 4), (2, 300), (3, 4, 2, 5)]:
        c = shape[0] if len(shape) == 1 else shape[1]
        for w in [None, np.asarray(rng.random(c), np.float32)]:
            for eps in [0.0, 0.25]:
                x, t, c = _ce_case(rng, shape, probs=True)  # rows need not sum to 1 (torch's samples)
                for red in REDUCTIONS:
                    check(device, "cross_entropy", (x, t), {"weight": w, "label_smoothing": eps}, red, rng,
                          _ce_tol(c), what=f"probs {shape}")


def test_all_ignored_batch(device, rng):
    x = device.put(np.asarray(rng.standard_normal((4, 3)), np.float32))
    y = device.put(np.full(4, 2))
    assert math.isnan(float(fl.cross_entropy(x, y, ignore_index=2)))  # 0 / 0, as PyTorch
    assert math.isnan(float(fl.nll_loss(x, y, ignore_index=2)))
    assert float(fl.cross_entropy(x, y, ignore_index=2, reduction="sum")) == 0.0
    np.testing.assert_array_equal(device.get(fl.cross_entropy(x, y, ignore_index=2, reduction="none")), 0.0)
    for fn in (fl.cross_entropy_backward, fl.nll_loss_backward):
        g = device.get(fn(x, y, ignore_index=2))
        np.testing.assert_array_equal(g, 0.0)  # no NaN: the ignored rows never see 1 / 0
    g = device.get(fl.cross_entropy_backward(x, y, ignore_index=2, label_smoothing=0.3))
    np.testing.assert_array_equal(g, 0.0)


def test_unbatched_input_with_0d_label(device, rng):
    x = np.asarray(rng.standard_normal(5), np.float32)
    for red in REDUCTIONS:
        out = check(device, "cross_entropy", (x, np.asarray(3)), {"label_smoothing": 0.2}, red, rng, _ce_tol(5))
        assert np.shape(out) == ()
        check(device, "nll_loss", (x, np.asarray(1)), {"weight": np.ones(5, np.float32) * 2}, red, rng)
        check(device, "cross_entropy", (x, np.asarray(rng.random(5), np.float32)), {}, red, rng, _ce_tol(5))


def test_softmax_cross_entropy_keeps_its_signature(device, rng):
    x, y, c = _ce_case(rng, (6, 5))
    a = fl.softmax_cross_entropy(device.put(x), device.put(y), "sum")  # reduction third, as before
    b = fl.cross_entropy(device.put(x), device.put(y), None, -100, "sum")  # torch's order
    assert float(a) == float(b)
    w = np.asarray(rng.random(c), np.float32)
    a = fl.softmax_cross_entropy_backward(device.put(x), device.put(y), weight=device.put(w), label_smoothing=0.1)
    b = fl.cross_entropy_backward(device.put(x), device.put(y), device.put(w), label_smoothing=0.1)
    np.testing.assert_array_equal(device.get(a), device.get(b))


def test_extreme_logits_with_options(device, rng):
    z = np.where(rng.random((6, 5)) < 0.5, -1e4, 1e4).astype(np.float32)
    y = np.asarray(rng.integers(0, 5, 6))
    w = np.asarray(rng.random(5) + 0.1, np.float32)
    for red in REDUCTIONS:
        out = check(device, "cross_entropy", (z, y), {"weight": w, "label_smoothing": 0.2}, red, rng)
        assert np.all(np.isfinite(out))
    zk = np.where(rng.random((2, 5, 3)) < 0.5, -1e4, 1e4).astype(np.float32)
    yk = np.asarray(rng.integers(0, 5, (2, 3)))
    check(device, "cross_entropy", (zk, yk), {"label_smoothing": 0.1}, "sum", rng)


# --- bad options -------------------------------------------------------------------------------------

def test_bad_option_values_name_the_argument(device):
    x = device.put(np.zeros((3, 4), np.float32))
    y = device.put(np.array([0, 1, 2]))
    p = device.put(np.full((3, 4), 0.25, np.float32))
    v = device.put(np.zeros(3, np.float32))
    cases = [
        (lambda: fl.cross_entropy(x, y, reduction="average"), ValueError, "reduction must be 'none', 'mean' or 'sum'"),
        (lambda: fl.l1_loss(v, v, reduction=None), ValueError, "reduction"),
        (lambda: fl.cross_entropy(x, p, ignore_index=1), ValueError, "ignore_index is not supported with probability"),
        (lambda: fl.cross_entropy(x, y, label_smoothing=1.5), ValueError, r"label_smoothing must be in \[0, 1\]"),
        (lambda: fl.cross_entropy(x, y, label_smoothing=-0.1), ValueError, "label_smoothing"),
        (lambda: fl.cross_entropy(x, y, weight=device.put(np.ones(3, np.float32))), ValueError,
         r"weight must have shape \(4,\)"),
        (lambda: fl.cross_entropy(x, y, ignore_index=1.5), TypeError, "ignore_index must be an int"),
        (lambda: fl.cross_entropy(x, device.put(np.zeros((3, 4), np.int64))), TypeError, "must be a float array"),
        (lambda: fl.cross_entropy(x, device.put(np.zeros(3, np.float32))), ValueError, "integer class indices"),
        (lambda: fl.nll_loss(x, device.put(np.zeros(3, np.float32))), TypeError, "integer class indices"),
        (lambda: fl.nll_loss(x, device.put(np.zeros(4, np.int64))), ValueError, r"target must have shape \(3,\)"),
        (lambda: fl.smooth_l1_loss(v, v, beta=-1.0), ValueError, "beta must be >= 0, got -1.0"),
        (lambda: fl.huber_loss(v, v, delta=0.0), ValueError, "delta must be > 0, got 0.0"),
        (lambda: fl.huber_loss(v, v, delta=-1), ValueError, "delta must be > 0"),
        (lambda: fl.hinge_embedding_loss(v, v, margin=float("nan")), ValueError, "margin must be a finite number"),
        (lambda: fl.binary_cross_entropy_with_logits(v, v, weight=device.put(np.ones(4, np.float32))), ValueError,
         r"weight must broadcast to the shape of input \(3,\)"),
        (lambda: fl.binary_cross_entropy_with_logits(v, v, pos_weight=device.put(np.ones((2, 3), np.float32))),
         ValueError, "pos_weight must broadcast"),
        (lambda: fl.binary_cross_entropy_with_logits(v, device.put(np.zeros(1, np.float32))), ValueError,
         r"target must have shape \(3,\)"),
        (lambda: fl.mse_loss_backward(v, v, reduction="none", grad_out=device.put(np.ones(2, np.float32))),
         ValueError, r"grad_out must have the shape of the per-element loss \(3,\), got \(2,\)"),
        (lambda: fl.cross_entropy_backward(x, y, grad_out=device.put(np.ones(3, np.float32))), ValueError,
         r"grad_out must have the shape of a reduced loss \(0-d\) \(\), got \(3,\)"),
        (lambda: fl.l1_loss(v, device.put(np.zeros(4, np.float32))), ValueError, "target must have shape"),
    ]
    for fn, exc, pattern in cases:
        with pytest.raises(exc, match=pattern):
            fn()


# --- torch.nn.functional ------------------------------------------------------------------------------

def _torch_case(torch, rng, k):
    """(name, torch function, args, kwargs) of random case k, with PyTorch's own defaults."""
    F = torch.nn.functional
    kind = k % 9
    shape = [(), (5,), (4, 5), (2, 3, 4)][k % 4]
    red = REDUCTIONS[k % 3]
    x = np.asarray(3 * rng.standard_normal(shape), np.float32)
    if kind == 0:
        return "mse_loss", F.mse_loss, (x, _target("real", rng, shape)), {"reduction": red}
    if kind == 1:
        return "l1_loss", F.l1_loss, (x, _target("real", rng, shape)), {"reduction": red}
    if kind == 2:
        return "smooth_l1_loss", F.smooth_l1_loss, (x, _target("real", rng, shape)), {"reduction": red,
                                                                                         "beta": float(rng.choice([0.0, 0.5, 2.0]))}
    if kind == 3:
        return "huber_loss", F.huber_loss, (x, _target("real", rng, shape)), {"reduction": red,
                                                                                 "delta": float(rng.uniform(1e-3, 9))}
    if kind == 4:
        return "soft_margin_loss", F.soft_margin_loss, (x, _target("pm1", rng, shape)), {"reduction": red}
    if kind == 5:
        return "hinge_embedding_loss", F.hinge_embedding_loss, (x, _target("pm1", rng, shape)), {
            "reduction": red, "margin": float(rng.uniform(-9, 9))}
    if kind == 6:
        kw = {"reduction": red}
        if shape and k % 2:
            kw["weight"] = np.asarray(rng.random(shape[-1:]), np.float32)
        if shape and k % 5 < 2:
            kw["pos_weight"] = np.asarray(rng.random(shape[-1:]) * 3, np.float32)
        return "binary_cross_entropy_with_logits", F.binary_cross_entropy_with_logits, (x, _target("prob", rng, shape)), kw
    cshape = [(3,), (2, 3), (4, 5, 2), (2, 3, 1, 2), (6, 7)][k % 5]
    c = cshape[0] if len(cshape) == 1 else cshape[1]
    kw = {"reduction": red}
    if k % 2:
        kw["weight"] = np.asarray(rng.random(c) + 0.1, np.float32)
    probs = kind == 7 and k % 4 == 3
    if not probs and k % 3 == 0:
        kw["ignore_index"] = int(rng.integers(0, c))
    x, y, c = _ce_case(rng, cshape, probs=probs)
    if "ignore_index" in kw and red == "mean" and np.all(y == kw["ignore_index"]):
        kw["ignore_index"] = -100
    if kind == 7:
        if k % 5 == 1:
            kw["label_smoothing"] = float(rng.uniform(0, 1))
        return "cross_entropy", F.cross_entropy, (x, y), kw
    return "nll_loss", F.nll_loss, (x, y), kw


def test_matches_torch_on_random_cases(device, rng):
    torch = pytest.importorskip("torch", reason="PyTorch not installed: the torch cross-check is skipped")
    for k in range(300):
        name, tfn, args, kw = _torch_case(torch, rng, k)
        targs = [torch.tensor(_64(a)) for a in args]
        targs[0].requires_grad_(True)
        tkw = {key: torch.tensor(_64(v)) if isinstance(v, np.ndarray) else v for key, v in kw.items()}
        want = tfn(*targs, **tkw)
        go = np.asarray(rng.standard_normal(tuple(want.shape)), np.float32)
        want.backward(torch.tensor(_64(go)))
        dkw = {key: device.put(v) if isinstance(v, np.ndarray) else v for key, v in kw.items()}
        dev = [device.put(a) for a in args]
        c = args[0].shape[1] if name in ("cross_entropy", "nll_loss") and args[0].ndim > 1 else args[0].size
        tol = reduction_tol(max(c, 1))
        what = f"case {k}: {name} {args[0].shape} {kw}"
        assert_close(getattr(fl, name)(*dev, **dkw), want.detach().numpy(), tol, what)
        grad = getattr(fl, name + "_backward")(*dev, **dkw, grad_out=device.put(go))
        assert_close(grad, targs[0].grad.numpy(), tol, what + " backward")


@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss"])
def test_torch_sample_inputs_class_losses(device, rng, name):
    """PyTorch's own OpInfo samples for these functions (shapes and options, as in
    torch/testing/_internal/common_methods_invocations.py), checked against PyTorch."""
    torch = pytest.importorskip("torch", reason="PyTorch not installed: the torch cross-check is skipped")
    tfn = getattr(torch.nn.functional, name)
    samples = []
    for shape in [(2, 3), (3,), (2, 3, 2, 2), (2, 3, 1), (2, 3, 1, 2, 3)]:
        c = shape[0] if len(shape) == 1 else shape[1]
        for red in REDUCTIONS:
            for kw in [{}, {"weight": rng.standard_normal(c)}, {"weight": rng.random(c)}, {"weight": -rng.random(c)},
                       {"ignore_index": c // 2}, {"ignore_index": c // 2, "weight": rng.standard_normal(c)}]:
                samples.append((shape, dict(kw, reduction=red)))
            if red != "mean":
                samples.append((shape, {"ignore_index": 0, "reduction": red, "zeros": True}))
    for shape, kw in samples:
        zeros = kw.pop("zeros", False)
        x, y, c = _ce_case(rng, shape)
        if zeros:
            y = np.zeros_like(y)
        elif "ignore_index" in kw and kw["reduction"] == "mean" and np.all(y == kw["ignore_index"]):
            y = np.zeros_like(y)
        kw = {k: np.asarray(v, np.float32) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
        xt = torch.tensor(_64(x), requires_grad=True)
        want = tfn(xt, torch.tensor(y), **{k: torch.tensor(_64(v)) if isinstance(v, np.ndarray) else v for k, v in kw.items()})
        want.sum().backward()
        dkw = {k: device.put(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
        got = getattr(fl, name)(device.put(x), device.put(y), **dkw)
        what = f"{name} {shape} {kw}"
        assert_close(got, want.detach().numpy(), _ce_tol(c), what)
        grad = getattr(fl, name + "_backward")(device.put(x), device.put(y), **dkw,
                                               grad_out=device.put(np.ones(np.shape(want.detach().numpy()), np.float32)))
        assert_close(grad, xt.grad.numpy(), _ce_tol(c), what + " backward")


# --- CUDA: labels checked on the device ----------------------------------------------------------------

def test_cuda_bad_labels_reported_without_a_host_copy():
    if not fl.cuda.is_available():
        pytest.skip("no usable CUDA GPU (or CuPy) on this machine: the device-side label check is not exercised")
    import cupy

    d = Device("cuda")
    fl.cuda.check_errors()  # nothing pending
    z = d.put(np.zeros((3, 4), np.float32))
    y = d.put(np.array([0, 7, 1]))
    loss = fl.cross_entropy(z, y)  # no error yet: the check runs on the device
    g = fl.cross_entropy_backward(z, y)
    assert math.isnan(float(loss)) and np.isnan(d.get(g)[1]).all() and not np.isnan(d.get(g)[0]).any()
    with pytest.raises(ValueError, match=r"cross_entropy \(CUDA\): target must lie in \[0, 4\) .* got a label 7"):
        fl.cuda.check_errors()
    fl.cuda.check_errors()  # cleared
    s = d.put(np.zeros(3, np.float32))
    fl.logistic_loss(s, d.put(np.array([1.0, 0.5, -1.0], np.float32)))
    with pytest.raises(ValueError, match=r"logistic_loss \(CUDA\): labels must be -1 or \+1, got a label 0.5"):
        fl.cuda.check_errors()
    assert isinstance(g, cupy.ndarray)


def test_cuda_branch_of_the_ops_on_the_host(monkeypatch, rng):
    """The ops' CuPy code path (no host label check, a workspace and the status word passed to the
    kernels) run on the host: a backend named "cuda" whose kernels are the CPU ones (same argument
    lists, no stream). Where CI has no GPU this still checks the arguments the CUDA kernels get."""
    from fastlayers import _backend, _device_errors
    from fastlayers.ops import loss as L

    class HostAsCuda(_backend.Backend):
        def __init__(self):
            super().__init__("cuda", np, _backend._cpu)

        def _kernel_args(self, args):
            return args

    fake = HostAsCuda()
    monkeypatch.setattr(L, "_backend", lambda names, a, b, **others: fake)
    monkeypatch.setattr(_device_errors, "status_word", lambda: np.zeros(4, np.int64))
    x, y, c = _ce_case(rng, (5, 4, 3))
    w = np.asarray(rng.random(4), np.float32)
    for red in REDUCTIONS:
        kw = dict(weight=w, ignore_index=1, reduction=red, label_smoothing=0.1)
        assert_close(fl.cross_entropy(x, y, **kw), ref.cross_entropy(_64(x), y, **{**kw, "weight": _64(w)}),
                     _ce_tol(c), f"cuda branch {red}")
        assert_close(fl.nll_loss_backward(x, y, w, 1, red), ref.nll_loss_backward(_64(x), y, _64(w), 1, red),
                     reduction_tol(1), f"cuda branch nll {red}")
    bad = y.copy()
    bad[2, 1] = 9  # not checked on the host in this path: the kernels make that sample NaN
    assert math.isnan(float(fl.cross_entropy(x, bad)))
    g = fl.cross_entropy_backward(x, bad)
    assert np.isnan(g[2, :, 1]).all() and not np.isnan(g[0]).any()
    s = np.asarray(rng.standard_normal(4), np.float32)
    fl.logistic_loss(s, np.array([1.0, 0.5, -1.0, 1.0], np.float32))  # no host check, no raise
