import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastlayers as fl
from fastlayers import reference as ref

from ..helpers import Device, assert_close, reduction_tol

SHAPES = [(0,), (1,), (7,), (3, 5), (2, 3, 4, 5), (40000,)]  # 40000 crosses the OpenMP grain
ELEMENTWISE_TOL = reduction_tol(1)  # one libm call or one multiply per element: a few ulp


def f64(a):
    return np.asarray(a, dtype=np.float64)


@pytest.mark.parametrize("shape", SHAPES)
def test_relu_matches_reference(device, rng, shape):
    x = rng.standard_normal(shape).astype(np.float32)
    g = rng.standard_normal(shape).astype(np.float32)
    assert_close(fl.relu(device.put(x)), ref.relu(x), reduction_tol(1), "relu")
    assert_close(fl.relu_backward(device.put(g), device.put(x)), ref.relu_backward(g, x),
                 reduction_tol(1), "relu_backward")


def test_relu_propagates_nan_and_keeps_input(device):
    x = np.array([np.nan, -1.0, 2.0], dtype=np.float32)
    before = x.copy()
    y = device.get(fl.relu(device.put(x)))
    assert np.isnan(y[0]) and y[1] == 0 and y[2] == 2
    np.testing.assert_array_equal(x, before)


def test_relu_converts_float64_and_noncontiguous(device, rng):
    x = rng.standard_normal((6, 8))[:, ::2]  # float64, non-contiguous
    y = fl.relu(device.put(x))
    assert y.dtype == np.float32 and y.flags.c_contiguous
    assert_close(y, ref.relu(x), reduction_tol(1), "relu")


def test_relu_bad_input(device):
    with pytest.raises(TypeError, match="x"):
        fl.relu(device.put(np.array([1 + 2j])))
    with pytest.raises(ValueError, match="grad_out"):
        fl.relu_backward(device.put(np.ones(3, np.float32)), device.put(np.ones(4, np.float32)))


# ---- elementwise activations: (name, kwargs, backward takes "x" or the forward output "y") ----

UNARY = [
    ("leaky_relu", {}, "x"),
    ("leaky_relu", {"negative_slope": 0.2}, "x"),
    ("leaky_relu", {"negative_slope": -1.5}, "x"),
    ("sigmoid", {}, "y"),
    ("tanh", {}, "y"),
    ("sign", {}, None),
    ("heaviside", {}, None),
    ("heaviside", {"value_at_zero": 0.5}, None),
]
UNARY_IDS = [f"{n}{kw}" for n, kw, _ in UNARY]


@pytest.mark.parametrize("name,kwargs,saved", UNARY, ids=UNARY_IDS)
@pytest.mark.parametrize("shape", SHAPES)
def test_unary_matches_reference(device, rng, shape, name, kwargs, saved):
    x = (3 * rng.standard_normal(shape)).astype(np.float32)
    if x.size > 2:
        x.flat[:2] = 0.0  # hit the value at zero of sign / heaviside / leaky_relu
    y = getattr(fl, name)(device.put(x), **kwargs)
    assert y.dtype == np.float32 and y.shape == x.shape
    expected = getattr(ref, name)(f64(x), **kwargs)
    assert_close(y, expected, ELEMENTWISE_TOL, name)
    if saved is None:
        return
    g = rng.standard_normal(shape).astype(np.float32)
    t = x if saved == "x" else expected.astype(np.float32)
    grad = getattr(fl, name + "_backward")(device.put(g), device.put(t), **kwargs)
    assert_close(grad, getattr(ref, name + "_backward")(f64(g), f64(t), **kwargs), ELEMENTWISE_TOL,
                 name + "_backward")


@pytest.mark.parametrize("name,kwargs,saved", UNARY, ids=UNARY_IDS)
def test_unary_propagates_nan_and_keeps_input(device, name, kwargs, saved):
    x = np.array([np.nan, -2.0, 0.0, 3.0, -np.inf, np.inf], dtype=np.float32)
    before = x.copy()
    y = device.get(getattr(fl, name)(device.put(x), **kwargs))
    assert np.isnan(y[0]) and not np.isnan(y[1:]).any()
    np.testing.assert_array_equal(x, before)
    if saved:
        g = np.ones_like(x)
        t = x if saved == "x" else y
        g_before, t_before = g.copy(), t.copy()
        getattr(fl, name + "_backward")(device.put(g), device.put(t), **kwargs)
        np.testing.assert_array_equal(g, g_before)
        np.testing.assert_array_equal(t, t_before)


def test_sign_and_heaviside_exact_values(device):
    x = np.array([-np.inf, -3.5, -1e-30, -0.0, 0.0, 1e-30, 2.0, np.inf, np.nan], dtype=np.float32)
    s = device.get(fl.sign(device.put(x)))
    np.testing.assert_array_equal(s, [-1, -1, -1, 0, 0, 1, 1, 1, np.nan])
    h = device.get(fl.heaviside(device.put(x)))
    np.testing.assert_array_equal(h, [0, 0, 0, 1, 1, 1, 1, 1, np.nan])
    h = device.get(fl.heaviside(device.put(x), value_at_zero=0.0))
    np.testing.assert_array_equal(h, [0, 0, 0, 0, 0, 1, 1, 1, np.nan])


