"""Is there a GPU? Answers that never raise, with or without CUDA.

- `is_built()`: this fastlayers was compiled with its CUDA extension.
- `is_available()`: built, a CUDA device is usable, and CuPy (the GPU array type) imports.
"""

from __future__ import annotations

from . import _backend


def is_built() -> bool:
    return _backend._cuda is not None


def device_count() -> int:
    return _backend._cuda.device_count() if is_built() else 0


def cupy_available() -> bool:
    try:
        import cupy  # noqa: F401
    except Exception:
        return False
    return True


def is_available() -> bool:
    return device_count() > 0 and cupy_available()


def device_name(device: int = 0) -> str:
    if not is_built():
        raise RuntimeError("fastlayers was built without CUDA")
    count = device_count()
    if not 0 <= device < count:
        raise ValueError(f"device must be in [0, {count}), got {device}")
    return _backend._cuda.device_name(device)


def runtime_version() -> int | None:
    """The CUDA runtime version compiled in (e.g. 13000), or None without CUDA."""
    return _backend._cuda.runtime_version() if is_built() else None


def check_errors() -> None:
    """Raise ValueError if a CUDA loss kernel met a bad label (a class index out of range, a
    logistic/hinge label that is not +-1) since the last check, naming the op and the label; the
    record is then cleared. The CUDA losses check labels on the device instead of copying them to
    the host on every call: a bad label makes its sample's loss and gradient NaN and is reported
    here. One device synchronisation; a model's fit and evaluate call it once per epoch. Does
    nothing without CUDA or before any CUDA loss ran."""
    from . import _device_errors

    _device_errors.check()
