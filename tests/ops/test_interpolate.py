"""interpolate / interpolate_backward kernels against the NumPy reference, every backend: nearest
(with PyTorch's 2-D equal/double-size shortcuts and the 1-D kernel without them), linear and bilinear
with align_corners both ways, scale factors below and above 1, odd sizes, 1-pixel outputs, the 2x
fast paths, shapes past the OpenMP grain; argument errors that name the argument.

Tolerances: nearest copies (forward exact; backward sums the outputs that read a cell:
reduction_tol of their count). Linear: 4 products per output (reduction_tol(4)); backward sums up to
4 * (out/in) per axis weighted terms (reduction_tol of that count)."""

import numpy as np
import pytest

import fastlayers as fl
from fastlayers import reference as ref
from fastlayers.ops.interpolate import plan

from ..helpers import assert_close, reduction_tol
from ..reference.test_ref_interpolate import CASES, random_case

MORE = [
    ((2, 3, 28, 28), dict(scale_factor=2)),                                    # nearest 2x both axes
    ((2, 3, 28, 28), dict(size=(56, 40))),                                     # 2x rows, other columns
    ((2, 3, 28, 28), dict(scale_factor=2, mode="bilinear")),                   # U-Net upsampling
    ((2, 3, 28, 28), dict(scale_factor=2, mode="bilinear", align_corners=True)),
    ((4, 16, 33, 31), dict(scale_factor=(0.5, 0.37), mode="bilinear")),        # downsampling, OpenMP grain
    ((4, 16, 33, 31), dict(scale_factor=(1.6, 2.2))),
    ((1, 1, 1, 1), dict(size=(5, 3), mode="bilinear")),                        # one input pixel
    ((1, 1, 1, 1), dict(size=(4, 4))),
    ((1, 2, 9, 1), dict(size=(1, 6), mode="bilinear", align_corners=True)),    # one output row
    ((1, 2, 5, 5), dict(scale_factor=1.2)),                                    # out == in with factor != 1
    ((1, 2, 5, 5), dict(scale_factor=2.1)),                                    # out == 2*in with factor != 2
    ((1, 2, 5), dict(scale_factor=2.1)),                                       # ... 1-D: no shortcut
    ((1, 2, 5), dict(scale_factor=1.2)),
    ((3, 4, 200), dict(scale_factor=0.31, mode="linear")),
    ((3, 4, 200), dict(scale_factor=3, mode="linear", align_corners=True)),
    ((0, 2, 5, 5), dict(scale_factor=2)),                                      # empty batch
    ((1, 2, 9, 10), dict(scale_factor=3, mode="bilinear")),                    # periodic interior, f = 3
    ((1, 2, 8, 9), dict(size=(40, 45), mode="bilinear")),                      # f = 5 (generic period)
    ((1, 2, 8, 9), dict(size=(32, 36))),                                       # nearest f = 4
    ((2, 2, 12, 10), dict(scale_factor=2, mode="bilinear", align_corners=True)),  # no periodic interior
    ((1, 2, 100, 100), dict(scale_factor=2, mode="bilinear")),                 # few planes: row-gather backward
    ((1, 2, 100, 100), dict(scale_factor=0.5, mode="bilinear")),
]


def _tols(shape, out_shape, mode):
    ratio = max(1.0, float(np.prod(out_shape[2:])) / float(np.prod(shape[2:])))
    fwd = 0.0 if mode == "nearest" else reduction_tol(4)
    return fwd, reduction_tol(int(4 * ratio) + 4)


def _check(device, rng, shape, kw):
    x = rng.standard_normal(shape).astype(np.float32)
    want = ref.interpolate(x.astype(np.float64), **kw)
    y = fl.interpolate(device.put(x), **kw)
    t_fwd, t_bwd = _tols(shape, want.shape, kw.get("mode", "nearest"))
    assert_close(y, want, t_fwd, f"interpolate {shape} {kw}")
    g = rng.standard_normal(want.shape).astype(np.float32)
    gx = fl.interpolate_backward(device.put(g), device.put(x), **kw)
    assert_close(gx, ref.interpolate_backward(g.astype(np.float64), x, **kw), t_bwd, f"backward {shape} {kw}")


