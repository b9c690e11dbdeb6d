"""Backend dispatch: NumPy arrays run on the CPU kernels, CuPy arrays on the CUDA kernels.

The compiled kernels take raw buffer addresses and sizes (see csrc/bindings/pointers.h). An op in
fastlayers.ops checks its arguments, asks `backend_for` which backend its arrays live on, allocates
its outputs with `Backend.empty`, and calls `Backend.run(kernel_name, *args)`, which turns arrays
into addresses and, on the GPU, appends CuPy's current stream. The same op code serves both.
"""

from __future__ import annotations

import numpy as np

from . import _cpu
from .memory import cached_empty

try:  # the CUDA extension exists only in CUDA builds
    from . import _cuda
except ImportError:  # pragma: no cover - depends on the build
    _cuda = None


def is_cupy_array(x) -> bool:
    """True for a cupy.ndarray, without importing CuPy."""
    return type(x).__module__.startswith("cupy") and hasattr(x, "__cuda_array_interface__")


class Backend:
    """One place that knows how to allocate on, and launch kernels for, one kind of array."""

    def __init__(self, name: str, xp, module):
        self.name = name
        self.xp = xp
        self._module = module

    def __repr__(self) -> str:
        return f"<fastlayers backend {self.name}>"

    def empty(self, shape, dtype=np.float32):
        return self.xp.empty(shape, dtype=dtype)

    def zeros(self, shape, dtype=np.float32):
        return self.xp.zeros(shape, dtype=dtype)

    def has_kernel(self, kernel: str) -> bool:
        return hasattr(self._module, kernel)

    def workspace(self, query: str, *args) -> tuple:
        """Extra (workspace, floats) arguments for a kernel that can use scratch memory, as the
        query kernel sizes it for these arguments: () on the CPU, whose kernels take none."""
        return ()

    def run(self, kernel: str, *args):
        """Call a compiled kernel. Arrays in args reach C++ as buffer addresses (see
        csrc/bindings/pointers.h); on the GPU the current stream is appended."""
        fn = getattr(self._module, kernel, None)
        if fn is None:
            raise NotImplementedError(f"fastlayers: '{kernel}' has no {self.name} kernel yet")
        return fn(*self._kernel_args(args))

    def _kernel_args(self, args) -> tuple:
        raise NotImplementedError


class CpuBackend(Backend):
    def __init__(self):
        super().__init__("cpu", np, _cpu)

    # Outputs of 1 MiB and more come from the block cache (fastlayers.memory): repeated large calls
    # reuse warm memory instead of paying page faults on fresh pages every call.
    def empty(self, shape, dtype=np.float32):
        return cached_empty(shape, dtype)

    def zeros(self, shape, dtype=np.float32):
        return cached_empty(shape, dtype, zeroed=True)

    def _kernel_args(self, args) -> tuple:
        return args  # the bindings read a NumPy array's data pointer themselves


class CudaBackend(Backend):
    def __init__(self):
        import cupy

        super().__init__("cuda", cupy, _cuda)
        self._cupy = cupy
        self._ws_floats: dict = {}

    def current_device(self) -> int:
        return self._cupy.cuda.runtime.getDevice()

    def workspace(self, query: str, *args) -> tuple:
        """(workspace, floats) for a CUDA kernel with optional scratch memory: `query(*args)` floats
        (cached per device and arguments), taken from CuPy's memory pool for this one call, or (0, 0)
        when the kernel wants none. CuPy's pool is stream-ordered: the block returns to the pool when
        the call's array is freed and is handed out again only to later work on the same stream, so
        no two streams or devices ever share a workspace."""
        key = (query, self.current_device(), args)
        floats = self._ws_floats.get(key)
        if floats is None:
            if len(self._ws_floats) > 4096:
                self._ws_floats.clear()
            floats = self._ws_floats[key] = int(getattr(self._module, query)(*args, 0))
        if floats <= 0:
            return (0, 0)
        return (self._cupy.empty((floats,), dtype=self._cupy.float32), floats)

    def _kernel_args(self, args) -> tuple:
        ndarray = self._cupy.ndarray
        return (*[a.data.ptr if isinstance(a, ndarray) else a for a in args],
                self._cupy.cuda.get_current_stream().ptr)


CPU = CpuBackend()
_cuda_backend = None


def cuda_backend() -> CudaBackend:
    global _cuda_backend
    if _cuda_backend is None:
        if _cuda is None:
            raise TypeError(
                "got a CuPy (GPU) array, but this fastlayers was built without CUDA; "
                "reinstall with nvcc on PATH (FASTLAYERS_CUDA=ON) or pass NumPy arrays"
            )
        _cuda_backend = CudaBackend()
    return _cuda_backend


def backend_for(**arrays) -> Backend:
    """The backend of the named arrays (None values are ignored). Mixing NumPy and CuPy is a
    TypeError; a CuPy array on another GPU than the current device is a ValueError (its pointer
    would be handed to kernels running on the current device)."""
    on_gpu = {name: is_cupy_array(a) for name, a in arrays.items() if a is not None}
    if any(on_gpu.values()):
        if not all(on_gpu.values()):
            gpu = [n for n, g in on_gpu.items() if g]
            cpu = [n for n, g in on_gpu.items() if not g]
            raise TypeError(
                f"arrays on different devices: {', '.join(gpu)} on the GPU (CuPy) but "
                f"{', '.join(cpu)} on the CPU (NumPy); move them to one device"
            )
        be = cuda_backend()
        current = be.current_device()
        for name, a in arrays.items():
            if a is not None and a.device.id != current:
                raise ValueError(
                    f"{name} is on GPU {a.device.id} but the current device is GPU {current}; "
                    f"run the call under `with cupy.cuda.Device({a.device.id}):` or copy {name} to GPU {current}")
        return be
    return CPU


def array_module(x):
    """numpy or cupy, whichever holds x (for the array-agnostic layer code)."""
    if is_cupy_array(x):
        return cuda_backend().xp
    return np
