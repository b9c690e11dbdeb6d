"""Runs the cases on every available backend and collects records and notes.

Backends: the NumPy reference (fastlayers.reference), fastlayers CPU, fastlayers CUDA, and the
anchors numpy, torch-cpu, cupy, torch-cuda. Whatever cannot run becomes a note saying what and why
(not installed, no GPU, op not implemented yet, skipped in --quick, failed with an error) instead of
stopping the run: the op families land at different times.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field

import numpy as np

import fastlayers as fl

from . import records as R
from . import timing
from .cases import Case, all_cases

BACKENDS = ("reference", "cpu", "numpy", "torch-cpu", "cuda", "cupy", "torch-cuda")
GPU_BACKENDS = ("cuda", "cupy", "torch-cuda")


@dataclass
class Environment:
    """What this machine and installation can run, with the reason for what it cannot."""

    torch: object = None
    cupy: object = None
    gpu: bool = False
    torch_cuda: bool = False
    unavailable: dict = field(default_factory=dict)  # backend -> reason

    @classmethod
    def detect(cls) -> "Environment":
        env = cls()
        try:
            import torch

            env.torch = torch
        except Exception as exc:  # not installed, or a broken install
            env.unavailable["torch-cpu"] = env.unavailable["torch-cuda"] = f"torch not installed ({exc.__class__.__name__})"
        if not fl.cuda.is_built():
            reason = "no GPU: fastlayers was built without CUDA"
        elif fl.cuda.device_count() == 0:
            reason = "no GPU: no CUDA device found"
        elif not fl.cuda.cupy_available():
            reason = "no GPU: cupy not installed"
        else:
            reason = None
        if reason is None:
            import cupy

            env.cupy, env.gpu = cupy, True
        else:
            for b in GPU_BACKENDS:
                env.unavailable.setdefault(b, reason)
        if env.gpu and env.torch is not None:
            env.torch_cuda = bool(env.torch.cuda.is_available())
            if not env.torch_cuda:
                env.unavailable["torch-cuda"] = "torch has no CUDA (CPU-only build)"
            else:
                # Our kernels are plain FP32: compare with cuDNN/cuBLAS in FP32, not TF32.
                env.torch.backends.cudnn.allow_tf32 = False
                env.torch.backends.cuda.matmul.allow_tf32 = False
        return env


def require_gpu(script: str) -> Environment:
    """The Environment for a GPU-only benchmark script, or exit with status 2 saying why there is
    no GPU to benchmark (status 1 stays free for a wrong result)."""
    env = Environment.detect()
    if not env.gpu:
        print(f"{script}: {env.unavailable['cuda']}: nothing to benchmark. Run it on a machine with a "
              "CUDA GPU, after `pip install --no-build-isolation .` there (CUDA is built when nvcc is "
              "found).", file=sys.stderr)
        sys.exit(2)
    return env


def write_checked_results(script: str, out, stem: str, machine: dict, peaks: dict, records: list[dict],
                          notes: list, settings: dict) -> int:
    """For the GPU-only scripts: write JSON and markdown, print the report, and exit with status 1
    if what was written does not validate against the results format; returns 0 otherwise."""
    paths = R.write_results(out, stem, machine, peaks, records, notes, settings)
    problems = R.validate(R.load(paths["json"]))
    print(R.markdown_report(machine, peaks, records, notes, settings))
    print(f"wrote {paths['json']}\nwrote {paths['md']}")
    if problems:
        print(f"{script}: the results do not validate: " + "; ".join(problems), file=sys.stderr)
        sys.exit(1)
    return 0


def set_threads(threads: int, env: Environment) -> str:
    """Use `threads` CPU threads in fastlayers, PyTorch and (when threadpoolctl is installed) NumPy's
    BLAS; returns how NumPy's thread count was set, for the settings record."""
    fl.set_num_threads(threads)
    if env.torch is not None:
        env.torch.set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
        return f"{threads} (threadpoolctl)"
    except ImportError:
        return "BLAS default (threadpoolctl not installed)"


def select(cases: list[Case], pattern: str | None) -> list[Case]:
    """Cases whose op name matches the regular expression (re.search); ValueError if it is invalid."""
    if not pattern:
        return cases
    try:
        rx = re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"--filter {pattern!r} is not a valid regular expression: {exc}") from None
    return [c for c in cases if rx.search(c.op)]


def op_names(cases: list[Case] | None = None) -> list[str]:
    seen = []
    for c in cases if cases is not None else all_cases():
        if c.op not in seen:
            seen.append(c.op)
    return seen


def _torch_state(torch, state: dict, device: str) -> dict:
    out = {}
    for k, v in state.items():
        if isinstance(v, np.ndarray):
            out[k] = torch.from_numpy(v)
        elif hasattr(v, "__cuda_array_interface__"):
            out[k] = torch.as_tensor(v, device=device)
        else:
            out[k] = v
    return out


def _missing(namespace, names) -> list[str]:
    """Names the namespace lacks as functions (fastlayers.reference.gemm may be the submodule)."""
    return [n for n in names if not callable(getattr(namespace, n, None))]


