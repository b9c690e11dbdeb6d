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


@pytest.fixture(params=["avx2", "avx512"])
def simd_isa(request):
    """For kernels written once for both vector ISAs (csrc/cpu/*_kernels.h): caps the CPU kernels
    at AVX2, then AVX-512, restored afterwards; skipped with a reason where this CPU lacks one."""
    from fastlayers import _cpu

    if _ISA_RANK[request.param] > _ISA_RANK[_cpu.detected_isa()]:
        pytest.skip(f"this CPU has no {request.param} (detected {_cpu.detected_isa()})")
    _cpu.set_max_isa(request.param)
    yield request.param
    _cpu.set_max_isa("avx512")
