"""Shared test helpers: devices, tolerances, finite differences.

Tolerance policy (float32 kernels against the float64 reference):
  an output that sums K products carries a rounding error of about eps32 * sqrt(K) times the size
  of the terms; `reduction_tol(K)` returns 8 * eps32 * sqrt(K) (floored at 4 * eps32), and
  `assert_close` accepts max|actual - expected| <= tol * max(1, max|expected|).
Elementwise ops use reduction_tol(1). Tests state any other tolerance next to the op, with why.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import pytest

import fastlayers as fl

EPS32 = float(np.finfo(np.float32).eps)



@contextlib.contextmanager
def num_threads(n: int):
    """fl.set_num_threads(n) inside the block, the previous count restored after."""
    old = fl.get_num_threads()
    fl.set_num_threads(n)
    try:
        yield
    finally:
        fl.set_num_threads(old)


def env_modes(monkeypatch, name: str, modes=("0", "1", None)):
    """For the development switches read per call (FASTLAYERS_CONV_*): yields each mode after setting
    the variable to it (None: unset), so a test can run the same calls forced off, forced on and
    under the default rule."""
    for mode in modes:
        if mode is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, mode)
        yield mode


CUDA_SKIP_REASON = "no usable CUDA GPU (or CuPy) on this machine: the CUDA kernels are not exercised"

BACKENDS = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not fl.cuda.is_available(), reason=CUDA_SKIP_REASON)),
]


class Device:
    """Moves NumPy test data to the backend under test and results back."""

    def __init__(self, name: str):
        self.name = name
        if name == "cuda":
            import cupy

            self.xp = cupy
        else:
            self.xp = np

    def put(self, a):
        if a is None or self.name == "cpu":
            return a
        return self.xp.asarray(a)

    def put_text(self, a):
        """A string array for dtype checks. CuPy holds no strings, so on the GPU the same check gets a
        bool array of that shape: another dtype the ops must refuse by name."""
        a = np.asarray(a)
        return a if self.name == "cpu" else self.xp.asarray(np.ones(a.shape, dtype=bool))

    @staticmethod
    def get(a):
        if a is None or isinstance(a, (np.ndarray, np.generic, float, int)):
            return a
        return a.get()

    def __repr__(self):
        return self.name


def reduction_tol(k: int, safety: float = 8.0) -> float:
    return max(4 * EPS32, safety * EPS32 * math.sqrt(max(k, 1)))


def assert_nonfinite_in_place(actual, expected, tol: float, what: str = "", inf: bool = True):
    """NaN (and, with inf, inf) exactly where `expected` has it, and the finite entries within tol
    (assert_close): for kernels whose non-finite inputs must reach only the outputs that read them."""
    actual = np.asarray(Device.get(actual))
    expected = np.asarray(expected)
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected), f"{what}: NaN pattern")
    if inf:
        np.testing.assert_array_equal(np.isinf(actual), np.isinf(expected), f"{what}: inf pattern")
    finite = np.isfinite(expected)
    assert_close(actual[finite], expected[finite], tol, what)


def assert_close(actual, expected, tol: float, what: str = ""):
    actual = np.asarray(Device.get(actual), dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != expected {expected.shape}"
    if expected.size == 0:
        return
    nan_a, nan_e = np.isnan(actual), np.isnan(expected)
    assert np.array_equal(nan_a, nan_e), f"{what}: NaN pattern differs"
    diff = np.abs(np.where(nan_e, 0, actual - expected))
    scale = max(1.0, float(np.max(np.abs(np.where(nan_e, 0, expected)))))
    worst = float(diff.max())
    assert worst <= tol * scale, (
        f"{what}: max abs error {worst:.3g} > tol {tol:.3g} * scale {scale:.3g} "
        f"at index {np.unravel_index(int(diff.argmax()), diff.shape)}"
    )


def numerical_grad(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar function f at x (float64), one coordinate at a time."""
    x = np.array(x, dtype=np.float64)
    grad = np.empty_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        hi = f(x)
        flat[i] = old - eps
        lo = f(x)
        flat[i] = old
        gflat[i] = (hi - lo) / (2 * eps)
    return grad


def assert_grad_matches(analytic, f, x, what: str, eps: float = 1e-6, rtol: float = 1e-6):
    """Analytic gradient (float64) against central differences of f at x.

    In float64 with eps = 1e-6 the difference quotient is good to about 1e-9 relative, so
    rtol = 1e-6 catches any real mistake. Keep x away from kinks (relu at 0, pooling ties)."""
    numeric = numerical_grad(f, x, eps)
    analytic = np.asarray(analytic, dtype=np.float64)
    assert analytic.shape == numeric.shape, f"{what}: gradient shape {analytic.shape} != {numeric.shape}"
    err = float(np.max(np.abs(analytic - numeric), initial=0.0))
    scale = max(1.0, float(np.max(np.abs(numeric), initial=0.0)))
    assert err <= rtol * scale, f"{what}: max |analytic - numeric| = {err:.3g} (scale {scale:.3g})"
