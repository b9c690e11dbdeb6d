import pytest

from .runner import Runner

_RUNNER = None


@pytest.fixture(scope="session")
def fuzz_runner():
    global _RUNNER
    _RUNNER = Runner()
    yield _RUNNER
    _RUNNER.close()


def pytest_terminal_summary(terminalreporter):
    if _RUNNER is not None:
        terminalreporter.write_sep("-", "fuzz")
        terminalreporter.write_line(_RUNNER.summary())