class Runner:
    def __init__(self, *, env: Environment, threads: int, budget: timing.Budget, quick: bool,
                 peaks: dict, backends=BACKENDS, progress: bool = True):
        self.env, self.threads, self.budget, self.quick = env, threads, budget, quick
        self.peaks, self.backends, self.progress = peaks, tuple(backends), progress
        self.records: list[dict] = []
        self.notes: list = []

    def note(self, case: Case | None, backend: str, reason: str):
        self.notes.append({"op": case.op if case else None, "case": case.case if case else None,
                           "backend": backend, "reason": reason})

    # Which backends a case can run on, with the reason for those it cannot (None: no note needed).
    def plan(self, case: Case) -> list[tuple[str, str | None]]:
        plan = []
        if self.quick and (case.ours is None or case.full_only):
            return []  # anchor-only cases (PyTorch's split conv backward) and 4096^3 are for the full run
        for b in self.backends:
            if b in ("reference", "cpu", "cuda"):
                if case.ours is None:
                    continue  # an anchor-only case (e.g. PyTorch's split conv backward)
                if b == "reference":
                    missing = _missing(fl.reference, case.needs)
                    if missing:
                        plan.append((b, "not implemented yet"))
                    elif self.quick and case.heavy:
                        plan.append((b, "skipped in --quick (slow NumPy reference)"))
                    else:
                        plan.append((b, None))
                    continue
                missing = _missing(fl, case.needs)
                if b == "cuda" and not self.env.gpu:
                    continue  # one global note says why
                plan.append((b, "not implemented yet" if missing else None))
            elif b in ("numpy", "cupy"):
                if case.xp_anchor is None or (b == "cupy" and not self.env.gpu):
                    continue
                plan.append((b, None))
            else:  # torch-cpu, torch-cuda
                if case.torch_anchor is None or b in self.env.unavailable:
                    continue
                plan.append((b, None))
        return plan

    def run(self, cases: list[Case]) -> tuple[list[dict], list]:
        for b in self.backends:
            if b in self.env.unavailable:
                self.notes.append({"op": None, "case": None, "backend": b, "reason": self.env.unavailable[b]})
        plans = [(c, self.plan(c)) for c in cases]
        if self.quick and any(c.ours is None for c in cases):
            self.notes.append("--quick: PyTorch-only reference records (conv2d_backward_data/_weight) skipped")
        if self.quick and any(c.full_only for c in cases):
            self.notes.append("--quick: " + ", ".join(f"{c.op} {c.case}" for c in cases if c.full_only) + " skipped")
        total = sum(1 for _, p in plans for _, why in p if why is None)
        bar = _progress(total, self.progress)
        # The NumPy reference is timed in a pass of its own after every other measurement: its calls
        # take seconds and churn hundreds of MB of float64 temporaries, and timed right before
        # fastlayers' kernels on the same case it slowed some of them afterwards (layer c's
        # backward 62 -> 79-103 ms on this 2-core machine). Records are put back in case order.
        order = {}
        try:
            for reference_pass in (False, True):
                for i, (case, plan) in enumerate(plans):
                    states: dict = {}
                    for j, (backend, why) in enumerate(plan):
                        if (backend == "reference") != reference_pass:
                            continue
                        if why is not None:
                            self.note(case, backend, why)
                            continue
                        bar.set_description(f"{case.op} [{backend}]"[:48])
                        before = len(self.records)
                        self._run_one(case, backend, states)
                        if len(self.records) > before:
                            order[id(self.records[-1])] = (i, j)
                        bar.update(1)
                    states.clear()
        finally:
            bar.close()
        self.records.sort(key=lambda r: order.get(id(r), (len(plans), 0)))
        R.add_ratios(self.records)
        return self.records, self.notes

    def _state(self, states: dict, key: str, case: Case):
        if key not in states:
            if key == "numpy":
                states[key] = case.setup(np)
            elif key == "cupy":
                states[key] = case.setup(self.env.cupy)
            elif key == "torch-cpu":
                states[key] = _torch_state(self.env.torch, self._state(states, "numpy", case), "cpu")
            elif key == "torch-cuda":
                states[key] = _torch_state(self.env.torch, self._state(states, "cupy", case), "cuda")
        return states[key]

    def _build(self, case: Case, backend: str, states: dict):
        if backend == "reference":
            return case.ours(fl.reference, self._state(states, "numpy", case))
        if backend == "cpu":
            return case.ours(fl, self._state(states, "numpy", case))
        if backend == "cuda":
            return case.ours(fl, self._state(states, "cupy", case))
        if backend == "numpy":
            return case.xp_anchor(np, self._state(states, "numpy", case))
        if backend == "cupy":
            return case.xp_anchor(self.env.cupy, self._state(states, "cupy", case))
        return case.torch_anchor(self.env.torch, self._state(states, backend, case))

    def _run_one(self, case: Case, backend: str, states: dict):
        on_gpu = backend in GPU_BACKENDS
        try:
            fn = self._build(case, backend, states)
            if on_gpu:
                times = timing.time_gpu(fn, self.budget, events="torch" if backend == "torch-cuda" else "cupy")
            else:
                times = timing.time_cpu(fn, self.budget)
        except NotImplementedError as exc:
            self.note(case, backend, f"not implemented yet ({exc})")
            return
        except Exception as exc:  # a bug in a kernel under construction must not stop the suite
            msg = str(exc).splitlines()[0] if str(exc) else ""
            self.note(case, backend, f"failed: {type(exc).__name__}: {msg[:160]}")
            return
        self.records.append(R.make_record(
            case.op, case.case, backend, times, params=case.params, flops=case.flops, nbytes=case.nbytes,
            peaks=self.peaks, device="cuda:0" if on_gpu else "cpu", threads=None if on_gpu else self.threads,
            anchor_order=case.anchor_order.get(backend)))


class _NoBar:
    def set_description(self, *_):
        pass

    def update(self, *_):
        pass

    def close(self):
        pass


def _progress(total: int, enabled: bool):
    if not enabled:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, unit="run", dynamic_ncols=True, leave=False, disable=None)  # None: off when not a TTY
