"""The loss kernels against the float64 NumPy reference (and torch.nn.functional when installed).

Tolerances: the kernels accumulate every sum in double and round to float32 once at the end, so the
forward loss is compared with reduction_tol(1) (a few float32 roundings, relative to max(1, |loss|)),
whatever the number of terms. The gradients are elementwise (the softmax row's log-sum-exp is in
double too), also reduction_tol(1).
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastlayers as fl
from fastlayers import reference as ref

from ..helpers import Device, assert_close, num_threads, reduction_tol

TOL = reduction_tol(1)
REDUCTIONS = ["mean", "sum"]


def _pm1(rng, shape):
    return np.where(rng.random(shape) < 0.5, -1.0, 1.0).astype(np.float32)


def make_case(kind, rng, shape, scale=3.0):
    """(forward, backward, args as float32 arrays, kwargs) for one loss on data of `shape`.

    For softmax kinds, shape is (N, C)."""
    x = (scale * rng.standard_normal(shape)).astype(np.float32)
    if kind == "mse":
        return "mse_loss", (x, rng.standard_normal(shape).astype(np.float32)), {}
    if kind == "bce":
        return "binary_cross_entropy_with_logits", (x, rng.random(shape).astype(np.float32)), {}
    if kind == "ce_index":
        return "softmax_cross_entropy", (x, rng.integers(0, shape[1], shape[0])), {}
    if kind == "ce_prob":
        t = rng.random(shape)
        t = (t / t.sum(axis=1, keepdims=True)).astype(np.float32)
        return "softmax_cross_entropy", (x, t), {}
    if kind == "logistic":
        return "logistic_loss", (x, _pm1(rng, shape)), {}
    if kind == "hinge":
        return "hinge_loss", (x, _pm1(rng, shape)), {}
    if kind == "perceptron":
        return "hinge_loss", (x, _pm1(rng, shape)), {"margin": 0.0}
    raise AssertionError(kind)


KINDS = ["mse", "bce", "ce_index", "ce_prob", "logistic", "hinge", "perceptron"]
SOFTMAX_KINDS = {"ce_index", "ce_prob"}
ELEMENT_SHAPES = [(1,), (7,), (3, 5), (2, 3, 4, 5), (40000,)]      # 40000 crosses the OpenMP grain
ROW_SHAPES = [(1, 1), (1, 2), (5, 1), (4, 2), (7, 13), (3, 1000), (2500, 17)]  # batch 1, C=1, C=2


def _as64(a):
    return a.astype(np.float64) if a.dtype.kind == "f" else a


def check_against_reference(device, name, args, kwargs, reduction, what):
    op, op_b = getattr(fl, name), getattr(fl, name + "_backward")
    r, r_b = getattr(ref, name), getattr(ref, name + "_backward")
    before = [a.copy() for a in args]
    dev_args = [device.put(a) for a in args]
    loss = op(*dev_args, reduction=reduction, **kwargs)
    assert loss.shape == () and loss.dtype == np.float32, f"{what}: loss {loss.shape} {loss.dtype}"
    assert type(loss) is type(dev_args[0]), f"{what}: loss not on the inputs' device"
    args64 = [_as64(a) for a in args]
    assert_close(loss, r(*args64, reduction=reduction, **kwargs), TOL, what)
    grad = op_b(*dev_args, reduction=reduction, **kwargs)
    assert grad.shape == args[0].shape and grad.dtype == np.float32
    assert_close(grad, r_b(*args64, reduction=reduction, **kwargs), TOL, what + " backward")
    for a, b in zip(args, before):
        np.testing.assert_array_equal(a, b, err_msg=f"{what}: input modified")
    return float(loss)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kind", KINDS)
def test_loss_matches_reference(device, rng, kind, reduction):
    shapes = ROW_SHAPES if kind in SOFTMAX_KINDS else ELEMENT_SHAPES
    for shape in shapes:
        name, args, kwargs = make_case(kind, rng, shape)
        value = check_against_reference(device, name, args, kwargs, reduction, f"{kind} {shape} {reduction}")
        assert np.isfinite(value)


@pytest.mark.parametrize("kind", ["bce", "ce_index", "ce_prob", "logistic", "hinge"])
def test_extreme_logits_are_finite(device, rng, kind):
    shape = (6, 5)
    name, args, kwargs = make_case(kind, rng, shape)
    z = np.where(rng.random(shape) < 0.5, -1e4, 1e4).astype(np.float32)
    z[0, 0], z[1, :] = 0.0, 1e4  # a tie at the top of a softmax row
    args = (z,) + args[1:]
    for reduction in REDUCTIONS:
        value = check_against_reference(device, name, args, kwargs, reduction, f"{kind} at +-1e4")
        assert np.isfinite(value)
        grad = device.get(getattr(fl, name + "_backward")(*map(device.put, args), reduction=reduction, **kwargs))
        assert np.all(np.isfinite(grad))


def test_softmax_cross_entropy_extreme_values(device):
    # Closed forms: the winning class costs 0, the losing one the gap 2e4.
    z = np.array([[1e4, -1e4], [1e4, -1e4]], np.float32)
    loss = fl.softmax_cross_entropy(device.put(z), device.put(np.array([0, 1])), reduction="sum")
    assert float(loss) == pytest.approx(2e4, rel=1e-6)
    g = device.get(fl.softmax_cross_entropy_backward(device.put(z), device.put(np.array([0, 1]))))
    np.testing.assert_allclose(g, [[0, 0], [0.5, -0.5]], atol=1e-7)


@pytest.mark.parametrize("kind", KINDS)
def test_nan_propagates(device, rng, kind):
    shape = (4, 3)
    name, args, kwargs = make_case(kind, rng, shape)
    z = args[0].copy()
    z[2, 1] = np.nan
    args = (z,) + args[1:]
    loss = getattr(fl, name)(*map(device.put, args), **kwargs)
    assert np.isnan(float(loss))
    grad = device.get(getattr(fl, name + "_backward")(*map(device.put, args), **kwargs))
    expected = ref_grad = getattr(ref, name + "_backward")(*[_as64(a) for a in args], **kwargs)
    assert np.isnan(grad[2, 1]) and np.isnan(ref_grad[2, 1])
    np.testing.assert_array_equal(np.isnan(grad), np.isnan(expected))


def test_reduction_is_deterministic_across_thread_counts(rng):
    x = rng.standard_normal(300001).astype(np.float32)
    t = rng.standard_normal(300001).astype(np.float32)
    z = rng.standard_normal((20001, 7)).astype(np.float32)
    y = rng.integers(0, 7, 20001)
    results = []
    for n in (1, 2, 3):
        with num_threads(n):
            results.append((float(fl.mse_loss(x, t)), float(fl.softmax_cross_entropy(z, y))))
    assert results[0] == results[1] == results[2]


def test_empty_input(device):
    e = device.put(np.zeros((0,), np.float32))
    assert np.isnan(float(fl.mse_loss(e, e)))
    assert float(fl.mse_loss(e, e, reduction="sum")) == 0.0
    assert fl.mse_loss_backward(e, e).shape == (0,)
    z = device.put(np.zeros((0, 3), np.float32))
    assert np.isnan(float(fl.softmax_cross_entropy(z, device.put(np.zeros(0, np.int64)))))


def test_hinge_subgradient_is_zero_at_the_kink(device):
    s = np.array([1.0, -1.0, 0.0, 0.5, 2.0], np.float32)
    y = np.array([1.0, -1.0, 1.0, 1.0, 1.0], np.float32)
    g = device.get(fl.hinge_loss_backward(device.put(s), device.put(y), reduction="sum"))
    np.testing.assert_array_equal(g, [0.0, 0.0, -1.0, -1.0, 0.0])   # margin 1: kink at y*s == 1
    g0 = device.get(fl.hinge_loss_backward(device.put(s), device.put(y), margin=0.0, reduction="sum"))
    np.testing.assert_array_equal(g0, [0.0, 0.0, 0.0, 0.0, 0.0])     # perceptron: 0 on the boundary
    assert float(fl.hinge_loss(device.put(s), device.put(-y), margin=0.0, reduction="sum")) == 4.5  # sum of y*s, all misclassified


def test_converts_float64_noncontiguous_and_integer_labels(device, rng):
    z = rng.standard_normal((6, 10))[:, ::2]          # float64, non-contiguous
    y = rng.integers(0, 5, 6).astype(np.int32)
    assert_close(fl.softmax_cross_entropy(device.put(z), device.put(y)),
                 ref.softmax_cross_entropy(z, y), TOL, "ce float64 input")
    s = rng.standard_normal((4, 6))[::2]
    lab = np.sign(rng.standard_normal((2, 6))).astype(np.int8)
    lab[lab == 0] = 1
    assert_close(fl.logistic_loss(device.put(s), device.put(lab)),
                 ref.logistic_loss(s, lab.astype(np.float64)), TOL, "logistic int8 labels")


@settings(max_examples=40, deadline=None)
@given(kind=st.sampled_from(KINDS), n=st.integers(1, 40), c=st.integers(1, 12),
       reduction=st.sampled_from(REDUCTIONS), scale=st.sampled_from([0.1, 3.0, 50.0]),
       seed=st.integers(0, 2**31 - 1))
def test_hypothesis_cases(kind, n, c, reduction, scale, seed):
    rng = np.random.default_rng(seed)
    name, args, kwargs = make_case(kind, rng, (n, c), scale)
    check_against_reference(Device("cpu"), name, args, kwargs, reduction, f"{kind} ({n}, {c})")


# --- bad input ----------------------------------------------------------------------------------

def test_bad_shapes_and_reduction(device):
    a, b = device.put(np.ones(3, np.float32)), device.put(np.ones(4, np.float32))
    with pytest.raises(ValueError, match=r"target must have shape \(3,\) \(or one that broadcasts .*got \(4,\)"):
        fl.mse_loss(a, b)
    with pytest.raises(ValueError, match="target"):
        fl.binary_cross_entropy_with_logits_backward(a, b)
    with pytest.raises(ValueError, match="labels"):
        fl.hinge_loss(a, b)
    with pytest.raises(ValueError, match="reduction must be 'none', 'mean' or 'sum', got 'max'"):
        fl.mse_loss(a, a, reduction="max")
    with pytest.raises(ValueError, match="reduction"):
        fl.softmax_cross_entropy_backward(device.put(np.ones((2, 3), np.float32)),
                                          device.put(np.array([0, 1])), reduction="avg")
    with pytest.raises(TypeError, match="input"):
        fl.mse_loss(device.put(np.array([1 + 1j])), a)


def test_softmax_cross_entropy_bad_labels(device):
    z = device.put(np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError, match=r"logits must have a class dimension"):
        fl.softmax_cross_entropy(device.put(np.zeros((), np.float32)), device.put(np.zeros((), np.int64)))
    with pytest.raises(TypeError, match=r"labels with the shape of logits \(12,\) holds class probabilities"):
        fl.softmax_cross_entropy(device.put(np.zeros(12, np.float32)), device.put(np.zeros(12, np.int64)))
    with pytest.raises(ValueError, match=r"labels must have shape \(3,\).*got \(2,\)"):
        fl.softmax_cross_entropy(z, device.put(np.array([0, 1])))
    if device.name == "cpu":  # checked on the device by the CUDA kernels (test_loss_options.py)
        with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\) or equal ignore_index \(-100\), got a label 4"):
            fl.softmax_cross_entropy(z, device.put(np.array([0, 4, 1])))
        with pytest.raises(ValueError, match="got a label -1"):
            fl.softmax_cross_entropy_backward(z, device.put(np.array([0, -1, 1])))
    with pytest.raises(ValueError, match=r"labels must be integer .* \(3, 4\), got a float array of shape \(3,\)"):
        fl.softmax_cross_entropy(z, device.put(np.array([0.0, 1.0, 2.0])))
    with pytest.raises(ValueError, match=r"labels must have shape \(3, 4\)|labels"):
        fl.softmax_cross_entropy(z, device.put(np.zeros((3, 5), np.float32)))
    with pytest.raises(TypeError, match="labels must hold .* got dtype bool"):
        fl.softmax_cross_entropy(z, device.put(np.array([True, False, True])))
    with pytest.raises(ValueError, match="at least one class"):
        fl.softmax_cross_entropy(device.put(np.zeros((3, 0), np.float32)), device.put(np.zeros((3, 0), np.float32)))


def test_pm1_labels_required(device):
    s = device.put(np.zeros(3, np.float32))
    for fn in (fl.logistic_loss, fl.logistic_loss_backward, fl.hinge_loss, fl.hinge_loss_backward):
        if device.name != "cpu":
            break  # checked on the device by the CUDA kernels (test_loss_options.py)
        with pytest.raises(ValueError, match=r"labels must be -1 or \+1, got a label 0.0"):
            fn(s, device.put(np.array([1.0, 0.0, -1.0], np.float32)))
        with pytest.raises(ValueError, match="got a label nan"):
            fn(s, device.put(np.array([1.0, np.nan, -1.0], np.float32)))
    with pytest.raises(ValueError, match="margin must be a finite number >= 0, got -1.0"):
        fl.hinge_loss(s, device.put(np.ones(3, np.float32)), margin=-1.0)
    with pytest.raises(TypeError, match="margin"):
        fl.hinge_loss(s, device.put(np.ones(3, np.float32)), margin="1")


def test_mixed_numpy_and_cupy():
    cupy = pytest.importorskip("cupy", reason="CuPy not installed: cannot make a GPU array")
    try:
        g = cupy.ones(3, dtype=cupy.float32)
    except Exception as exc:  # CuPy without a usable GPU
        pytest.skip(f"CuPy cannot allocate on a GPU here: {exc}")
    with pytest.raises(TypeError, match="different devices"):
        fl.mse_loss(np.ones(3, np.float32), g)
    with pytest.raises(TypeError, match="different devices"):
        fl.softmax_cross_entropy(g.reshape(1, 3), np.array([0]))


# --- torch.nn.functional ----------------------------------------------------------------------------

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kind", ["mse", "bce", "ce_index", "ce_prob", "logistic"])
def test_matches_torch(device, rng, kind, reduction):
    torch = pytest.importorskip("torch", reason="PyTorch not installed: the torch cross-check is skipped")
    F = torch.nn.functional
    torch_fn = {"mse": F.mse_loss, "bce": F.binary_cross_entropy_with_logits, "ce_index": F.cross_entropy,
                "ce_prob": F.cross_entropy, "logistic": F.soft_margin_loss}[kind]
    for shape in [(1, 1), (5, 2), (9, 7), (64, 33)]:
        name, args, kwargs = make_case(kind, rng, shape)
        z = torch.tensor(args[0], dtype=torch.float64, requires_grad=True)
        other = torch.tensor(_as64(args[1]))
        expected = torch_fn(z, other, reduction=reduction)
        expected.backward()
        dev = [device.put(a) for a in args]
        what = f"{kind} {shape} {reduction} vs torch"
        assert_close(getattr(fl, name)(*dev, reduction=reduction), expected.detach().numpy(), TOL, what)
        assert_close(getattr(fl, name + "_backward")(*dev, reduction=reduction), z.grad.numpy(), TOL, what)
