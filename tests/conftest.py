import numpy as np
import pytest

from .helpers import BACKENDS, Device


@pytest.fixture(params=BACKENDS)
def device(request) -> Device:
    """The backend under test: 'cpu' always, 'cuda' when a GPU is usable (skipped with a reason otherwise)."""
    return Device(request.param)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


ISAS = ["generic", "avx2", "avx512"]
_ISA_RANK = {name: i for i, name in enumerate(ISAS)}


@pytest.fixture(params=ISAS)
def isa(request):
    """Caps the CPU kernels at one ISA (micro-kernels and packing paths), restored afterwards;
    skipped with a reason where this CPU lacks it."""
    from fastlayers import _cpu

    if _ISA_RANK[request.param] > _ISA_RANK[_cpu.detected_isa()]:
        pytest.skip(f"this CPU has no {request.param} (detected {_cpu.detected_isa()})")
    _cpu.set_max_isa(request.param)
    yield request.param
    _cpu.set_max_isa("avx512")
