"""linear / linear_backward against the float64 NumPy reference.

Tolerance: reduction_tol(in) for the output and grad_x, reduction_tol(rows) for grad_w and grad_b."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastlayers as fl
from fastlayers import reference as ref

from ..helpers import assert_close, reduction_tol

X_SHAPES = [(1, 1), (100, 784), (3, 33), (2, 5, 17), (4, 3, 2, 9), (7,), (0, 5), (3, 0)]


def f64(*arrays):
    return [None if a is None else a.astype(np.float64) for a in arrays]


@pytest.mark.parametrize("x_shape", X_SHAPES)
@pytest.mark.parametrize("out_features", [1, 10, 33])
@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_matches_reference(device, rng, x_shape, out_features, with_bias):
    in_features = x_shape[-1]
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal((out_features, in_features)).astype(np.float32)
    b = rng.standard_normal(out_features).astype(np.float32) if with_bias else None
    y = fl.linear(device.put(x), device.put(w), device.put(b))
    assert y.dtype == np.float32 and y.shape == x_shape[:-1] + (out_features,)
    assert_close(y, ref.linear(*f64(x, w, b)), reduction_tol(in_features), "linear")

    g = rng.standard_normal(y.shape).astype(np.float32)
    got = fl.linear_backward(device.put(g), device.put(x), device.put(w), with_bias=with_bias)
    want = ref.linear_backward(*f64(g, x, w), with_bias=with_bias)
    rows = int(np.prod(x_shape[:-1]))
    assert_close(got[0], want[0], reduction_tol(out_features), "grad_x")
    assert_close(got[1], want[1], reduction_tol(rows), "grad_w")
    if with_bias:
        assert_close(got[2], want[2], reduction_tol(rows), "grad_b")
    else:
        assert got[2] is None


def test_linear_large_bias_kernels(rng):
    # rows * cols above the OpenMP grain and cols above one 256-column chunk: the parallel paths.
    x = rng.standard_normal((300, 64)).astype(np.float32)
    w = rng.standard_normal((700, 64)).astype(np.float32)
    b = rng.standard_normal(700).astype(np.float32)
    assert_close(fl.linear(x, w, b), ref.linear(*f64(x, w, b)), reduction_tol(64), "linear")
    g = rng.standard_normal((300, 700)).astype(np.float32)
    got = fl.linear_backward(g, x, w)
    want = ref.linear_backward(*f64(g, x, w))
    for i, (name, k) in enumerate([("grad_x", 700), ("grad_w", 300), ("grad_b", 300)]):
        assert_close(got[i], want[i], reduction_tol(k), name)


def test_linear_keeps_inputs_and_converts(device, rng):
    x = rng.standard_normal((6, 20))[:, ::2]  # float64, non-contiguous
    w = rng.standard_normal((4, 10)).astype(np.float32)
    b = rng.standard_normal(4)
    copies = [x.copy(), w.copy(), b.copy()]
    y = fl.linear(device.put(x), device.put(w), device.put(b))
    assert y.dtype == np.float32 and y.flags.c_contiguous
    assert_close(y, ref.linear(*f64(x, w, b)), reduction_tol(10), "linear")
    g = rng.standard_normal((6, 4)).astype(np.float32)
    fl.linear_backward(device.put(g), device.put(x), device.put(w))
    for before, after in zip(copies, [x, w, b]):
        np.testing.assert_array_equal(before, after)


@settings(max_examples=30, deadline=None)
@given(batch=st.lists(st.integers(1, 6), min_size=1, max_size=3), in_f=st.integers(1, 70),
       out_f=st.integers(1, 70), with_bias=st.booleans(), seed=st.integers(0, 2**31))
def test_linear_hypothesis(batch, in_f, out_f, with_bias, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((*batch, in_f)).astype(np.float32)
    w = rng.standard_normal((out_f, in_f)).astype(np.float32)
    b = rng.standard_normal(out_f).astype(np.float32) if with_bias else None
    assert_close(fl.linear(x, w, b), ref.linear(*f64(x, w, b)), reduction_tol(in_f), "linear")
    g = rng.standard_normal((*batch, out_f)).astype(np.float32)
    got = fl.linear_backward(g, x, w, with_bias=with_bias)
    want = ref.linear_backward(*f64(g, x, w), with_bias=with_bias)
    rows = int(np.prod(batch))
    assert_close(got[0], want[0], reduction_tol(out_f), "grad_x")
    assert_close(got[1], want[1], reduction_tol(rows), "grad_w")
    if with_bias:
        assert_close(got[2], want[2], reduction_tol(rows), "grad_b")


def test_linear_bad_input(device):
    ones = lambda *s: device.put(np.ones(s, np.float32))  # noqa: E731
    with pytest.raises(ValueError, match=r"x's last dimension \(in=5.*w's second dimension \(in=4"):
        fl.linear(ones(3, 5), ones(2, 4))
    with pytest.raises(ValueError, match=r"w must be 2-D"):
        fl.linear(ones(3, 4), ones(4))
    with pytest.raises(ValueError, match=r"b must have shape \(2,\), got \(3,\)"):
        fl.linear(ones(3, 4), ones(2, 4), ones(3))
    with pytest.raises(ValueError, match=r"x must have at least 1 dimension"):
        fl.linear(device.put(np.float32(1.0)), ones(2, 1))
    with pytest.raises(TypeError, match=r"x must have a real numeric dtype"):
        fl.linear(device.put(np.ones((3, 4), bool)), ones(2, 4))
    with pytest.raises(ValueError, match=r"grad_out must have shape \(3, 2\), got \(3, 4\)"):
        fl.linear_backward(ones(3, 4), ones(3, 4), ones(2, 4))
    with pytest.raises(TypeError, match=r"with_bias must be a bool"):
        fl.linear_backward(ones(3, 2), ones(3, 4), ones(2, 4), with_bias=None)
