"""GPU extras to `fastlayers bench`: SGEMM per forced kernel path, and memory-bound kernels on
arrays past the L2 cache. Needs a CUDA build of fastlayers, a GPU and CuPy.

`fastlayers bench` on a GPU already times the op API: `gemm` via fl.gemm against cupy.matmul, and
the elementwise, softmax and loss ops on 6.4M-element (25 MB) inputs with % of the copy bandwidth.
This script adds only what the suite cannot do:

- SGEMM at 1024^3, 4096^3 and the dense-layer training shapes (every transpose the layers use:
  the MLP 784-256-10 at batch 256 and 1024, the course CNN's 1024-200-10 at batch 100), once per
  forced kernel path of `_cuda.sgemm_path` (auto, tile128, tile64, tile32, tile16x64, tile16x8,
  narrow, reference; each with the split-K count its plan picks, csrc/cuda/gemm_plan.h), against
  cupy.matmul with CUPY_TF32=0 (cuBLAS in plain FP32). Before timing, each path's result is checked
  against cuBLAS and against the one-thread-per-output reference kernel; a wrong kernel stops the
  run (exit status 1) instead of being timed. The slow paths run only where they are meant to:
  reference and tile16x8 up to 1024^3, narrow where one side is at most 64.
- Memory-bound kernels called directly (no output allocation by the op layer) on 256 MiB arrays,
  well past an H100's 50 MB L2, where the suite's 25 MB inputs may partly stay in L2: relu,
  sigmoid, add, softmax in three layouts, MSE, softmax cross-entropy, SGD momentum, in GB/s and %
  of the device's copy bandwidth.

No case was dropped: none of them is measured by the suite. Method and format are the suite's
(fastlayers.bench): timing.time_gpu (CUDA events on CuPy's stream, warm-up, time budget),
probes.gpu_peaks (device copy GB/s, cupy.matmul FP32 GFLOP/s for % of peak), records (JSON +
markdown). Exits with status 2 and a clear message when no GPU is usable.

    python benchmarks/cuda_bench.py                 # -> benchmarks/results/<device>-cuda-bench.json, .md
    python benchmarks/cuda_bench.py --quick --only sgemm
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

os.environ["CUPY_TF32"] = "0"  # cuBLAS in FP32, not TF32: the fair anchor for an FP32 SGEMM

import numpy as np  # noqa: E402

from fastlayers.bench import records as R  # noqa: E402
from fastlayers.bench import timing  # noqa: E402
from fastlayers.bench.suite import require_gpu, write_checked_results  # noqa: E402

NAME = "cuda_bench"
RESULTS = Path(__file__).resolve().parent / "results"
# _cuda.sgemm_path ids (csrc/cuda/gemm_plan.h: Path)
SGEMM_PATHS = {"auto": 0, "tile128": 1, "tile64": 2, "tile32": 3, "reference": 4, "tile16x64": 5, "tile16x8": 6,
               "narrow": 7}
MEMORY_FLOATS = 1 << 26  # 256 MiB per float32 array


def fail(msg: str, status: int = 2):
    print(f"{NAME}: {msg}", file=sys.stderr)
    sys.exit(status)


# ------------------------------------------------------------------------------------------ sgemm
@dataclass(frozen=True)
class Gemm:
    name: str
    M: int
    N: int
    K: int
    ta: bool = False
    tb: bool = False

    @property
    def label(self) -> str:
        return f"{self.name}: M={self.M} N={self.N} K={self.K} {'T' if self.ta else 'N'}{'T' if self.tb else 'N'}"

    @property
    def params(self) -> dict:
        return {"name": self.name, "M": self.M, "N": self.N, "K": self.K, "trans_a": self.ta, "trans_b": self.tb}

    @property
    def flops(self) -> float:
        return 2.0 * self.M * self.N * self.K


def dense_shapes(batch: int, sizes: tuple) -> list[Gemm]:
    """The three GEMMs of each dense layer of an MLP with these layer sizes: forward x w^T, grad_x =
    g w, grad_w = g^T x (also used by benchmarks/cuda_plan.py)."""
    cases = []
    for fin, fout in zip(sizes[:-1], sizes[1:]):
        cases += [Gemm(f"dense fwd b{batch} {fin}->{fout}", batch, fout, fin, tb=True),
                  Gemm(f"dense grad_x b{batch} {fin}->{fout}", batch, fin, fout),
                  Gemm(f"dense grad_w b{batch} {fin}->{fout}", fout, fin, batch, ta=True)]
    return cases


DENSE_TRAINING = ((256, (784, 256, 10)), (100, (1024, 200, 10)))  # MLP at batch 256, the course CNN's head


def sgemm_cases() -> list[Gemm]:
    """Square cases, then the dense training shapes: the MLP 784-256-10 at batch 256 and 1024, the
    course CNN's 1024-200-10 head at batch 100."""
    cases = [Gemm("square", 1024, 1024, 1024), Gemm("square", 4096, 4096, 4096)]
    for batch, sizes in ((256, (784, 256, 10)), (1024, (784, 256, 10)), (100, (1024, 200, 10))):
        cases += dense_shapes(batch, sizes)
    return cases


