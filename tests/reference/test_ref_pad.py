"""The pad reference: backward against finite differences (float64), forward and backward against
PyTorch on random cases (every mode, negative pads, the limits), and the op's argument checks
against PyTorch's: where PyTorch refuses a pad, fastlayers.pad refuses it too."""

import numpy as np
import pytest

from fastlayers import reference as ref
from fastlayers.ops.pad import plan  # the op's argument checks

from ..helpers import assert_close, assert_grad_matches

MODES = ["constant", "reflect", "replicate", "circular"]

# (shape, pad, mode): every mode at its limits and with negative pads.
CASES = [
    ((2, 3), (1, 2), "constant"),
    ((2, 3, 4), (1, -1, 0, 2, -1, 1), "constant"),
    ((3, 4), (-2, -2, 1, 0), "constant"),
    ((1, 2, 5), (4, 4), "reflect"),           # reflect at its maximum pad (size - 1)
    ((2, 3, 4), (-1, 3, 2, -2), "reflect"),
    ((1, 2, 3, 4, 5), (1, 2, 2, 1, 0, 2), "reflect"),
    ((2, 1, 3), (5, 1), "replicate"),          # replicate beyond the size
    ((2, 3, 4), (-2, 3, 1, 1), "replicate"),
    ((1, 2, 4), (4, 4), "circular"),           # circular wraps a whole period
    ((1, 3, 5), (-1, 2, 1, -1), "circular"),   # PyTorch: crop, then wrap the cropped block
    ((2, 2, 3, 4), (2, -1, 0, 3), "circular"),
]


@pytest.mark.parametrize("shape,pad,mode", CASES)
def test_pad_backward_finite_differences(rng, shape, pad, mode):
    plan(shape, pad, mode)  # a case PyTorch accepts
    x = rng.standard_normal(shape)
    g = rng.standard_normal(ref.pad(x, pad, mode).shape)
    assert_grad_matches(ref.pad_backward(g, x, pad, mode), lambda t: np.sum(g * ref.pad(t, pad, mode)), x,
                        f"pad {mode} {pad}")


def _random_case(rng):
    mode = MODES[rng.integers(4)]
    if mode == "constant":
        ndim = int(rng.integers(1, 6))
        k = int(rng.integers(0, ndim + 1))
    else:
        k = int(rng.integers(1, 4))
        ndim = k + int(rng.integers(1, 3))
    shape = tuple(int(v) for v in rng.integers(1, 6, ndim))
    if rng.random() < 0.1:
        shape = (0,) + shape[1:]
    pad = []
    for i in range(k):
        n = shape[ndim - 1 - i]
        pad += [int(v) for v in rng.integers(-n - 1, n + 2, 2)]
    return shape, tuple(pad), mode


def _torch_result(torch, x, pad, mode):
    try:
        return torch.nn.functional.pad(torch.from_numpy(x), pad, mode=mode).numpy(), None
    except (RuntimeError, NotImplementedError, ValueError) as exc:
        return None, exc


def test_pad_forward_backward_and_refusals_match_torch(rng):
    torch = pytest.importorskip("torch")
    agreed = {"same": 0, "both refuse": 0}
    for _ in range(600):
        shape, pad, mode = _random_case(rng)
        x = rng.standard_normal(shape)
        want, torch_err = _torch_result(torch, x, pad, mode)
        try:
            plan(shape, pad, mode)
            ours_err = None
        except ValueError as exc:
            ours_err = exc
        if torch_err is not None:
            assert ours_err is not None, f"PyTorch refuses pad{shape, pad, mode!r} ({torch_err}) but we accept it"
            agreed["both refuse"] += 1
            continue
        if ours_err is not None:
            # PyTorch only "accepts" a wrap larger than the cropped block by reading uninitialised memory.
            assert mode == "circular" and "wrap around" in str(ours_err), (
                f"PyTorch accepts pad{shape, pad, mode!r} but we refuse it: {ours_err}")
            continue
        got = ref.pad(x, pad, mode)
        assert got.shape == want.shape, (shape, pad, mode)
        np.testing.assert_array_equal(got, want, err_msg=str((shape, pad, mode)))
        if want.size:
            t = torch.from_numpy(x).requires_grad_()
            g = rng.standard_normal(want.shape)
            torch.nn.functional.pad(t, pad, mode=mode).backward(torch.from_numpy(g))
            assert_close(ref.pad_backward(g, x, pad, mode), t.grad.numpy(), 1e-12, f"pad_backward {shape, pad, mode}")
        agreed["same"] += 1
    assert agreed["same"] > 200 and agreed["both refuse"] > 50, agreed
