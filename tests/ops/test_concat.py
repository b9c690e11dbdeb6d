"""cat / cat_backward / split: kernels against the reference on every backend (every axis, negative
axes, one array, empty pieces, many pieces (more than one CUDA launch), odd widths, shapes past the
OpenMP grain), against torch.cat / torch.split, and the argument errors. All are copies: exact."""

import numpy as np
import pytest

import fastlayers as fl
from fastlayers import reference as ref

from ..helpers import assert_close

# (shapes, axis)
CASES = [
    ([(2, 3), (2, 4)], 1),
    ([(2, 3), (5, 3), (1, 3)], 0),
    ([(2, 3, 4)], 2),                                   # one array: a copy
    ([(2, 3, 4), (2, 0, 4), (2, 2, 4)], 1),             # an empty piece in the middle
    ([(2, 0, 4), (2, 0, 4)], -2),                       # all empty along the axis
    ([(3, 5, 7), (3, 5, 1)], -1),                       # odd widths
    ([(4, 16, 28, 28), (4, 32, 28, 28)], 1),            # U-Net skip concatenation, past the grain
    ([(64, 1000), (64, 1000)], 0),                      # axis 0: two big contiguous copies
    ([(2, 1, 3)] * 40, 1),                              # 40 pieces: two CUDA launches
    ([(2, 3), (0,), (2, 5)], 1),                        # PyTorch's legacy skip of a (0,) array
]


def _arrays(rng, shapes):
    return [rng.standard_normal(s).astype(np.float32) for s in shapes]


@pytest.mark.parametrize("shapes,axis", CASES)
def test_cat_and_backward_match_reference(device, rng, shapes, axis):
    arrays = _arrays(rng, shapes)
    want = ref.cat(arrays, axis)
    y = fl.cat([device.put(a) for a in arrays], axis)
    assert_close(y, want, 0.0, f"cat {shapes} {axis}")
    kept = [s for s in shapes if s != (0,)]
    sizes = [s[axis] for s in kept]
    g = rng.standard_normal(want.shape).astype(np.float32)
    pieces = fl.cat_backward(device.put(g), sizes, axis)
    assert isinstance(pieces, tuple) and len(pieces) == len(kept)
    for got, exp in zip(pieces, ref.cat_backward(g, sizes, axis)):
        assert_close(got, exp, 0.0, "cat_backward")


@pytest.mark.parametrize("shape,arg,axis", [
    ((5, 3), 2, 0), ((5, 3), [1, 0, 4], 0), ((5, 3), 7, 0), ((4, 6, 5), 4, 1), ((4, 6, 5), (2, 3), -1),
    ((0, 3), 0, 0), ((0, 3), 2, 0), ((3, 40), 1, 1), ((7,), [7], 0),
])
def test_split_matches_reference_and_torch(device, rng, shape, arg, axis):
    x = rng.standard_normal(shape).astype(np.float32)
    got = fl.split(device.put(x), arg, axis)
    want = ref.split(x, arg, axis)
    assert isinstance(got, tuple) and len(got) == len(want)
    for a, b in zip(got, want):
        assert_close(a, b, 0.0, f"split {shape} {arg} {axis}")
    torch = pytest.importorskip("torch")
    t = torch.split(torch.from_numpy(x), list(arg) if isinstance(arg, tuple) else arg, axis)
    assert [tuple(p.shape) for p in t] == [tuple(p.shape) for p in got]
    for a, b in zip(got, t):
        assert_close(a, b.numpy(), 0.0, "split vs torch")


def test_cat_matches_torch_on_random_cases(rng):
    torch = pytest.importorskip("torch")
    for _ in range(100):
        ndim = int(rng.integers(1, 5))
        base = [int(v) for v in rng.integers(0, 5, ndim)]
        axis = int(rng.integers(-ndim, ndim))
        shapes = []
        for _ in range(int(rng.integers(1, 5))):
            s = list(base)
            s[axis] = int(rng.integers(0, 5))
            shapes.append(tuple(s))
        arrays = _arrays(rng, shapes)
        want = torch.cat([torch.from_numpy(a) for a in arrays], axis).numpy()
        assert_close(fl.cat(arrays, axis), want, 0.0, f"cat {shapes} {axis}")


def test_cat_converts_and_keeps_inputs():
    a = np.arange(6.0).reshape(2, 3)       # float64
    b = np.arange(4, dtype=np.int64).reshape(2, 2)
    c = np.asfortranarray(np.ones((2, 3), np.float32))
    y = fl.cat([a, b, c], 1)
    assert y.dtype == np.float32 and y.shape == (2, 8)
    assert_close(y, np.concatenate([a, b, c], 1), 0.0, "mixed inputs")
    assert a.dtype == np.float64 and b.dtype == np.int64


@pytest.mark.parametrize("call,exc,match", [
    (lambda: fl.cat([], 0), ValueError, "non-empty"),
    (lambda: fl.cat(np.zeros((2, 3), np.float32), 0), TypeError, "list or tuple of arrays"),
    (lambda: fl.cat([np.zeros((2, 3)), np.zeros((2, 4))], 0), ValueError, r"sizes must match except along axis 0"),
    (lambda: fl.cat([np.zeros((2, 3)), np.zeros(3)], 0), ValueError, r"arrays\[1\] has 1 dimensions"),
    (lambda: fl.cat([np.zeros((2, 3)), np.zeros((2, 3))], 2), ValueError, r"axis must be in \[-2, 1\]"),
    (lambda: fl.cat([np.zeros((2, 3))], 1.0), TypeError, "axis must be an int"),
    (lambda: fl.cat([np.zeros(()), np.zeros(())], 0), ValueError, r"arrays\[0\] is 0-dimensional"),
    (lambda: fl.cat([np.zeros(2, bool)], 0), TypeError, r"arrays\[0\] must have a real numeric dtype"),
    (lambda: fl.cat_backward(np.zeros((5, 2)), [1, 2], 0), ValueError, "sizes must sum exactly to the axis' size 5"),
    (lambda: fl.cat_backward(np.zeros((5, 2)), [6, -1], 0), ValueError, "sizes must be non-negative"),
    (lambda: fl.cat_backward(np.zeros((5, 2)), [], 0), ValueError, "non-empty list"),
    (lambda: fl.cat_backward(np.zeros((5, 2)), 5, 0), TypeError, "sizes must be a list or tuple"),
    (lambda: fl.split(np.zeros(4), 0), ValueError, "can only be 0 when the axis is empty"),
    (lambda: fl.split(np.zeros(4), -1), ValueError, "split_size_or_sections must be non-negative"),
    (lambda: fl.split(np.zeros(5), [1, 2]), ValueError, "must sum exactly to the axis' size 5"),
    (lambda: fl.split(np.zeros(5), 1.5), TypeError, "split_size_or_sections must be an int"),
    (lambda: fl.split(np.zeros(5), [True, 4]), TypeError, "split_size_or_sections must be an int"),
    (lambda: fl.split(np.zeros(()), 1), ValueError, "at least one dimension"),
    (lambda: fl.split(np.zeros((5, 2)), 1, 2), ValueError, r"axis must be in \[-2, 1\]"),
])
def test_concat_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