def sgemm_paths(case: Gemm) -> list[str]:
    """The paths timed: reference and tile16x8 only up to 1024^3, narrow only where a side is at
    most 64 (they are made for small problems; above that they would take most of the time budget)."""
    small = case.flops <= 2.0 * 1024**3
    return [p for p in SGEMM_PATHS
            if (p not in ("reference", "tile16x8") or small) and (p != "narrow" or min(case.M, case.N) <= 64)]


def path_workspace_floats(cu, case: Gemm, path: str, sms: int) -> int:
    """Floats of split-K workspace the path's plan wants on a device with `sms` multiprocessors."""
    if path == "reference":
        return 0
    return int(cu.sgemm_plan(case.M, case.N, case.K, sms, SGEMM_PATHS[path], 0)["workspace_floats"])


def sgemm_tolerance(k: int) -> float:
    """Max error relative to max|C| accepted from an FP32 dot product of length k."""
    return 8 * float(np.finfo(np.float32).eps) * math.sqrt(k)


def check_sgemm(case: Gemm, path: str, err_cublas: float, err_reference: float) -> None:
    """Exit 1 when a kernel path disagrees with cuBLAS or with the reference kernel."""
    tol = sgemm_tolerance(case.K)
    if not (err_cublas <= tol and err_reference <= tol):  # NaN fails too
        fail(f"sgemm path {path}, {case.label}: relative error {err_cublas:.3g} vs cuBLAS, {err_reference:.3g} "
             f"vs the reference kernel (tolerance {tol:.3g}): not timing a wrong kernel", status=1)


def sgemm_records(case: Gemm, times: dict, peaks: dict, device: str = "cuda:0") -> list[dict]:
    """Records of one shape from per-call seconds: times['cupy'] (cuBLAS) and times[path] for each
    path timed. Each path is its own case ('<label> [path]') compared with the one cuBLAS record."""
    nbytes = 4.0 * (case.M * case.K + case.K * case.N + case.M * case.N)  # A, B read, C written
    common = {"flops": case.flops, "nbytes": nbytes, "peaks": peaks, "device": device}
    recs = []
    if "cupy" in times:
        recs.append(R.make_record("sgemm", case.label, "cupy", times["cupy"], params=case.params, **common))
    for path in SGEMM_PATHS:
        if path in times:
            recs.append(R.make_record("sgemm", f"{case.label} [{path}]", "cuda", times[path],
                                      params={**case.params, "path": path}, anchor_order=("cupy",),
                                      anchor_case=case.label, **common))
    return recs


def run_sgemm(cp, budget: timing.Budget, peaks: dict) -> list[dict]:
    from fastlayers import _backend

    cu = _backend._cuda
    rng = np.random.default_rng(0)
    records = []
    sms = int(cp.cuda.Device().attributes["MultiProcessorCount"])
    for case in sgemm_cases():
        M, N, K, ta, tb = case.M, case.N, case.K, case.ta, case.tb
        A = cp.asarray(rng.standard_normal((K, M) if ta else (M, K), dtype=np.float32))
        B = cp.asarray(rng.standard_normal((N, K) if tb else (K, N), dtype=np.float32))
        C = cp.empty((M, N), cp.float32)
        opA, opB = (A.T if ta else A), (B.T if tb else B)

        def ours(path, out=C, A=A, B=B):  # the arrays as defaults: the case's `del` below frees them
            floats = path_workspace_floats(cu, case, path, sms)
            ws = cp.empty((max(floats, 1),), cp.float32)
            return lambda: cu.sgemm_path(SGEMM_PATHS[path], 0, ta, tb, M, N, K, 1.0, A.data.ptr, A.shape[1],
                                         B.data.ptr, B.shape[1], 0.0, out.data.ptr, N, ws.data.ptr, floats,
                                         cp.cuda.get_current_stream().ptr)

        times = {"cupy": timing.time_gpu(lambda out=C: cp.matmul(opA, opB, out=out), budget)}
        want = cp.matmul(opA, opB)
        ref = cp.empty((M, N), cp.float32)
        ours("reference", ref)()
        scale = float(cp.abs(want).max()) or 1.0
        for path in sgemm_paths(case):
            C.fill(cp.nan)  # a path that writes nothing must not inherit the previous result
            ours(path)()
            check_sgemm(case, path, float(cp.abs(C - want).max()) / scale, float(cp.abs(C - ref).max()) / scale)
            times[path] = timing.time_gpu(ours(path), budget)
        records += sgemm_records(case, times, peaks)
        del A, B, C, want, ref, ours
    return records


