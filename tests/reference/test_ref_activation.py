import warnings

import numpy as np
import pytest

from fastlayers import reference as ref

from ..helpers import assert_grad_matches


def test_relu_backward_matches_finite_differences(rng):
    x = rng.standard_normal((4, 5))
    x[np.abs(x) < 1e-3] = 0.5  # stay away from the kink
    g = rng.standard_normal(x.shape)
    assert_grad_matches(ref.relu_backward(g, x), lambda t: np.sum(g * ref.relu(t)), x, "relu")


@pytest.mark.parametrize("slope", [0.01, 0.3, -2.0])
def test_leaky_relu_backward_matches_finite_differences(rng, slope):
    x = rng.standard_normal((3, 7))
    x[np.abs(x) < 1e-3] = -0.5  # away from the kink
    g = rng.standard_normal(x.shape)
    assert_grad_matches(ref.leaky_relu_backward(g, x, slope),
                        lambda t: np.sum(g * ref.leaky_relu(t, slope)), x, "leaky_relu")


@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
def test_sigmoid_tanh_backward_from_output_matches_finite_differences(rng, name):
    x = 3 * rng.standard_normal((4, 6))
    g = rng.standard_normal(x.shape)
    f = getattr(ref, name)
    y = f(x)
    assert_grad_matches(getattr(ref, name + "_backward")(g, y), lambda t: np.sum(g * f(t)), x, name)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 4)])
def test_softmax_backward_matches_finite_differences(rng, name, shape):
    x = 2 * rng.standard_normal(shape)
    g = rng.standard_normal(shape)
    f = getattr(ref, name)
    for axis in range(-len(shape), len(shape)):
        y = f(x, axis=axis)
        assert_grad_matches(getattr(ref, name + "_backward")(g, y, axis=axis),
                            lambda t: np.sum(g * f(t, axis=axis)), x, f"{name} axis={axis}")


def test_softmax_matches_the_definition_and_is_shift_invariant(rng):
    x = rng.standard_normal((3, 5))
    e = np.exp(x)
    np.testing.assert_allclose(ref.softmax(x, axis=1), e / e.sum(axis=1, keepdims=True), rtol=1e-14)
    np.testing.assert_allclose(ref.softmax(x, axis=0), e / e.sum(axis=0, keepdims=True), rtol=1e-14)
    np.testing.assert_allclose(ref.log_softmax(x), np.log(e / e.sum(axis=1, keepdims=True)), rtol=1e-13)
    np.testing.assert_allclose(ref.softmax(x + 1000.0), ref.softmax(x), rtol=1e-12)


def quiet():
    """Overflow, invalid and divide-by-zero become errors; underflow to the exact limit is intended."""
    return np.errstate(over="raise", invalid="raise", divide="raise", under="ignore")


def test_reference_is_stable_without_warnings():
    x = np.array([-1e4, -1e3, 0.0, 1e3, 1e4, -np.inf, np.inf])
    with quiet(), warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(ref.sigmoid(x), [0, 0, 0.5, 1, 1, 0, 1])
        logits = np.array([[1e4, -1e4, 0.0], [-np.inf, 3.0, -np.inf]])
        np.testing.assert_array_equal(ref.softmax(logits), [[1, 0, 0], [0, 1, 0]])
        np.testing.assert_array_equal(ref.log_softmax(logits), [[0, -2e4, -1e4], [-np.inf, 0, -np.inf]])


def test_sign_and_heaviside_reference_values():
    x = np.array([-2.0, -0.0, 0.0, 3.0, np.nan])
    np.testing.assert_array_equal(ref.sign(x), [-1, 0, 0, 1, np.nan])
    np.testing.assert_array_equal(ref.heaviside(x), [0, 1, 1, 1, np.nan])
    np.testing.assert_array_equal(ref.heaviside(x, 0.5), [0, 0.5, 0.5, 1, np.nan])
    assert ref.heaviside(x.astype(np.float32)).dtype == np.float32
