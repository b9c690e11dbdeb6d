import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastlayers as fl
from fastlayers import reference as ref

from ..helpers import assert_grad_matches

SHAPES = [(0,), (1,), (1, 1), (7,), (3, 5), (2, 3, 4, 5), (40000,)]  # 40000 crosses the OpenMP grain


@pytest.mark.parametrize("shape", SHAPES)
def test_add_matches_reference_exactly(device, rng, shape):
    # one float32 addition per element: bit for bit the same as NumPy's
    a = rng.standard_normal(shape).astype(np.float32)
    b = rng.standard_normal(shape).astype(np.float32)
    ac, bc = a.copy(), b.copy()
    y = device.get(fl.add(device.put(a), device.put(b)))
    assert y.dtype == np.float32 and y.shape == shape
    np.testing.assert_array_equal(y, ref.add(a, b))
    np.testing.assert_array_equal(a, ac)
    np.testing.assert_array_equal(b, bc)


def test_add_nan_inf_and_conversion(device, rng):
    a = np.array([np.nan, np.inf, np.inf, 1.0], dtype=np.float32)
    b = np.array([1.0, 1.0, -np.inf, -1.0], dtype=np.float32)
    np.testing.assert_array_equal(device.get(fl.add(device.put(a), device.put(b))), [np.nan, np.inf, np.nan, 0.0])
    a64 = rng.standard_normal((4, 6))[:, ::2]  # float64, non-contiguous
    b32 = np.ones((4, 3), np.float32)
    y = fl.add(device.put(a64), device.put(b32))
    assert y.dtype == np.float32 and y.flags.c_contiguous
    np.testing.assert_array_equal(device.get(y), a64.astype(np.float32) + b32)


def test_add_backward_gives_two_independent_copies(device, rng):
    g = rng.standard_normal((3, 4)).astype(np.float32)
    gc = g.copy()
    dg = device.put(g)
    ga, gb = fl.add_backward(dg)
    assert ga is not gb and ga is not dg and gb is not dg
    np.testing.assert_array_equal(device.get(ga), g)
    np.testing.assert_array_equal(device.get(gb), g)
    ga += 1  # accumulating into one gradient leaves the other and the input alone
    np.testing.assert_array_equal(device.get(gb), g)
    np.testing.assert_array_equal(g, gc)
    ra, rb = ref.add_backward(g)
    np.testing.assert_array_equal(device.get(gb), rb)


def test_reference_add_backward_matches_finite_differences(rng):
    a, b, g = (rng.standard_normal((2, 3)) for _ in range(3))
    ga, gb = ref.add_backward(g)
    assert_grad_matches(ga, lambda t: np.sum(g * ref.add(t, b)), a, "add wrt a")
    assert_grad_matches(gb, lambda t: np.sum(g * ref.add(a, t)), b, "add wrt b")


@settings(max_examples=40, deadline=None)
@given(shape=st.lists(st.integers(0, 7), min_size=1, max_size=4), seed=st.integers(0, 2**32 - 1))
def test_add_hypothesis(shape, seed):
    rng = np.random.default_rng(seed)
    a = (100 * rng.standard_normal(shape)).astype(np.float32)
    b = rng.standard_normal(shape).astype(np.float32)
    np.testing.assert_array_equal(fl.add(a, b), a + b)


def test_add_bad_input(device):
    ones = device.put(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"b must have a shape that broadcasts with a's \(2, 3\), got \(3, 2\)"):
        fl.add(ones, device.put(np.ones((3, 2), np.float32)))
    with pytest.raises(ValueError, match="b must have a shape that broadcasts"):
        fl.mul(ones, device.put(np.ones((1, 2), np.float32)))
    with pytest.raises(TypeError, match="a"):
        fl.add(device.put(np.array([1 + 1j, 2j, 3j])), ones)
    with pytest.raises(TypeError, match="b"):
        fl.add(ones, device.put(np.ones((2, 3), dtype=bool)))
    with pytest.raises(TypeError, match="grad_out"):
        fl.add_backward(device.put_text(np.array(["x"])))


def test_add_mixed_numpy_cupy_is_a_type_error():
    cupy = pytest.importorskip("cupy", reason="CuPy not installed: cannot make a GPU array")
    if not fl.cuda.is_available():
        pytest.skip("no usable CUDA GPU")
    with pytest.raises(TypeError, match="devices"):
        fl.add(np.ones(3, np.float32), cupy.ones(3, cupy.float32))
