"""The CUDA kernels' device code, compiled for the host and run against double-precision loops.

No GPU is needed: csrc/cuda/host_emulation/cuda_shim.h runs each CUDA thread as a fiber
(__syncthreads, __syncwarp and warp shuffles switch fibers), so index arithmetic, bounds checks,
tiling, barrier placement and reductions of the kernels in csrc/cuda/*_kernels.cuh, and the
dispatch code of csrc/cuda/*_launch.h that picks tiles, grids, splits and workspace offsets, are
exercised on every machine, CI included. It says nothing about GPU timing or the memory model:
those need a real GPU run.
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
    names = {line[3:].strip() for line in suites}
    assert {"test_conv", "test_gemm", "test_softmax", "test_dense", "test_elementwise", "test_dropout",
            "test_rest"} <= names, log[-4000:]
    results = [line for line in log.splitlines() if "failures" in line]
    assert len(results) == len(suites), log[-4000:]
    assert all(line.split()[-2] == "0" for line in results), log[-4000:]
