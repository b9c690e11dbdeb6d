"""Which process writes files (checkpoints, CSV logs, plots, saved models).

Every file the library writes during training goes through `is_primary()`. In a single process it is
always True. A data-parallel run (fastlayers.distributed) installs its own test with
`set_primary_check(lambda: rank == 0)`, so that one process writes and the others only compute.
"""

from __future__ import annotations

_check = None


def is_primary() -> bool:
    """True in the process that should write files (always, outside a data-parallel run)."""
    return True if _check is None else bool(_check())


def set_primary_check(check) -> None:
    """Install `check() -> bool` (e.g. MPI rank == 0) as the test behind is_primary(); None restores
    the single-process default."""
    global _check
    if check is not None and not callable(check):
        raise TypeError(f"check must be a callable returning bool, or None; got {type(check).__name__}")
    _check = check
