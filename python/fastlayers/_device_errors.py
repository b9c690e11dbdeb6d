"""Bad labels found on the GPU, reported without a host synchronisation per call.

On NumPy arrays the loss ops check their labels eagerly (cheap on the CPU) and raise at once. On
CuPy arrays that check would copy the labels' range to the host in every call, stalling the
training step; instead the CUDA loss kernels check each label as they read it. A bad label (a
class index outside [0, C) that is not ignore_index, or a logistic/hinge label that is not +-1)
makes that sample's loss and gradient NaN, so the loss value shows it, and is recorded in a small
per-device status word in GPU memory (csrc/common/loss_terms.h: [code, value, C, -]; the first bad
label wins). `check()` — `fastlayers.cuda.check_errors()` — reads that word (one device
synchronisation) and raises a ValueError naming the op and the label, then clears it. Model.fit
and evaluate call it once per epoch / per evaluation; call it yourself after a loop of op calls.
"""

from __future__ import annotations

import struct

_WORDS = 4
_status: dict[int, object] = {}  # device id -> cupy int64 array of _WORDS

_OPS = {1: "cross_entropy", 2: "nll_loss", 3: "logistic_loss", 4: "hinge_loss"}


def status_word():
    """The current device's status array (created zeroed on first use; an async fill, no sync)."""
    import cupy

    dev = cupy.cuda.runtime.getDevice()
    word = _status.get(dev)
    if word is None:
        word = _status[dev] = cupy.zeros(_WORDS, dtype=cupy.int64)
    return word


def describe(words) -> str:
    code, value, classes = int(words[0]), int(words[1]), int(words[2])
    op = _OPS.get(code, f"a loss (code {code})")
    if code in (3, 4):
        label = struct.unpack("<f", struct.pack("<I", value & 0xFFFFFFFF))[0]  # the float's bits
        return (f"fastlayers.{op} (CUDA): labels must be -1 or +1, got a label {label!r} "
                f"(found on the GPU; that element's loss and gradient are NaN)")
    return (f"fastlayers.{op} (CUDA): target must lie in [0, {classes}) or equal ignore_index, got a "
            f"label {value} (found on the GPU; that sample's loss and gradient are NaN)")


def check() -> None:
    """Raise ValueError if a CUDA loss met a bad label since the last check; clears the record.

    One device synchronisation per device that has run a CUDA loss; nothing without CUDA."""
    if not _status:
        return
    import cupy

    for dev, word in list(_status.items()):
        with cupy.cuda.Device(dev):
            cupy.cuda.Device(dev).synchronize()
            words = word.get()
            if words[0]:
                word.fill(0)
                raise ValueError(describe(words))