def test_sigmoid_and_tanh_saturate_exactly(device):
    x = np.array([-1e4, -200.0, -88.0, -20.0, 0.0, 20.0, 88.0, 200.0, 1e4, -np.inf, np.inf],
                 dtype=np.float32)
    s = device.get(fl.sigmoid(device.put(x)))
    assert np.all((s >= 0) & (s <= 1))
    assert s[0] == 0 and s[-2] == 0 and s[-3] == 1 and s[-1] == 1 and s[4] == 0.5
    assert_close(s, ref.sigmoid(f64(x)), ELEMENTWISE_TOL, "sigmoid")
    # deep in the tail sigmoid(x) ~ exp(x): relative, not just absolute, accuracy
    np.testing.assert_allclose(s[2:4], np.exp(f64(x[2:4])), rtol=4 * np.finfo(np.float32).eps)
    t = device.get(fl.tanh(device.put(x)))
    np.testing.assert_array_equal(t[[0, 1, -2]], -1)
    np.testing.assert_array_equal(t[[7, 8, -1]], 1)


# ---- softmax / log_softmax ----

SOFTMAX = ["softmax", "log_softmax"]
AXIS_SHAPES = [(1,), (5,), (1, 1), (4, 7), (3, 5, 9), (2, 3, 4, 5), (2, 1, 67, 3)]


def assert_close_with_inf(actual, expected, tol, what):
    """assert_close, with infinities (log_softmax of -inf logits) required to match exactly."""
    actual, expected = f64(Device.get(actual)), f64(expected)
    inf = np.isinf(expected)
    np.testing.assert_array_equal(actual[inf], expected[inf], err_msg=what)
    assert_close(np.where(inf, 0, actual), np.where(inf, 0, expected), tol, what)


def check_softmax(device, rng, name, x, axis, scale_g=1.0):
    dim = x.shape[axis]
    tol = reduction_tol(dim)  # one sum over the axis (plus a few elementwise roundings)
    y = getattr(fl, name)(device.put(x), axis=axis)
    expected = getattr(ref, name)(f64(x), axis=axis)
    assert_close_with_inf(y, expected, tol, f"{name} axis={axis}")
    g = (scale_g * rng.standard_normal(x.shape)).astype(np.float32)
    y32 = expected.astype(np.float32)
    grad = getattr(fl, name + "_backward")(device.put(g), device.put(y32), axis=axis)
    assert_close(grad, getattr(ref, name + "_backward")(f64(g), f64(y32), axis=axis), tol,
                 f"{name}_backward axis={axis}")
    return device.get(y)


@pytest.mark.parametrize("name", SOFTMAX)
@pytest.mark.parametrize("shape", AXIS_SHAPES)
def test_softmax_every_axis(device, rng, name, shape):
    x = (2 * rng.standard_normal(shape)).astype(np.float32)
    for axis in range(-len(shape), len(shape)):
        y = check_softmax(device, rng, name, x, axis)
        p = y if name == "softmax" else np.exp(f64(y))
        np.testing.assert_allclose(p.sum(axis=axis), 1.0, rtol=reduction_tol(shape[axis]))


@pytest.mark.parametrize("name", SOFTMAX)
@pytest.mark.parametrize("shape,axis", [((3, 40000), 1), ((40000, 2), 0), ((3, 50, 300), 1), ((2, 70000), 0)])
def test_softmax_large(device, rng, name, shape, axis):
    # above the OpenMP grain; (3, 50, 300) axis 1 has inner = 300 = 4 full lane blocks + a tail
    check_softmax(device, rng, name, (3 * rng.standard_normal(shape)).astype(np.float32), axis)


def test_softmax_empty(device):
    for shape, axis in [((0,), 0), ((0, 5), 1), ((3, 0), 1), ((2, 0, 3), 0)]:
        x = np.zeros(shape, np.float32)
        for name in SOFTMAX:
            y = getattr(fl, name)(device.put(x), axis=axis)
            assert y.shape == shape
            assert getattr(fl, name + "_backward")(device.put(x), device.put(x), axis=axis).shape == shape


@pytest.mark.parametrize("axis", [0, 1])
def test_softmax_extreme_logits(device, rng, axis):
    rows = np.array([
        [1e4, -1e4, 0.0, 5.0],
        [-1e4, -1e4, -1e4, -1e4],          # all equal
        [3.0, 3.0, 3.0, 3.0],
        [-np.inf, 2.0, -np.inf, -np.inf],  # a single finite entry
        [-np.inf, 1e4, -1e4, 0.0],
    ], dtype=np.float32)
    x = rows if axis == 1 else np.ascontiguousarray(rows.T)
    y = device.get(fl.softmax(device.put(x), axis=axis))
    ly = device.get(fl.log_softmax(device.put(x), axis=axis))
    y, ly = (y, ly) if axis == 1 else (y.T, ly.T)
    assert not np.isnan(y).any() and not np.isnan(ly).any()
    np.testing.assert_array_equal(y[0], [1, 0, 0, 0])
    np.testing.assert_array_equal(ly[0][[0, 1]], [0, -2e4])
    np.testing.assert_allclose(y[1], 0.25, rtol=reduction_tol(4))
    np.testing.assert_allclose(y[2], 0.25, rtol=reduction_tol(4))
    np.testing.assert_allclose(ly[2], -np.log(4), rtol=reduction_tol(4))
    np.testing.assert_array_equal(y[3], [0, 1, 0, 0])
    np.testing.assert_array_equal(ly[3], [-np.inf, 0, -np.inf, -np.inf])
    np.testing.assert_array_equal(y[4], [0, 1, 0, 0])
    for name in SOFTMAX:  # the gradients at these outputs stay finite
        check_softmax(device, rng, name, x, axis)


