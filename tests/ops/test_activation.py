import numpy as np
import pytest

import fastlayers as fl
from fastlayers import reference as ref

from ..helpers import assert_close, reduction_tol

SHAPES = [(0,), (1,), (7,), (3, 5), (2, 3, 4, 5), (40000,)]  # 40000 crosses the OpenMP grain


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
