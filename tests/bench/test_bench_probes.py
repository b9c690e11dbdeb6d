"""The machine-limit probes return positive figures and reject bad arguments (never asserts on speed)."""

import math

import pytest

from fastlayers import _cpu
from fastlayers.bench import probes


def _supported_isas():
    order = ["generic", "avx2", "avx512"]
    return order[: order.index(_cpu.detected_isa()) + 1]


@pytest.mark.parametrize("isa", ["", *_supported_isas()])
@pytest.mark.parametrize("threads", [1, 2])
def test_peak_gflops_positive(isa, threads):
    value = probes.cpu_peak_gflops(threads, isa=isa, iters=1 << 12, reps=2)
    assert value > 0 and math.isfinite(value)


@pytest.mark.parametrize("threads", [1, 2])
def test_triad_positive(threads):
    value = probes.cpu_triad_gbps(threads, n=(1 << 16) + 7, passes=2)  # odd size: the tail is counted too
    assert value > 0 and math.isfinite(value)


def test_cpu_peaks_keys():
    peaks = probes.cpu_peaks(1, quick=True)
    for key in ("gflops", "gbps", "gflops_1t", "gbps_1t"):
        assert peaks[key] > 0
    assert peaks["isa"] == _cpu.active_isa()


@pytest.mark.parametrize("kwargs, word", [({"threads": 0}, "threads"), ({"iters": 0}, "iters"),
                                          ({"reps": 0}, "reps"), ({"isa": "sse9"}, "isa")])
def test_peak_bad_arguments(kwargs, word):
    args = {"threads": 1, "isa": "", "iters": 16, "reps": 1, **kwargs}
    with pytest.raises(ValueError, match=word):
        probes.cpu_peak_gflops(**args)


@pytest.mark.parametrize("kwargs, word", [({"n": 0}, "n must"), ({"threads": 0}, "threads"), ({"passes": 0}, "passes")])
def test_triad_bad_arguments(kwargs, word):
    args = {"threads": 1, "n": 1024, "passes": 1, **kwargs}
    with pytest.raises(ValueError, match=word):
        probes.cpu_triad_gbps(**args)


@pytest.mark.skipif(_cpu.detected_isa() == "avx512", reason="this CPU has AVX-512")
def test_unsupported_isa_is_refused():
    with pytest.raises(ValueError, match="not supported"):
        probes.cpu_peak_gflops(1, isa="avx512", iters=16, reps=1)
