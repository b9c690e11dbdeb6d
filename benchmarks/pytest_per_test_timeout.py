"""A per-test time limit for pytest without the pytest-timeout package (the GPU machine has no
network to install it): `-p pytest_per_test_timeout` with PER_TEST_TIMEOUT=<seconds> in the
environment. A test past its limit fails with TimeoutError (SIGALRM, main thread, POSIX), and the
session goes on with the next test, so one hung kernel costs one test, not the session."""

from __future__ import annotations

import os
import signal

import pytest


def _limit() -> int:
    return int(os.environ.get("PER_TEST_TIMEOUT", "0") or 0)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    limit = _limit()
    if limit <= 0 or not hasattr(signal, "SIGALRM"):
        yield
        return

    def expire(signum, frame):
        raise TimeoutError(f"{item.nodeid} ran past its {limit} s limit (PER_TEST_TIMEOUT)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(limit)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
