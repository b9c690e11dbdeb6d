"""benchmarks/cuda_plan.py without a GPU: the tile plans it prints for conv layers (a)-(f) and the
dense training shapes keep >= 85% of the issued FLOPs useful, and its ptxas parsing and sm_90
occupancy arithmetic are right. (The full sm_90 compile takes minutes: benchmarks/gpu_session.sh
and the report run it; here only the plans, and one small real compile when nvcc is present.)"""

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import fastlayers as fl

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "cuda_plan.py"

pytestmark = pytest.mark.skipif(not SCRIPT.exists(), reason="this checkout has no benchmarks/ folder")


@pytest.fixture(scope="module")
def plan():
    spec = importlib.util.spec_from_file_location("_cuda_plan", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


SAMPLE = """\
ptxas info    : Compiling entry function '_Z3fooPf' for 'sm_90'
ptxas info    : Function properties for _Z3fooPf
    8 bytes stack frame, 12 bytes spill stores, 16 bytes spill loads
ptxas info    : Used 255 registers, used 1 barriers, 4096 bytes smem, 368 bytes cmem[0]
ptxas info    : Compiling entry function '_Z3barv' for 'sm_90'
ptxas info    : Function properties for _Z3barv
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 32 registers, used 0 barriers, 352 bytes cmem[0]
"""


def test_ptxas_parsing_and_occupancy(plan):
    k = plan.parse_ptxas(SAMPLE)
    assert k == {"_Z3fooPf": {"arch": "sm_90", "regs": 255, "smem": 4096, "spill": 28},
                 "_Z3barv": {"arch": "sm_90", "regs": 32, "smem": 0, "spill": 0}}
    # 128 registers x 256 threads = 32768: two blocks; 130 registers round up to 136 per thread: one.
    assert plan.occupancy(128, 0, 256)["by_regs"] == 2
    assert plan.occupancy(130, 0, 256)["by_regs"] == 1
    assert plan.occupancy(32, 0, 256)["blocks_per_sm"] == 8  # threads and registers both allow 8
    assert plan.occupancy(32, 100 * 1024, 64)["by_smem"] == 2
    assert plan.kernel_threads("void conv_detail::conv_gemm_kernel<conv_detail::ForwardOp<int>, 128, 32, 8, 4, 8, 4>") == 128
    assert plan.kernel_threads("void detail::sgemm_warp<128, 128, 8, 64, 32, 8, 8, true, false, true, 2>") == 256


def test_report_flags_spills_register_limits_and_waste(plan):
    rows = [{"case": "x", "tile": "t", "useful_flops": 8e9, "issued_flops": 1e10, "efficiency": 0.8, "blocks": 10,
             "splits": 1, "waves_model": 0.1, "match": "foo", "threads": 256}]
    kernels = [{"name": "void foo<1>", "regs": 255, "smem": 0, "spill": 28, "file": "a.cu"}]
    plan.attach_ptxas(rows, kernels)
    lines, problems = plan.report(rows, kernels)
    assert lines[-1] == "min_tile_efficiency=0.8000"
    assert any("efficiency 0.800" in p for p in problems)
    assert any("spills" in p for p in problems) and any("one block per SM" in p for p in problems)


@pytest.mark.skipif(not fl.cuda.is_built(), reason="fastlayers was built without CUDA: no planner to ask")
def test_plans_of_the_anchor_layers_and_dense_shapes(plan):
    done = subprocess.run([sys.executable, str(SCRIPT), "--no-ptxas"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert lines[-1].startswith("min_tile_efficiency=")
    assert float(lines[-1].split("=")[1]) >= 0.85
    cases = [line.split("  ")[0] for line in lines if line.startswith(("conv (", "dense "))]
    assert len(cases) == 6 * 3 + 12  # every layer and pass; 4 dense layers x 3 GEMMs
    # The strided backward-data of layer (e) runs as its 16 stride phases.
    from fastlayers import _backend

    e = dict(plan.conv_layers())["e"]
    assert _backend._cuda.conv2d_plan(e, 1, 132)["z_count"] == 16


@pytest.mark.skipif(not fl.cuda.is_built() or shutil.which("nvcc") is None, reason="needs nvcc and a CUDA build")
def test_a_real_sm90_compile_is_parsed(plan, tmp_path):
    """One small .cu (csrc/cuda/dropout.cu) through the same ptxas parsing: its kernel, spill-free."""
    done = subprocess.run(["nvcc", "-std=c++17", "-O3", "-arch=sm_90", f"-I{ROOT / 'csrc'}", "-Xptxas", "-v", "-c",
                           str(ROOT / "csrc" / "cuda" / "dropout.cu"), "-o", str(tmp_path / "k.o")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    kernels = plan.parse_ptxas(done.stdout + done.stderr)
    assert kernels and all(k["arch"] == "sm_90" and k["regs"] and k["spill"] == 0 for k in kernels.values())
    assert any("dropout_kernel" in name for name in plan.demangle(list(kernels)))
