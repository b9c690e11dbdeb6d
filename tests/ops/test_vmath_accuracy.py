"""Accuracy sweep of the CPU vector math (csrc/cpu/vmath.h) through the public ops, on every ISA path.

Errors are measured in float32 ulps of the float64 NumPy result (the spacing of float32 at |ref|,
2**-149 in the denormal range), with results past the float32 range compared as 2**128. Bounds:
  exp      <= 2 ulp  (seen through log_softmax_backward: rows (x, 0) with grad (0, 1) give
                      grad_in[:, 0] = 0 - exp(x) * 1, i.e. -exp(x) with no other rounding)
  sigmoid  <= 3 ulp  (one exp, one add, one divide, one multiply)
  tanh     <= 3 ulp
plus the exact limits the kernels promise: exp(x) = 0 for x <= -104 and -inf, inf for x >= 88.8
and +inf, NaN -> NaN; sigmoid and tanh saturate to exactly 0 / +-1, tanh(x) = x for tiny x and is
exactly odd.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastlayers as fl

try:
    from fastlayers import _cpu
except ImportError:  # pragma: no cover - the CPU module is always built
    _cpu = None

F32_MAX_PLUS = 2.0**128


def _isas():
    order = ["generic", "avx2", "avx512"]
    top = _cpu.detected_isa()
    return order[: order.index(top) + 1]


@pytest.fixture(params=_isas() if _cpu is not None else [])
def isa(request):
    before = _cpu.active_isa()
    _cpu.set_max_isa(request.param)
    yield request.param
    _cpu.set_max_isa(before)


def _grid():
    """Dense grid over the interesting range, tiny magnitudes, huge ones and the special values."""
    rng = np.random.default_rng(7)
    dense = np.linspace(-110.0, 110.0, 400_001)
    near0 = np.linspace(-1.0, 1.0, 100_001)
    tiny = np.logspace(-45, -1, 2_000)
    huge = np.array([1e4, 3e4, 1e10, 3e38])
    # every float32 exponent, random mantissas
    bits = rng.integers(0, 0x7F800000, 200_000, dtype=np.int64).astype(np.uint32)
    rand = bits.view(np.float32).astype(np.float64)
    # around the exp limits and where denormal results start
    edges = np.concatenate([np.linspace(c - 0.05, c + 0.05, 2_001) for c in (-103.97, -87.34, 88.72)])
    mag = np.concatenate([dense, near0, tiny, huge, rand, edges])
    x = np.concatenate([mag, -mag, [0.0, -0.0, np.inf, -np.inf, np.nan]]).astype(np.float32)
    return x


X = _grid()


def ulp_error(got, ref):
    """|got - ref| in float32 ulps of ref; NaN must match NaN (returns 0 there, else inf)."""
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    nan_g, nan_r = np.isnan(got), np.isnan(ref)
    err = np.zeros_like(ref)
    err[nan_g != nan_r] = np.inf
    ok = ~(nan_g | nan_r)
    g = np.clip(got[ok], -F32_MAX_PLUS, F32_MAX_PLUS)
    r = np.clip(ref[ok], -F32_MAX_PLUS, F32_MAX_PLUS)
    a = np.minimum(np.abs(r), float(np.finfo(np.float32).max))
    with np.errstate(divide="ignore"):
        e = np.floor(np.log2(np.where(a > 0, a, 1.0)))
    e = np.where(a > 0, np.maximum(e, -126), -126)
    err[ok] = np.abs(g - r) / np.exp2(e - 23)
    return err


def _worst(err, x, what, bound):
    i = int(np.argmax(err))
    assert err[i] <= bound, f"{what}: {err[i]:.3g} ulp > {bound} at x={x[i]!r}"


def fast_exp_via_public_op(x, axis_last=True):
    n = x.size
    y = np.stack([x, np.zeros(n, np.float32)], axis=1)
    g = np.stack([np.zeros(n, np.float32), np.ones(n, np.float32)], axis=1)
    if axis_last:   # contiguous rows: the per-ISA loop
        gx = fl.log_softmax_backward(g, y, axis=-1)
        return -np.asarray(gx)[:, 0]
    # strided path (softmax axis not last): the inline exp in the lane loop
    gx = fl.log_softmax_backward(np.ascontiguousarray(g.T), np.ascontiguousarray(y.T), axis=0)
    return -np.asarray(gx)[0]


@pytest.mark.parametrize("axis_last", [True, False])
def test_exp_accuracy_and_limits(isa, axis_last):
    got = fast_exp_via_public_op(X, axis_last)
    x = X.astype(np.float64)
    with np.errstate(over="ignore"):
        ref = np.exp(x)
    _worst(ulp_error(got, ref), X, f"exp [{isa}]", 2.0)
    assert np.all(got[(x <= -104.0)] == 0)             # includes -inf and -1e4
    assert np.all(np.isposinf(got[x >= 88.8]))          # includes +inf and 1e4
    assert np.all(np.isnan(got[np.isnan(x)]))
    assert np.all(got[x == 0] == 1.0)
    # denormal results are produced (not flushed) and stay within the bound above
    den = (x > -103.0) & (x < -88.0)
    assert np.all((got[den] > 0) & (got[den] < np.finfo(np.float32).tiny))


def _sigmoid64(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def test_sigmoid_accuracy_and_limits(isa):
    got = np.asarray(fl.sigmoid(X))
    x = X.astype(np.float64)
    _worst(ulp_error(got, _sigmoid64(x)), X, f"sigmoid [{isa}]", 3.0)
    assert np.all((got[~np.isnan(x)] >= 0) & (got[~np.isnan(x)] <= 1))
    assert np.all(got[x >= 17.0] == 1.0) and np.all(got[x <= -104.0] == 0.0)
    assert np.all(got[x == 0] == 0.5)
    assert np.all(np.isnan(got[np.isnan(x)]))


def test_tanh_accuracy_and_limits(isa):
    got = np.asarray(fl.tanh(X))
    x = X.astype(np.float64)
    _worst(ulp_error(got, np.tanh(x)), X, f"tanh [{isa}]", 3.0)
    assert np.all(np.abs(got[~np.isnan(x)]) <= 1)
    assert np.all(got[x >= 9.1] == 1.0) and np.all(got[x <= -9.1] == -1.0)
    tiny = np.abs(x) < 1e-4
    np.testing.assert_array_equal(got[tiny], X[tiny])   # tanh(x) = x (sign of -0 included)
    assert np.signbit(np.asarray(fl.tanh(np.array([-0.0], np.float32)))[0])
    assert np.all(np.isnan(got[np.isnan(x)]))
    # exactly odd
    np.testing.assert_array_equal(np.asarray(fl.tanh(-X)), -got)


def test_large_input_crosses_threads_same_as_small(isa):
    """The threaded split (above the grain) gives the same bits as element-by-element chunks."""
    rng = np.random.default_rng(3)
    x = (rng.standard_normal(100_003) * 8).astype(np.float32)
    for op in (fl.sigmoid, fl.tanh):
        whole = np.asarray(op(x))
        parts = np.concatenate([np.asarray(op(x[i:i + 1000])) for i in range(0, x.size, 1000)])
        np.testing.assert_array_equal(whole, parts)


@settings(max_examples=40, deadline=None)
@given(xs=hnp.arrays(np.float32, st.integers(1, 300),
                     elements=st.floats(width=32, allow_nan=True, allow_infinity=True)),
       isa_name=st.sampled_from(_isas() if _cpu is not None else ["generic"]))
def test_hypothesis_any_float32(xs, isa_name):
    """Arbitrary float32 inputs (any length, so every vector tail) on a random ISA path."""
    before = _cpu.active_isa()
    _cpu.set_max_isa(isa_name)
    try:
        x = xs.astype(np.float64)
        _worst(ulp_error(np.asarray(fl.sigmoid(xs)), _sigmoid64(x)), xs, "sigmoid", 3.0)
        _worst(ulp_error(np.asarray(fl.tanh(xs)), np.tanh(x)), xs, "tanh", 3.0)
        with np.errstate(over="ignore"):
            _worst(ulp_error(fast_exp_via_public_op(xs), np.exp(x)), xs, "exp", 2.0)
    finally:
        _cpu.set_max_isa(before)
