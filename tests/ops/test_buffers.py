"""Unusual buffers at the boundary (issue #17): misaligned float32 views are copied to an aligned
buffer before a kernel sees them (no UB), big-endian / read-only / Fortran-order / memmap input
keeps working, and an in-place optimizer update refuses any argument that overlaps an array it
updates (a ValueError naming both) instead of silently mixing old and new values."""

import numpy as np
import pytest

import fastlayers as fl
from fastlayers import reference as ref

from ..helpers import assert_close, reduction_tol


def misaligned(a, dtype=np.float32):
    """A copy of a as a C-contiguous view one byte into a buffer: flags.aligned is False."""
    a = np.asarray(a, dtype)
    raw = bytearray(a.nbytes + 1)
    out = np.frombuffer(raw, dtype, a.size, 1).reshape(a.shape)
    out[...] = a
    assert not out.flags.aligned and out.flags.c_contiguous
    return out


def test_as_float32_copies_misaligned_input():
    from fastlayers._backend import CPU
    from fastlayers._checks import as_float32

    x = misaligned(np.arange(6.0).reshape(2, 3))
    y = as_float32(x, "x", CPU)
    assert y.flags.aligned and y.flags.c_contiguous and np.array_equal(y, x) and y is not x
    ok = np.ones((2, 3), np.float32)
    assert as_float32(ok, "x", CPU) is ok  # the fast path still returns the caller's array


def test_ops_on_misaligned_buffers_match_reference(rng):
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    mx, mw = misaligned(x), misaligned(w)
    assert_close(fl.conv2d(mx, mw, padding=1), ref.conv2d(x.astype(float), w.astype(float), padding=1),
                 reduction_tol(27), "conv2d")
    for a, b in zip(fl.conv2d_backward(misaligned(np.ones((2, 4, 6, 6))), mx, mw),
                    ref.conv2d_backward(np.ones((2, 4, 6, 6)), x.astype(float), w.astype(float))):
        assert_close(a, b, reduction_tol(72), "conv2d_backward")
    a, b = rng.standard_normal((5, 7)).astype(np.float32), rng.standard_normal((7, 3)).astype(np.float32)
    assert_close(fl.gemm(misaligned(a), misaligned(b)), a.astype(float) @ b, reduction_tol(7), "gemm fast path")
    assert_close(fl.linear(misaligned(a), misaligned(b.T)), a.astype(float) @ b, reduction_tol(7), "linear")
    assert_close(fl.relu(misaligned(x)), np.maximum(x, 0), reduction_tol(1), "relu")
    assert_close(fl.softmax(misaligned(a)), ref.softmax(a.astype(float)), reduction_tol(7), "softmax")
    assert_close(fl.max_pool2d(misaligned(x), 2), ref.max_pool2d(x, 2), reduction_tol(1), "max_pool2d")
    labels = misaligned(np.array([0, 2, 1, 0, 2]), np.int64)
    assert_close(fl.softmax_cross_entropy(misaligned(a[:, :3]), labels),
                 ref.softmax_cross_entropy(a[:, :3].astype(float), np.array([0, 2, 1, 0, 2])), reduction_tol(3), "ce")
    assert_close(fl.dropout(misaligned(x), 0.5, seed=3), fl.dropout(x, 0.5, seed=3), 0.0, "dropout")


def test_misaligned_inplace_update_is_written_back():
    p, g = misaligned(np.ones(10)), np.full(10, 2.0, np.float32)
    fl.sgd_update(p, g, lr=0.25)
    assert np.array_equal(p, np.full(10, 0.5, np.float32))
    p, m, v = misaligned(np.ones(10)), misaligned(np.zeros(10)), misaligned(np.zeros(10))
    p2, m2, v2 = np.ones(10, np.float32), np.zeros(10, np.float32), np.zeros(10, np.float32)
    fl.adam_update(p, g, m, v, step=1, lr=0.1)
    fl.adam_update(p2, g, m2, v2, step=1, lr=0.1)
    for a, b in ((p, p2), (m, m2), (v, v2)):
        assert np.array_equal(a, b)


def test_big_endian_read_only_fortran_memmap_still_work(tmp_path, rng):
    x = rng.standard_normal((2, 3, 6, 5))
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    expect = ref.conv2d(x, w.astype(float))
    ro = x.astype(np.float32)
    ro.flags.writeable = False
    mm = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float32, shape=x.shape)
    mm[...] = x
    for variant in (x.astype(">f4"), ro, np.asfortranarray(x.astype(np.float32)), mm, x[:, :, ::-1][:, :, ::-1]):
        assert_close(fl.conv2d(variant, w), expect, reduction_tol(27), type(variant).__name__)
    assert_close(fl.gemm(x[0, 0].astype(">f4"), x[0, 0].T.astype(">f4")), x[0, 0] @ x[0, 0].T, reduction_tol(5), "be")


# ---- aliasing in the in-place updates ------------------------------------------------------------

def test_sgd_update_grad_overlapping_param_is_refused():
    # The reproducer: this was wrong by 3.06.
    buf = np.arange(21, dtype=np.float32)
    before = buf.copy()
    with pytest.raises(ValueError, match=r"param and grad overlap; param is updated in place and must not share"):
        fl.sgd_update(buf[1:21], buf[0:20], lr=0.5)
    assert np.array_equal(buf, before)  # nothing was touched


@pytest.mark.parametrize("names", [("param", "grad"), ("param", "velocity"), ("velocity", "grad")])
def test_sgd_update_every_overlapping_pair_is_refused(names):
    buf = np.zeros(40, np.float32)
    arrays = dict(param=np.ones(10, np.float32), grad=np.ones(10, np.float32), velocity=np.zeros(10, np.float32))
    arrays[names[0]], arrays[names[1]] = buf[0:10], buf[5:15]
    with pytest.raises(ValueError, match=rf"{names[0]} and {names[1]} .*must not share memory"):
        fl.sgd_update(arrays["param"], arrays["grad"], arrays["velocity"], lr=0.1, momentum=0.9)


@pytest.mark.parametrize("pair", [(a, b) for i, a in enumerate(["param", "m", "v", "grad"])
                                  for b in ["param", "m", "v", "grad"][i + 1:]])
def test_adam_update_every_overlapping_pair_is_refused(pair):
    buf = np.zeros(40, np.float32)
    arrays = {n: np.full(10, 0.5, np.float32) for n in ("param", "m", "v", "grad")}
    arrays[pair[0]], arrays[pair[1]] = buf[0:10], buf[9:19]
    with pytest.raises(ValueError, match=rf"{pair[0]} and {pair[1]} .*must not share memory"):
        fl.adam_update(arrays["param"], arrays["grad"], arrays["m"], arrays["v"], step=1)


def test_adjacent_and_interleaved_but_disjoint_arrays_are_accepted():
    buf = np.zeros(40, np.float32)
    param, grad = buf[0:10], buf[10:20]
    grad[:] = 1
    fl.sgd_update(param, grad, lr=0.5)
    assert np.array_equal(param, np.full(10, -0.5, np.float32)) and np.array_equal(grad, np.ones(10))
    inter = np.zeros((10, 2), np.float32)  # grad = column 1 of a block whose column 0 is... not param
    p = np.ones(10, np.float32)
    inter[:, 1] = 2
    fl.sgd_update(p, inter[:, 1], lr=0.5)
    assert np.array_equal(p, np.zeros(10, np.float32))
