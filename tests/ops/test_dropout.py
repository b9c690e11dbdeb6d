import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastlayers as fl
from fastlayers import _cpu
from fastlayers import reference as ref

from .. import helpers
from ..reference.test_ref_dropout import KAT

SHAPES = [(0,), (1,), (3,), (4,), (5,), (3, 7), (2, 3, 5, 7), (40001,)]  # 40001 crosses the grain, odd tail
SEEDS = [0, 1, 12345, 2**32 + 5, 2**64 - 1]  # seeds >= 2^32 use the key's high word


@pytest.mark.parametrize("counter,key,expected", KAT)
def test_cpu_philox_known_answers(counter, key, expected):
    assert tuple(_cpu.philox4x32_10(list(counter), list(key))) == expected


def test_cpu_philox_equals_reference_philox(rng):
    from importlib import import_module
    philox = import_module("fastlayers.reference.dropout").philox4x32_10
    for _ in range(50):
        c = [int(v) for v in rng.integers(0, 2**32, size=4)]
        k = [int(v) for v in rng.integers(0, 2**32, size=2)]
        assert list(_cpu.philox4x32_10(c, k)) == [int(w) for w in philox(c, k)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("seed", SEEDS)
def test_mask_and_output_equal_reference_bit_for_bit(device, rng, shape, seed):
    p = 0.37
    x = rng.standard_normal(shape).astype(np.float32)
    xc = x.copy()
    mask = ref.dropout_mask(shape, p, seed=seed)
    np.testing.assert_array_equal(fl.dropout_mask(shape, p, seed=seed), mask)
    y = device.get(fl.dropout(device.put(x), p, seed=seed))
    assert y.dtype == np.float32 and y.shape == shape
    np.testing.assert_array_equal(y, ref.dropout(x, p, seed=seed))
    np.testing.assert_array_equal(y != 0, (mask != 0) & (x != 0))
    np.testing.assert_array_equal(x, xc)


@pytest.mark.parametrize("p", [0.0, 1e-7, 0.1, 0.5, 0.9, 1 - 2**-24, 1 - 1e-12])
def test_mask_edge_probabilities(p):
    m = fl.dropout_mask((5000,), p, seed=8)
    np.testing.assert_array_equal(m, ref.dropout_mask((5000,), p, seed=8))
    if p == 0.0:
        assert m.all()
    if p > 1 - 2**-24 + 1e-15:  # u <= 1 - 2^-24 < p: everything dropped
        assert not m.any()


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_keep_fraction_is_one_minus_p(p):
    # Bernoulli(1 - p) per element: the kept fraction of n elements has standard deviation
    # sqrt(p (1 - p) / n); 6 sigma fails by chance with probability ~2e-9. Checked per lane
    # (i % 4, each a different Philox output word) as well.
    n = 1 << 20
    m = fl.dropout_mask((n,), p, seed=2024)
    assert abs(m.mean() - (1 - p)) <= 6 * np.sqrt(p * (1 - p) / n)
    for lane in range(4):
        assert abs(m[lane::4].mean() - (1 - p)) <= 6 * np.sqrt(p * (1 - p) / (n / 4))


def test_same_seed_same_mask_and_different_seeds_differ():
    n, p = 1 << 16, 0.5
    a = fl.dropout_mask((n,), p, seed=7)
    np.testing.assert_array_equal(a, fl.dropout_mask((n,), p, seed=7))
    for other in [8, 7 + 2**32]:  # low word and high word of the key
        b = fl.dropout_mask((n,), p, seed=other)
        # independent masks disagree on a fraction 2 p (1 - p) = 0.5, sd 0.5 / sqrt(n)
        assert abs((a != b).mean() - 0.5) <= 6 * 0.5 / np.sqrt(n)


def test_mask_depends_only_on_flat_index():
    p = 0.3
    big = fl.dropout_mask((6, 7), p, seed=11)
    np.testing.assert_array_equal(fl.dropout_mask(42, p, seed=11).reshape(6, 7), big)
    np.testing.assert_array_equal(fl.dropout_mask((13,), p, seed=11), big.reshape(-1)[:13])


@pytest.mark.parametrize("shape", [(1,), (3, 7), (40001,)])
def test_backward_uses_the_forward_mask(device, rng, shape):
    p, seed = 0.6, 424242
    x = rng.standard_normal(shape).astype(np.float32)
    g = rng.standard_normal(shape).astype(np.float32)
    gc = g.copy()
    scale = np.float32(1 / (1 - p))
    mask = fl.dropout_mask(shape, p, seed=seed)
    y = device.get(fl.dropout(device.put(x), p, seed=seed))
    gi = device.get(fl.dropout_backward(device.put(g), p, seed=seed))
    np.testing.assert_array_equal(gi, g * (mask * scale))
    np.testing.assert_array_equal(y, x * (mask * scale))
    np.testing.assert_array_equal(gi, ref.dropout_backward(g, p, seed=seed))
    np.testing.assert_array_equal(g, gc)
    helpers.assert_close(y[mask == 1], x[mask == 1] / (1 - np.float64(p)), helpers.reduction_tol(1), "scale")


def test_eval_mode_and_p_zero_return_copies(device, rng):
    x = rng.standard_normal((3, 4)).astype(np.float32)
    dx = device.put(x)
    for y in [fl.dropout(dx, 0.5, seed=1, training=False), fl.dropout(dx, 0.0, seed=1),
              fl.dropout_backward(dx, 0.0, seed=1)]:
        assert y is not dx
        np.testing.assert_array_equal(device.get(y), x)
        y[0, 0] = 99.0
        assert x[0, 0] != 99.0
    x64 = rng.standard_normal((2, 6))[:, ::3]  # float64, non-contiguous
    y = fl.dropout(device.put(x64), 0.5, seed=1, training=False)
    assert y.dtype == np.float32 and y.flags.c_contiguous


def test_nan_and_inf_propagate_like_the_product(device):
    # y = x * mask / (1 - p): a dropped NaN or inf gives NaN (inf * 0), as the product would
    x = np.full(64, np.nan, dtype=np.float32)
    x[32:] = np.inf
    y = device.get(fl.dropout(device.put(x), 0.5, seed=5))
    mask = fl.dropout_mask(64, 0.5, seed=5)
    assert np.isnan(y[:32]).all()
    assert np.isnan(y[32:][mask[32:] == 0]).all() and np.isposinf(y[32:][mask[32:] == 1]).all()
    np.testing.assert_array_equal(y, ref.dropout(x, 0.5, seed=5))


@settings(max_examples=40, deadline=None)
@given(shape=st.lists(st.integers(0, 9), min_size=1, max_size=3),
       p=st.floats(0.0, 0.999), seed=st.integers(0, 2**64 - 1))
def test_dropout_hypothesis_bit_for_bit(shape, p, seed):
    x = np.random.default_rng(seed % 2**32).standard_normal(shape).astype(np.float32)
    np.testing.assert_array_equal(fl.dropout(x, p, seed=seed), ref.dropout(x, p, seed=seed))
    np.testing.assert_array_equal(fl.dropout_mask(tuple(shape), p, seed=seed),
                                  ref.dropout_mask(tuple(shape), p, seed=seed))


def test_dropout_bad_input(device):
    x = device.put(np.ones((2, 3), np.float32))
    for bad_p in [1.0, -0.1, 1.5, float("nan")]:
        for call in [lambda: fl.dropout(x, bad_p, seed=1), lambda: fl.dropout_backward(x, bad_p, seed=1),
                     lambda: fl.dropout_mask((3,), bad_p, seed=1)]:
            with pytest.raises(ValueError, match=r"p must be in \[0, 1\)"):
                call()
    with pytest.raises(TypeError, match="p"):
        fl.dropout(x, "0.5", seed=1)
    for bad_seed in [-1, 2**64]:
        with pytest.raises(ValueError, match="seed"):
            fl.dropout(x, 0.5, seed=bad_seed)
        with pytest.raises(ValueError, match="seed"):
            fl.dropout_mask(3, 0.5, seed=bad_seed)
    for bad_seed in [1.5, True, None, "3"]:
        with pytest.raises(TypeError, match="seed"):
            fl.dropout_backward(x, 0.5, seed=bad_seed)
    with pytest.raises(TypeError, match="seed"):
        fl.dropout(x, 0.5)  # seed is required
    with pytest.raises(TypeError, match="training"):
        fl.dropout(x, 0.5, seed=1, training="yes")
    with pytest.raises(TypeError, match="x"):
        fl.dropout(device.put(np.array([1j])), 0.5, seed=1)
    with pytest.raises(TypeError, match="grad_out"):
        fl.dropout_backward(device.put_text(np.array(["a"])), 0.5, seed=1)
    with pytest.raises(ValueError, match="shape"):
        fl.dropout_mask((2, -1), 0.5, seed=1)
    with pytest.raises(TypeError, match="shape"):
        fl.dropout_mask((2, 1.5), 0.5, seed=1)


def test_numpy_integer_seed_is_accepted():
    np.testing.assert_array_equal(fl.dropout_mask(10, 0.5, seed=np.uint64(2**63 + 1)),
                                  ref.dropout_mask(10, 0.5, seed=2**63 + 1))