def test_softmax_nan_and_all_minus_inf_rows(device):
    x = np.array([[1.0, np.nan, 2.0], [1.0, 2.0, 3.0], [-np.inf, -np.inf, -np.inf]], dtype=np.float32)
    for name in SOFTMAX:
        y = device.get(getattr(fl, name)(device.put(x), axis=1))
        expected = getattr(ref, name)(f64(x), axis=1)
        assert np.isnan(y[0]).all() and not np.isnan(y[1]).any()
        assert np.isnan(y[2]).all()  # -inf - max(-inf) is NaN, as the reference and PyTorch
        assert_close(y, expected, reduction_tol(3), name)


@pytest.mark.parametrize("name", SOFTMAX)
def test_softmax_keeps_inputs(device, rng, name):
    x = rng.standard_normal((3, 4, 5)).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    xc, gc = x.copy(), g.copy()
    y = device.get(getattr(fl, name)(device.put(x), axis=1))
    yc = y.copy()
    getattr(fl, name + "_backward")(device.put(g), device.put(y), axis=1)
    for a, b in [(x, xc), (g, gc), (y, yc)]:
        np.testing.assert_array_equal(a, b)


@settings(max_examples=40, deadline=None)
@given(shape=st.lists(st.integers(1, 9), min_size=1, max_size=4), data=st.data(),
       scale=st.sampled_from([0.1, 3.0, 100.0]))
def test_softmax_hypothesis(shape, data, scale):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    name = data.draw(st.sampled_from(SOFTMAX))
    x = (scale * rng.standard_normal(shape)).astype(np.float32)
    check_softmax(Device("cpu"), rng, name, x, axis)


@settings(max_examples=40, deadline=None)
@given(values=st.lists(st.floats(-1e5, 1e5, width=32), min_size=0, max_size=50),
       name=st.sampled_from([u[0] for u in UNARY]))
def test_unary_hypothesis(values, name):
    x = np.array(values, dtype=np.float32)
    assert_close(getattr(fl, name)(x), getattr(ref, name)(f64(x)), ELEMENTWISE_TOL, name)


# ---- bad input ----

def test_activation_bad_input(device):
    ones = device.put(np.ones((2, 3), np.float32))
    with pytest.raises(TypeError, match="negative_slope"):
        fl.leaky_relu(ones, negative_slope="0.1")
    with pytest.raises(TypeError, match="negative_slope"):
        fl.leaky_relu_backward(ones, ones, negative_slope=None)
    with pytest.raises(TypeError, match="value_at_zero"):
        fl.heaviside(ones, value_at_zero="1")
    for name in ["leaky_relu", "sigmoid", "tanh", "sign", "heaviside", "softmax", "log_softmax"]:
        with pytest.raises(TypeError, match="x"):
            getattr(fl, name)(device.put(np.array([1 + 2j])))
    for name, t in [("leaky_relu_backward", "x"), ("sigmoid_backward", "y"), ("tanh_backward", "y"),
                    ("softmax_backward", "y"), ("log_softmax_backward", "y")]:
        with pytest.raises(ValueError, match=r"grad_out must have shape \(2, 3\), got \(3, 2\)"):
            getattr(fl, name)(device.put(np.ones((3, 2), np.float32)), ones)
        with pytest.raises(TypeError, match=t):
            getattr(fl, name)(ones, device.put_text(np.array([["a"]])))
    for name in SOFTMAX:
        with pytest.raises(ValueError, match=r"axis must be in \[-2, 2\).*got 2"):
            getattr(fl, name)(ones, axis=2)
        with pytest.raises(ValueError, match="axis"):
            getattr(fl, name)(ones, axis=-3)
        with pytest.raises(ValueError, match="axis"):
            getattr(fl, name + "_backward")(ones, ones, axis=5)
        with pytest.raises(TypeError, match="axis"):
            getattr(fl, name)(ones, axis=1.0)


def test_mixed_numpy_cupy_is_a_type_error():
    cupy = pytest.importorskip("cupy", reason="CuPy not installed: cannot make a GPU array")
    if not fl.cuda.is_available():
        pytest.skip("no usable CUDA GPU")
    with pytest.raises(TypeError, match="devices"):
        fl.sigmoid_backward(np.ones(3, np.float32), cupy.ones(3, cupy.float32))
