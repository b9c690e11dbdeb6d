"""The CUDA kernels' device code, compiled for the host and run against double-precision loops.

No GPU is needed: csrc/cuda/host_emulation/cuda_shim.h runs each CUDA thread as a std::thread
(__syncthreads is a barrier), so index arithmetic, bounds checks, tiling and reductions of the
kernels in csrc/cuda/*_kernels.cuh are exercised on every machine, CI included. It says nothing
about GPU timing, warp-level behaviour or the memory model: those need a real GPU run.
"""

import pathlib
import shutil
import subprocess

import pytest

RUN = pathlib.Path(__file__).resolve().parents[2] / "csrc" / "cuda" / "host_emulation" / "run.sh"


@pytest.mark.skipif(not RUN.exists(), reason="csrc/ not present (tests run outside the checkout)")
@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed: cannot compile the emulation")
def test_cuda_kernels_under_host_emulation(tmp_path):
    done = subprocess.run(["sh", str(RUN)], capture_output=True, text=True, timeout=900,
                          env={"PATH": "/usr/local/bin:/usr/bin:/bin", "TMPDIR": str(tmp_path)})
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-4000:]
    suites = [line for line in log.splitlines() if line.startswith("== ")]
    assert len(suites) >= 4, log[-4000:]
    results = [line for line in log.splitlines() if "failures" in line]
    assert len(results) == len(suites), log[-4000:]
    assert all(line.split()[-2] == "0" for line in results), log[-4000:]
