"""Leak check (issue #17): resident memory stays flat over 10,000 calls of each op family (and of
calls that raise, in Python and in the C++ bindings), measured in a fresh process by
tests/leak_probe.py. The bound, 2 MiB per family, is far above the noise seen here (0-132 KiB)
and far below what leaking one output per call would add (about 10 MiB)."""

import json
import subprocess
import sys
from pathlib import Path

CALLS = 10_000
BOUND_KIB = 2048


def test_rss_is_flat_over_ten_thousand_calls_per_family():
    probe = Path(__file__).with_name("leak_probe.py")
    r = subprocess.run([sys.executable, str(probe), str(CALLS)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    growth = json.loads(r.stdout.strip().splitlines()[-1])
    assert set(growth) >= {"activation", "conv", "pool", "gemm-linear", "loss", "dropout-add", "optim", "errors",
                           "layers"}
    grew = {family: kib for family, kib in growth.items() if kib > BOUND_KIB}
    assert not grew, f"RSS grew by more than {BOUND_KIB} KiB over {CALLS} calls: {grew} (all: {growth})"
