"""benchmarks/cuda_bench.py and benchmarks/cuda_conv_bench.py without a GPU: the clear exit-2 message,
and records built from synthetic timings that validate in the shared results format. Never asserts
on speed (no GPU here, and the machine is shared)."""

import ctypes
import importlib.util
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import fastlayers as fl
from fastlayers.bench import cases as C
from fastlayers.bench import records as R
from fastlayers.bench import timing

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks"
SCRIPTS = ["cuda_bench", "cuda_conv_bench"]
PEAKS = {"cuda": {"gflops": 50000.0, "gbps": 3000.0}}
TINY = timing.Budget(seconds=0.001, min_reps=1, max_reps=2, warmup=1)

pytestmark = pytest.mark.skipif(not (BENCH / "cuda_bench.py").exists(),
                                reason="this checkout has no benchmarks/ folder (installed package only)")


def _load(name):
    spec = importlib.util.spec_from_file_location(f"_gpu_script_{name}", BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up while the file runs
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def gemm_script():
    return _load("cuda_bench")


@pytest.fixture(scope="module")
def conv_script():
    return _load("cuda_conv_bench")


def _times(median, spread=0.25):
    """Five synthetic per-call times around `median` (min < median < max)."""
    return [median * (1 - spread), median, median, median * (1 + spread / 2), median * (1 + spread)]


def _doc(records):
    return {"machine": {"gpu": "synthetic"}, "peaks": PEAKS, "records": records}


@pytest.mark.parametrize("name", SCRIPTS)
def test_no_gpu_exits_2_with_a_clear_message(name):
    if fl.cuda.is_available():
        pytest.skip("a GPU is usable here: the script would run the benchmark")
    proc = subprocess.run([sys.executable, str(BENCH / f"{name}.py"), "--out", "/nonexistent-dir"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"{name}: no GPU")
    assert "nothing to benchmark" in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout == ""  # nothing measured, nothing written


# ------------------------------------------------------------------------------ cuda_bench.py
def test_sgemm_records_validate_and_link_every_path_to_cublas(gemm_script, tmp_path):
    s = gemm_script
    cases = s.sgemm_cases()
    records = []
    for i, case in enumerate(cases):
        times = {"cupy": _times(1e-3 * (i + 1))}
        for j, path in enumerate(s.sgemm_paths(case)):
            times[path] = _times(1e-3 * (i + 1) * (j + 2) / 3)
        records += s.sgemm_records(case, times, PEAKS)
    R.add_ratios(records)
    assert R.validate(_doc(records)) == []
    anchors = {r["case"]: r for r in records if r["backend"] == "cupy"}
    assert len(anchors) == len(cases)
    ours = [r for r in records if r["backend"] == "cuda"]
    assert {r["params"]["path"] for r in ours} == set(s.SGEMM_PATHS)
    for r in ours:
        a = anchors[r["case"].rsplit(" [", 1)[0]]
        assert r["case"].endswith(f"[{r['params']['path']}]")
        assert r["anchor"] == "cupy" and r["ratio"] == pytest.approx(a["median_s"] / r["median_s"])
        assert "anchor_case" not in r and "anchor_order" not in r  # consumed by add_ratios
        p = r["params"]
        assert r["gflops"] == pytest.approx(2.0 * p["M"] * p["N"] * p["K"] / r["median_s"] * 1e-9)
        assert r["pct_peak"] is not None and r["device"] == "cuda:0"
    # The slow reference and 16x8 kernels are timed up to 1024^3 only, the narrow kernel only where a
    # side is at most 64.
    paths_4096 = {r["params"]["path"] for r in ours if r["params"]["M"] == 4096}
    assert paths_4096 == set(s.SGEMM_PATHS) - {"reference", "tile16x8", "narrow"}
    narrow = {r["case"] for r in ours if r["params"]["path"] == "narrow"}
    assert narrow and all(min(r["params"]["M"], r["params"]["N"]) <= 64 for r in ours if r["case"] in narrow)
    # Written and read back through the shared format.
    paths = R.write_results(tmp_path, "gpu", R.machine_info(), PEAKS, records, [], {"CUPY_TF32": "0"})
    assert R.validate(R.load(paths["json"])) == []
    assert "[tile64]" in paths["md"].read_text()


def test_sgemm_cases_cover_every_transpose_the_layers_use(gemm_script):
    cases = gemm_script.sgemm_cases()
    assert {(c.ta, c.tb) for c in cases} == {(False, False), (False, True), (True, False)}
    assert len({c.label for c in cases}) == len(cases)  # labels are the record keys
    # The dense training shapes: both MLP batch sizes and the CNN head at batch 100, 3 GEMMs a layer.
    dense = [c for c in cases if c.name.startswith("dense")]
    assert len(dense) == 3 * (2 + 2 + 2)
    assert {(c.M, c.N, c.K) for c in dense} >= {(100, 200, 1024), (100, 1024, 200), (200, 1024, 100),
                                                (100, 10, 200), (100, 200, 10), (10, 200, 100)}


def test_sgemm_check_stops_on_a_wrong_kernel(gemm_script):
    s = gemm_script
    case = s.sgemm_cases()[0]
    tol = s.sgemm_tolerance(case.K)
    assert tol == pytest.approx(8 * np.finfo(np.float32).eps * np.sqrt(1024))
    s.check_sgemm(case, "tile64", tol / 2, 0.0)  # within tolerance: returns
    for errs in ((tol * 2, 0.0), (0.0, tol * 2), (float("nan"), 0.0)):
        with pytest.raises(SystemExit) as exc:
            s.check_sgemm(case, "tile64", *errs)
        assert exc.value.code == 1


def test_memory_records_validate_in_gbps_of_the_copy_peak(gemm_script):
    s = gemm_script
    specs = s.memory_cases(1 << 20)
    kernels = {spec["kernel"] for spec in specs}
    assert {"relu_forward", "softmax_forward", "sgd_update", "softmax_cross_entropy_forward"} <= kernels
    records = [s.memory_record(spec, _times(2e-4), PEAKS) for spec in specs]
    R.add_ratios(records)
    assert R.validate(_doc(records)) == []
    for r, spec in zip(records, specs):
        assert r["gflops"] is None and r["gbps"] == pytest.approx(spec["nbytes"] / 2e-4 * 1e-9)
        assert r["pct_peak"] == pytest.approx(100 * r["gbps"] / PEAKS["cuda"]["gbps"])
        assert r["anchor"] is None and r["ratio"] is None
    assert len({(r["op"], r["case"]) for r in records}) == len(records)


def test_memory_cases_stay_inside_the_arrays(gemm_script):
    """Each kernel call touches at most n floats of x, b and y (they are allocated with n each)."""
    n = 1 << 20
    for spec in gemm_script.memory_cases(n):
        sizes = [a for a in spec["args"] if isinstance(a, int) and not isinstance(a, bool)]
        assert 0 < np.prod(sizes[:3]) <= n, spec


class _HostArray(np.ndarray):
    """A NumPy array with CuPy's `.data.ptr`, so the drivers' GPU code can run on the host."""

    @property
    def data(self):
        return types.SimpleNamespace(ptr=self.ctypes.data)


def _host(a):
    return np.ascontiguousarray(a).view(_HostArray) if isinstance(a, np.ndarray) else a


FAKE_CUPY = types.SimpleNamespace(
    asarray=lambda a: _host(np.asarray(a)), empty=lambda shape, dtype=np.float32: _host(np.empty(shape, dtype)),
    float32=np.float32, nan=np.nan, abs=np.abs,
    matmul=lambda a, b, out=None: np.matmul(a, b, out=out) if out is not None else _host(np.matmul(a, b)),
    cuda=types.SimpleNamespace(get_current_stream=lambda: types.SimpleNamespace(ptr=0),
                               Device=lambda: types.SimpleNamespace(attributes={"MultiProcessorCount": 132})))


def _fake_plan(M, N, K, sms, path, splits):
    """_cuda.sgemm_plan's workspace answer, without a CUDA build: 2 splits for the tiled paths."""
    return {"workspace_floats": 0 if path in (4, 7) else 2 * M * N}


@pytest.fixture
def on_host(monkeypatch, gemm_script):
    """cuda_bench's GPU loops on the host: NumPy poses as CuPy, the CPU kernels (same names and
    argument lists as the CUDA ones, without the stream) stand in for _cuda, a CPU timer for CUDA
    events; small shapes. Returns the sgemm_path calls made."""
    from fastlayers import _backend, _cpu

    calls = []

    def sgemm_path(path, splits, ta, tb, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc, ws, ws_floats, stream):
        calls.append(path)
        assert splits == 0 and ws != 0 and ws_floats == _fake_plan(M, N, K, 132, path, 0)["workspace_floats"]
        _cpu.sgemm(ta, tb, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc)

    class HostBackend:
        def has_kernel(self, kernel):
            return hasattr(_cpu, kernel)

        def run(self, kernel, *args):
            return getattr(_cpu, kernel)(*[a.data.ptr if isinstance(a, _HostArray) else a for a in args])

    s = gemm_script
    monkeypatch.setattr(_backend, "_cuda", types.SimpleNamespace(sgemm_path=sgemm_path, sgemm_plan=_fake_plan))
    monkeypatch.setattr(_backend, "cuda_backend", HostBackend)
    monkeypatch.setattr(timing, "time_gpu", lambda fn, budget, events="cupy": timing.time_cpu(fn, budget))
    monkeypatch.setattr(s, "sgemm_cases", lambda: [s.Gemm("sq", 64, 48, 80), s.Gemm("fwd", 32, 24, 40, tb=True),
                                                    s.Gemm("gw", 24, 40, 32, ta=True)])
    monkeypatch.setattr(s, "MEMORY_FLOATS", 1 << 16)
    return calls


def test_gpu_loops_run_end_to_end_on_the_host(gemm_script, on_host):
    s = gemm_script
    records = s.run_sgemm(FAKE_CUPY, TINY, PEAKS)
    notes = []
    records += s.run_memory(FAKE_CUPY, TINY, PEAKS, notes)
    R.add_ratios(records)
    assert R.validate(_doc(records)) == []
    assert sorted(set(on_host)) == sorted(s.SGEMM_PATHS.values())  # every path ran (and passed the check)
    assert {r["op"] for r in records} >= {"sgemm", "relu", "softmax", "sgd_update"}
    missing = {n["case"] for n in notes}
    assert len(records) == 3 * (1 + len(s.SGEMM_PATHS)) + len(s.memory_cases(1 << 16)) - len(missing)


def test_gpu_loop_stops_before_timing_a_wrong_path(gemm_script, on_host, monkeypatch):
    from fastlayers import _backend

    good = _backend._cuda.sgemm_path

    def tile64_off_by_one(path, *args):
        good(path, *args)
        if path == gemm_script.SGEMM_PATHS["tile64"]:  # corrupt one output element
            c = args[12]
            np.frombuffer((ctypes.c_float * 1).from_address(c), np.float32)[0] += 1.0

    monkeypatch.setattr(_backend, "_cuda", types.SimpleNamespace(sgemm_path=tile64_off_by_one, sgemm_plan=_fake_plan))
    with pytest.raises(SystemExit) as exc:
        gemm_script.run_sgemm(FAKE_CUPY, TINY, PEAKS)
    assert exc.value.code == 1


# ------------------------------------------------------------------------- cuda_conv_bench.py
def test_conv_records_validate_with_torch_anchors(conv_script, tmp_path):
    s = conv_script
    cases = s.bench_cases()
    records = []
    for i, case in enumerate(cases):
        times = {"torch-cuda": _times(1e-3 * (i + 1))}
        if case.ours is not None:
            times["cuda"] = _times(2e-3 * (i + 1))
        extra = {"max_rel_diff_vs_torch": 1e-7} if case.op in s.CHECKED else None
        records += s.case_records(case, times, PEAKS, extra)
    R.add_ratios(records)
    assert R.validate(_doc(records)) == []
    ours = [r for r in records if r["backend"] == "cuda"]
    assert ours and all(r["anchor"] == "torch-cuda" and r["ratio"] == pytest.approx(0.5) for r in ours)
    assert all(r["pct_peak"] is not None for r in records)
    assert all("max_rel_diff_vs_torch" in r["params"] for r in records if r["op"] == "conv2d")
    paths = R.write_results(tmp_path, "gpu-conv", R.machine_info(), PEAKS, records, [], {"tf32": False})
    assert R.validate(R.load(paths["json"])) == []


def test_conv_cases_are_the_suites_with_the_gpu_extras(conv_script):
    s = conv_script
    cases = s.bench_cases()
    layers = {c.params["layer"] for c in cases if c.op == "conv2d"}
    assert layers == {"a", "b", "c", "d", "e", "f"}
    pools = [c for c in cases if c.params.get("family") == "pool"]
    assert {c.op for c in pools} == {"max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward"}
    assert all(c.params["kernel"] == 3 and c.params["stride"] == 2 and c.params["padding"] == 1 for c in pools)
    cnn = [c for c in cases if c.op == "train_step_cnn"]
    assert [c.params["batch"] for c in cnn] == list(s.CNN_BATCHES) == [100, 1000]
    assert cnn[1].flops == pytest.approx(10 * cnn[0].flops)  # every flop of the step scales with the batch
    assert cnn[0].case == next(c.case for c in C.train_cases() if c.op == "train_step_cnn")  # the suite's case
    assert {c.op for c in s.bench_cases("cnn")} == {"train_step_cnn"}


def test_cnn_case_runs_at_another_batch_on_the_cpu():
    """cases.cnn_train_case(batch) builds its inputs at that batch: one step through the CPU ops."""
    case = C.cnn_train_case(3)
    state = case.setup(np)
    assert state["x"].shape == (3, 1, 28, 28) and state["y"].shape == (3,)
    w1 = state["w1"].copy()
    loss = case.ours(fl, state)()
    assert np.isfinite(float(loss)) and not np.array_equal(state["w1"], w1)  # SGD moved the weights


def test_window_pool_cases_match_torch_on_the_cpu():
    """The 3x3/2 pad 1 cases: fastlayers' CPU ops agree with the PyTorch anchor the script times."""
    torch = pytest.importorskip("torch")
    for case in C.window_pool_cases(3, 2, 1):
        state = case.setup(np)
        tstate = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in state.items()}
        ours = case.ours(fl, state)()
        want = case.torch_anchor(torch, tstate)().numpy()
        np.testing.assert_allclose(ours, want, rtol=1e-5, atol=1e-6, err_msg=case.op)


def _cpu_timer(fn, budget, events):
    assert events in ("cupy", "torch")
    return timing.time_cpu(fn, budget)



@pytest.mark.parametrize("with_torch", [True, False])
def test_run_case_checks_times_and_records_on_the_cpu(conv_script, with_torch):
    """The script's per-case loop, with NumPy in place of CuPy and a CPU timer: conv layer (a) is
    checked against PyTorch before it is timed, and its records validate."""
    torch = pytest.importorskip("torch") if with_torch else None
    s = conv_script
    layer_a = [c for c in s.bench_cases("conv") if c.params["layer"] == "a"]
    notes, records = [], []
    for case in layer_a:
        records += s.run_case(case, fl, np, torch, TINY, PEAKS, notes, timer=_cpu_timer)
    R.add_ratios(records)
    assert notes == [] and R.validate(_doc(records)) == []
    backends = {(r["op"], r["backend"]) for r in records}
    assert ("conv2d", "cuda") in backends and ("conv2d_backward", "cuda") in backends
    if with_torch:
        assert ("conv2d_backward_data", "torch-cuda") in backends
        fwd = next(r for r in records if r["op"] == "conv2d" and r["backend"] == "cuda")
        assert fwd["anchor"] == "torch-cuda"
        assert 0 <= fwd["params"]["max_rel_diff_vs_torch"] <= s.fp32_tolerance(25)
    else:
        assert all(r["backend"] == "cuda" and r["anchor"] is None for r in records)


def test_run_case_does_not_time_a_wrong_result(conv_script):
    torch = pytest.importorskip("torch")
    s = conv_script
    case = next(c for c in s.bench_cases("conv") if c.op == "conv2d" and c.params["layer"] == "a")
    wrong = C.Case(**{**case.__dict__, "ours": lambda o, st: lambda: o.conv2d(st["x"], st["w"], st["b"]) + 1e-3})
    notes = []
    records = s.run_case(wrong, fl, np, torch, TINY, PEAKS, notes, timer=_cpu_timer)
    assert [r["backend"] for r in records] == ["torch-cuda"]
    assert len(notes) == 1 and notes[0]["backend"] == "cuda" and "not timed" in notes[0]["reason"]


def test_fp32_tolerance_scales_with_the_reduction(conv_script):
    t = conv_script.fp32_tolerance
    assert t(4 * 1152) == pytest.approx(2 * t(1152))
    assert t(1) == pytest.approx(8 * np.finfo(np.float32).eps)


def test_budget_for_the_quick_and_budget_options():
    assert timing.budget_for() == timing.FULL and timing.budget_for(quick=True) == timing.QUICK
    b = timing.budget_for(True, 0.5)
    assert b.seconds == 0.5 and (b.min_reps, b.max_reps, b.warmup) == (timing.QUICK.min_reps, timing.QUICK.max_reps,
                                                                        timing.QUICK.warmup)


# ------------------------------------------------------------------------------ gpu_smoke.py
def test_gpu_smoke_op_checks_run_on_the_host():
    """gpu_smoke.py's op family checks with NumPy standing in for CuPy (both sides then run the CPU
    kernels, so every check must pass): the script's calls match the op API."""
    spec = importlib.util.spec_from_file_location("_gpu_smoke", BENCH / "gpu_smoke.py")
    smoke = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(smoke)
    checks = smoke.Checks()
    smoke.op_checks(types.SimpleNamespace(asarray=np.array), checks, tiny=False)
    assert len(checks.rows) >= 30
    assert all(c["ok"] and c["max_rel_err"] == 0.0 for c in checks.rows), [c for c in checks.rows if not c["ok"]]
    assert smoke.rel_err([1.0, np.nan], [1.0, 2.0]) == float("inf")  # a NaN where a number belongs fails


# ----------------------------------------------------------------------------- gpu_session.sh
SESSION = BENCH / "gpu_session.sh"


def _session(tmp_path, *args, **env):
    import os

    return subprocess.run(["bash", str(SESSION), *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "OUT": str(tmp_path / "out"), **env})


def test_gpu_session_dry_run_lists_every_step_and_runs_nothing(tmp_path):
    done = _session(tmp_path, "--dry-run")
    assert done.returncode == 0, done.stderr
    steps = [line for line in done.stdout.splitlines() if line.startswith("would run: ")]
    names = [line.split()[2] for line in steps]
    assert names == ["versions", "build", "plan", "smoke", "memcheck", "racecheck", "tests", "gemm", "conv", "memory",
                     "cnn"]
    text = "\n".join(steps)
    for needle in ("pip install --no-build-isolation --no-deps --no-index", "CUDA_LAUNCH_BLOCKING=1",
                   "compute-sanitizer --tool memcheck", "compute-sanitizer --tool racecheck", "--junitxml=",
                   "PER_TEST_TIMEOUT=", "not host_emulation", "cuda_bench.py --only sgemm",
                   "cuda_conv_bench.py --only conv", "cuda_bench.py --only memory", "cuda_conv_bench.py --only cnn"):
        assert needle in text, needle
    assert "CUDAARCHS=90" in done.stdout
    assert not (tmp_path / "out").exists()  # nothing written


def test_gpu_session_skips_what_the_time_budget_cannot_hold(tmp_path):
    """With no time left every step is skipped (and counted), none is started: the session never
    runs past its budget."""
    done = _session(tmp_path, BUDGET="0")
    assert done.returncode == 11, done.stdout + done.stderr
    log = (tmp_path / "out" / "steps.txt").read_text()
    assert log.count(": skipped,") == 11 and "failed or skipped steps: 11" in log
    assert not list((tmp_path / "out").glob("*.log"))


def test_gpu_session_refuses_unknown_arguments(tmp_path):
    assert _session(tmp_path, "--gpu").returncode == 2