# ----------------------------------------------------------------------------------------- memory
def memory_cases(n: int = MEMORY_FLOATS) -> list[dict]:
    """Kernel calls on preallocated arrays x, b, y (n floats each), loss (a scalar) and labels:
    op (the suite's op name), case, params, nbytes (the least traffic: inputs read once, outputs
    written once), kernel and args (array names are looked up at run time)."""
    mib = n * 4 >> 20
    rows_ce = n // 40  # cross-entropy logits (rows_ce, 10) use a quarter of x
    specs = [
        ("relu", f"{n} floats ({mib} MiB)", "relu_forward", ("x", "y", n), 8 * n),
        ("sigmoid", f"{n} floats ({mib} MiB)", "sigmoid_forward", ("x", "y", n), 8 * n),
        ("add", f"{n} floats ({mib} MiB)", "add_forward", ("x", "b", "y", n), 12 * n),
        ("softmax", f"{n // 1024}x1024 axis=-1", "softmax_forward", ("x", "y", n // 1024, 1024, 1), 8 * n),
        ("softmax", f"{n // 10}x10 axis=-1", "softmax_forward", ("x", "y", n // 10, 10, 1), 8 * (n // 10) * 10),
        ("softmax", f"{n >> 20}x1024x1024 axis=1", "softmax_forward", ("x", "y", n >> 20, 1024, 1024), 8 * n),
        # (the loss kernels: ..., reduction "mean", a caller-owned workspace, the label-status word)
        ("mse_loss", f"{n} floats ({mib} MiB)", "mse_loss_forward", ("x", "b", "loss", n, 0.0, "mean", "ws", "null"),
         8 * n),
        ("softmax_cross_entropy", f"N={rows_ce} C=10 int labels", "softmax_cross_entropy_forward",
         ("x", "labels", "null", "loss", rows_ce, 10, 1, -100, 0.0, "mean", "ws", "status"),
         4 * rows_ce * 10 + 8 * rows_ce),
        ("sgd_update", f"{n} params momentum=0.9", "sgd_update",
         ("x", "b", "y", n, 1e-3, 0.9, 0.0, 0.0, False), 20 * n),
    ]
    return [{"op": op, "case": case + ", kernel only", "kernel": kernel, "args": args, "nbytes": float(nbytes),
             "params": {"family": "memory", "kernel": kernel, "floats": n}} for op, case, kernel, args, nbytes in specs]


def memory_record(spec: dict, times, peaks: dict, device: str = "cuda:0") -> dict:
    """GB/s and % of the device copy bandwidth (peaks['cuda']['gbps']); no anchor."""
    return R.make_record(spec["op"], spec["case"], "cuda", times, params=spec["params"], nbytes=spec["nbytes"],
                         peaks=peaks, device=device)


def run_memory(cp, budget: timing.Budget, peaks: dict, notes: list) -> list[dict]:
    from fastlayers import _backend

    be = _backend.cuda_backend()
    n = MEMORY_FLOATS
    rng = np.random.default_rng(1)
    arrays = {"x": cp.asarray(rng.standard_normal(n, dtype=np.float32)),
              "b": cp.asarray(rng.standard_normal(n, dtype=np.float32)),
              "y": cp.empty(n, cp.float32), "loss": cp.empty((), cp.float32),
              "ws": cp.asarray(np.zeros(4096, np.float64)), "status": cp.asarray(np.zeros(4, np.int64)),
              "null": 0, "mean": 2,
              "labels": cp.asarray(rng.integers(0, 10, n // 40, dtype=np.int64))}
    records = []
    for spec in memory_cases(n):
        if not be.has_kernel(spec["kernel"]):
            notes.append({"op": spec["op"], "case": spec["case"], "backend": "cuda",
                          "reason": f"no CUDA kernel {spec['kernel']} in this build"})
            continue
        args = [arrays[a] if isinstance(a, str) else a for a in spec["args"]]
        times = timing.time_gpu(lambda args=args, k=spec["kernel"]: be.run(k, *args), budget)
        records.append(memory_record(spec, times, peaks))
    return records


# ------------------------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(RESULTS), metavar="DIR", help="output folder (default: benchmarks/results)")
    p.add_argument("--name", metavar="STEM", help="file name stem (default: <device>-cuda-bench)")
    p.add_argument("--quick", action="store_true", help="short time budget and smaller peak probes")
    p.add_argument("--budget", type=float, metavar="SECONDS", help="timing budget per measurement")
    p.add_argument("--only", choices=["sgemm", "memory"], default=None)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    cp = require_gpu(NAME).cupy
    from fastlayers.bench import probes
    from fastlayers.bench.cli import default_stem

    budget = timing.budget_for(args.quick, args.budget)
    peaks = {"cuda": probes.gpu_peaks(quick=args.quick)}
    machine = R.machine_info()
    records, notes = [], []
    if args.only in (None, "sgemm"):
        records += run_sgemm(cp, budget, peaks)
    if args.only in (None, "memory"):
        records += run_memory(cp, budget, peaks, notes)
    R.add_ratios(records)
    settings = {"script": "benchmarks/cuda_bench.py", "only": args.only, "CUPY_TF32": os.environ["CUPY_TF32"],
                "budget_s": budget.seconds, "min_reps": budget.min_reps, "max_reps": budget.max_reps,
                "warmup": budget.warmup, "timer": "CUDA events on CuPy's current stream"}
    stem = args.name or default_stem(machine, machine["threads"]) + "-cuda-bench"
    return write_checked_results(NAME, args.out, stem, machine, peaks, records, notes, settings)


if __name__ == "__main__":
    sys.exit(main())
