"""Runs fuzz call specs in a spawned worker process (worker.py) with a per-call timeout, so a
crash (signal, sanitizer abort) or a hang is caught, attributed to its call, and the worker is
restarted; pytest itself never dies or hangs."""

from __future__ import annotations

import multiprocessing as mp
import os
import time

from . import worker

TIMEOUT_S = float(os.environ.get("FASTLAYERS_FUZZ_TIMEOUT", "60"))
FAILURES = ("bad-error", "mismatch", "mutated", "ref-error", "harness-error", "crash", "hang")


class Runner:
    def __init__(self):
        self._ctx = mp.get_context("spawn")
        self._proc = None
        self._conn = None
        self.seen: set[str] = set()
        self.counts: dict[str, int] = {}
        self.by_kind: dict[str, int] = {}
        self.restarts = 0

    def _start(self):
        parent, child = self._ctx.Pipe()
        self._proc = self._ctx.Process(target=worker.serve, args=(child,), daemon=True)
        self._proc.start()
        child.close()
        self._conn = parent
        try:
            started = parent.poll(120) and parent.recv()[0] == "ready"
        except (EOFError, OSError):
            started = False
        if not started:
            code = self._proc.exitcode
            self._kill()
            raise RuntimeError(f"the fuzz worker did not start (exit code {code}); see its output above")

    def _kill(self):
        if self._proc is not None:
            self._proc.kill()
            self._proc.join(10)
        self._proc = self._conn = None
        self.restarts += 1

    def close(self):
        if self._proc is not None:
            try:
                self._conn.send(None)
                self._proc.join(10)
            except (OSError, BrokenPipeError):
                pass
            if self._proc.is_alive():
                self._proc.kill()
        self._proc = self._conn = None

    def run(self, spec: dict, kind: str) -> tuple[str, str]:
        """(verdict, detail) for one call; 'crash' and 'hang' when the worker dies or stalls."""
        key = repr(sorted(spec.items()))
        if self._proc is None or not self._proc.is_alive():
            self._start()
        t0 = time.monotonic()
        try:
            self._conn.send(spec)
            ready = self._conn.poll(TIMEOUT_S)
        except (OSError, BrokenPipeError):
            ready = False
        if ready:
            try:
                verdict, detail = self._conn.recv()
            except (EOFError, OSError):
                verdict, detail = None, None
        else:
            verdict, detail = None, None
        if verdict is None:
            self._proc.join(0.5)
            code = self._proc.exitcode
            if code is None:  # still running: a hang (or far too slow)
                verdict, detail = "hang", f"no answer after {time.monotonic() - t0:.0f} s"
            else:
                verdict, detail = "crash", (f"worker died with signal {-code}" if code < 0
                                            else f"worker exited with code {code} (a sanitizer report?)")
            self._kill()
        self.seen.add(key)
        self.counts[verdict] = self.counts.get(verdict, 0) + 1
        self.by_kind[kind] = self.by_kind.get(kind, 0) + 1
        return verdict, detail

    def summary(self) -> str:
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items()))
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.by_kind.items()))
        return (f"fastlayers fuzz: {len(self.seen)} distinct calls tried ({kinds}); outcomes: {outcomes}; "
                f"worker restarts {self.restarts}")