@pytest.mark.parametrize("shape,kw", CASES + MORE)
def test_interpolate_matches_reference(device, rng, shape, kw):
    _check(device, rng, shape, kw)


def test_interpolate_random_cases_match_reference(device, rng):
    done = 0
    for _ in range(300):
        shape, kw = random_case(rng)
        try:
            plan(shape, **kw)
        except (ValueError, TypeError):
            continue
        _check(device, rng, shape, kw)
        done += 1
    assert done > 100


@pytest.mark.parametrize("kw,exc,match", [
    (dict(scale_factor=2, mode="bicubic"), ValueError, "mode must be"),
    (dict(scale_factor=2, mode="nearest", align_corners=False), ValueError, "align_corners option can only be set"),
    (dict(scale_factor=2, mode="bilinear", align_corners=1), TypeError, "align_corners must be None or a bool"),
    (dict(scale_factor=2, size=3), ValueError, "only one of size or scale_factor"),
    (dict(), ValueError, "either size or scale_factor"),
    (dict(size=(0, 3)), ValueError, "output sizes must be greater than 0"),
    (dict(size=(-1, 3)), ValueError, "output sizes must be greater than 0"),
    (dict(scale_factor=0.1), ValueError, "output sizes must be greater than 0"),
    (dict(size=2**64), ValueError, r"size=18446744073709551616 gives an output .* more than the .* \(2\*\*48\) elements"),
    (dict(size=(2**62, 1)), ValueError, r"\(2\*\*48\) elements"),
    (dict(scale_factor=1e30), ValueError, r"scale_factor=1e\+30 gives an output .* \(2\*\*48\) elements"),
    (dict(scale_factor=-2.0), ValueError, "output sizes must be greater than 0"),
    (dict(size=(3,)), ValueError, "size must have one entry per spatial dimension"),
    (dict(scale_factor=(2, 2, 2)), ValueError, "scale_factor must have one entry per spatial dimension"),
    (dict(size=3.0), TypeError, "size must be an int"),
    (dict(scale_factor="2"), TypeError, "scale_factor must be a number"),
    (dict(scale_factor=float("inf")), ValueError, "scale_factor must be finite"),
    (dict(size=4, recompute_scale_factor=True), ValueError, "recompute_scale_factor is not meaningful"),
    (dict(scale_factor=2, antialias=True, mode="bilinear"), ValueError, "antialias"),
    (dict(scale_factor=2, mode="linear"), ValueError, "mode='linear' needs 3-D"),
])
def test_interpolate_bad_arguments(kw, exc, match):
    with pytest.raises(exc, match=match):
        fl.interpolate(np.zeros((1, 2, 3, 5), np.float32), **kw)


def test_interpolate_bad_input_shapes():
    with pytest.raises(ValueError, match="mode='bilinear' needs 4-D"):
        fl.interpolate(np.zeros((1, 2, 3), np.float32), scale_factor=2, mode="bilinear")
    with pytest.raises(ValueError, match="x must be 3-D .* or 4-D"):
        fl.interpolate(np.zeros((2, 3), np.float32), scale_factor=2)
    with pytest.raises(ValueError, match="non-empty channel and spatial"):
        fl.interpolate(np.zeros((1, 0, 3, 5), np.float32), scale_factor=2)
    with pytest.raises(ValueError, match=r"grad_out must have shape \(1, 2, 6, 10\)"):
        fl.interpolate_backward(np.zeros((1, 2, 6, 9), np.float32), np.zeros((1, 2, 3, 5), np.float32), scale_factor=2)


def test_interpolate_keeps_its_input(device):
    x = np.arange(30, dtype=np.float32).reshape(1, 2, 3, 5)
    before = x.copy()
    fl.interpolate(device.put(x), scale_factor=2, mode="bilinear")
    fl.interpolate_backward(device.put(np.ones((1, 2, 6, 10), np.float32)), device.put(x), scale_factor=2)
    np.testing.assert_array_equal(x, before)
