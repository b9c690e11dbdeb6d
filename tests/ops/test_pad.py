"""pad / pad_backward kernels against the NumPy reference, every backend: every mode at its limits,
negative pads, empty results, > 8-D constant pads (the slice-copy fallback), and the argument errors.

Tolerances: the forward copies values (exact). The backward sums, per input cell, the gradients of
the output cells that copy it (up to (pad + 1)^3 of them at a replicate corner): reduction_tol(count)."""

import numpy as np
import pytest

import fastlayers as fl
from fastlayers import reference as ref

from ..helpers import assert_close, reduction_tol
from ..reference.test_ref_pad import CASES, _random_case
from fastlayers.ops.pad import plan

MORE = [
    ((2, 3, 17, 19), (1, 1, 1, 1), "constant"),       # conv padding shapes
    ((4, 16, 40, 40), (2, 3, 1, 2), "reflect"),        # crosses the OpenMP grain
    ((4, 16, 40, 40), (3, 3, 3, 3), "replicate"),
    ((4, 16, 40, 40), (5, 2, 7, 1), "circular"),
    ((64, 4096), (0, 0, 3, -5), "constant"),           # pads only the leading dimension
    ((3, 5), (0, 0), "constant"),                      # nothing to pad: a copy
    ((3, 2, 4), (-4, 0), "circular"),                  # cropped to empty
    ((2, 2, 3), (2, -3), "constant"),                  # cropped to empty, then filled
    ((0, 2, 3), (1, 1), "reflect"),                    # empty batch
    ((1, 1, 1, 1), (0, 0, 0, 0, 0, 0), "replicate"),
    ((1, 1, 1), (3, 3, 3, 3), "replicate"),            # one cell replicated everywhere
    ((2, 3, 1, 2, 1, 2, 1, 2, 1), (1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1), "constant"),  # > 8 dims
]


def _check(device, rng, shape, pad, mode, value=None):
    x = rng.standard_normal(shape).astype(np.float32)
    want = ref.pad(x.astype(np.float64), pad, mode, value)
    y = fl.pad(device.put(x), pad, mode, value)
    assert y.dtype == np.float32
    assert_close(y, want, 0.0, f"pad {shape} {pad} {mode}")
    g = rng.standard_normal(want.shape).astype(np.float32)
    gx = fl.pad_backward(device.put(g), device.put(x), pad, mode, value)
    counts = ref.pad_backward(np.ones(want.shape), x, pad, mode)
    tol = reduction_tol(int(counts.max(initial=1)))
    assert_close(gx, ref.pad_backward(g.astype(np.float64), x, pad, mode), tol, f"pad_backward {shape} {pad} {mode}")


@pytest.mark.parametrize("shape,pad,mode", CASES + MORE)
def test_pad_matches_reference(device, rng, shape, pad, mode):
    _check(device, rng, shape, pad, mode)


def test_pad_random_cases_match_reference(device, rng):
    done = 0
    for _ in range(300):
        shape, pad, mode = _random_case(rng)
        try:
            plan(shape, pad, mode)
        except ValueError:
            continue
        _check(device, rng, shape, pad, mode)
        done += 1
    assert done > 100


@pytest.mark.parametrize("value", [2.5, -1, float("nan")])
def test_pad_constant_value(device, rng, value):
    _check(device, rng, (2, 3, 4), (1, 2, 0, 1), "constant", value)


def test_pad_keeps_inputs_and_zero_d(device):
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    before = x.copy()
    fl.pad(device.put(x), (1, 1), "constant")
    np.testing.assert_array_equal(x, before)
    s = fl.pad(device.put(np.array(3.0, np.float32)), ())
    assert s.shape == () and float(s) == 3.0
    # non-contiguous and float64 input are converted, not rejected
    xt = np.asfortranarray(np.arange(12.0).reshape(3, 4))
    assert_close(fl.pad(device.put(xt), (1, 2), "replicate"), ref.pad(xt, (1, 2), "replicate"), 0.0, "fortran")


@pytest.mark.parametrize("args,exc,match", [
    (((2, 3), (1, 1), "foo"), ValueError, "mode"),
    (((2, 3), (1,), "constant"), ValueError, "pad must have an even length"),
    (((2, 3), 1, "constant"), TypeError, "pad must be a tuple"),
    (((2, 3), (1.5, 1), "constant"), TypeError, "pad must be an int"),
    (((2, 3), (True, 1), "constant"), TypeError, "pad must be an int"),
    (((2, 3), (1, 1, 1, 1, 1, 1), "constant"), ValueError, "pad has 6 entries"),
    (((1, 3), (3, 3), "reflect"), ValueError, "reflect padding must be smaller"),
    (((3,), (1, 1), "reflect"), ValueError, "needs x with 2 or 3 dimensions"),
    (((1, 1, 1, 3), (1, 1), "replicate"), ValueError, "needs x with 2 or 3 dimensions"),
    (((1, 2, 3, 4, 5, 6), (1,) * 8, "circular"), ValueError, "last 1, 2 or 3 dimensions"),
    (((1, 3), (4, 0), "circular"), ValueError, "wrap around more than once"),
    (((1, 3), (-1, 3), "circular"), ValueError, "wrap around more than once"),
    (((1, 3), (-2, -2), "constant"), ValueError, "crop"),
    (((1, 3), (-2, -1), "replicate"), ValueError, "crops every padded dimension"),
    (((1, 0, 3), (1, 1), "reflect"), ValueError, "non-empty"),
])
def test_pad_bad_arguments(args, exc, match):
    shape, pad, mode = args
    with pytest.raises(exc, match=match):
        fl.pad(np.zeros(shape, np.float32), pad, mode)


def test_pad_value_only_for_constant():
    with pytest.raises(ValueError, match="value"):
        fl.pad(np.zeros((1, 3), np.float32), (1, 1), "reflect", 1.0)
    fl.pad(np.zeros((1, 3), np.float32), (1, 1), "reflect", 0.0)  # PyTorch accepts 0
    with pytest.raises(TypeError, match="value"):
        fl.pad(np.zeros((1, 3), np.float32), (1, 1), "constant", "x")


def test_pad_backward_checks_grad_out_shape():
    with pytest.raises(ValueError, match="grad_out must have shape"):
        fl.pad_backward(np.zeros((1, 4), np.float32), np.zeros((1, 3), np.float32), (1, 1), "reflect")
