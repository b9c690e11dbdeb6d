"""The op namespace the layers, losses and optimizers call.

By default it is `fastlayers` itself (NumPy -> CPU kernels, CuPy -> CUDA kernels). `use_ops` points it
at another module with the same names, e.g. `fastlayers.reference`, so that the same layer code can be
run in float64 against finite differences, or against the oracle.
"""

from __future__ import annotations

import contextlib

import fastlayers


class _Ops:
    def __init__(self):
        self.target = fastlayers

    def __getattr__(self, name):
        return getattr(self.target, name)


F = _Ops()


@contextlib.contextmanager
def use_ops(module):
    """Within the block, every layer/loss/optimizer calls module.<op> instead of fastlayers.<op>."""
    old, F.target = F.target, module
    try:
        yield module
    finally:
        F.target = old
