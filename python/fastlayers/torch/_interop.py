"""Zero-copy exchange between torch tensors and the arrays the kernels take.

- CPU: a contiguous float32 tensor and a NumPy array share one buffer (`Tensor.numpy()` /
  `torch.from_numpy`); nothing is copied.
- CUDA: a tensor and a CuPy array share one buffer through DLPack (`cupy.from_dlpack(t)` /
  `torch.from_dlpack(a)`); the kernels are then launched on the tensor's current torch stream
  (`cuda_stream_of`), so they are ordered after the work torch queued before.

What is copied, and only then: a non-contiguous tensor (made contiguous, as every fastlayers op
does with its input) and a tensor of another dtype than float32 (converted) on the way in.
Outputs are never copied.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from .._backend import is_cupy_array

__all__ = ["to_array", "to_tensor", "shares_memory", "cuda_stream_of"]


def to_array(t, *, contiguous: bool = True):
    """The array behind tensor `t`, without a copy when `t` is contiguous: a NumPy array for a CPU
    tensor, a CuPy array (DLPack) for a CUDA tensor. Gradient tracking is dropped (detach)."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor, got {type(t).__name__}")
    t = t.detach()
    if contiguous and not t.is_contiguous():
        t = t.contiguous()
    if t.device.type == "cpu":
        if t.dtype in (torch.bfloat16,):
            raise TypeError(f"tensor dtype {t.dtype} has no NumPy equivalent; convert it to float32 first")
        return t.resolve_conj().resolve_neg().numpy()
    if t.device.type == "cuda":
        import cupy

        return cupy.from_dlpack(t)
    raise TypeError(f"fastlayers runs on CPU and CUDA tensors, got a tensor on {t.device}")


def to_tensor(a):
    """The tensor over array `a`, without a copy: torch.from_numpy for NumPy (a 0-d array too),
    torch.from_dlpack for CuPy and any other object with __dlpack__."""
    if isinstance(a, np.ndarray):
        if not a.flags.writeable:  # torch warns on read-only memory; such outputs are rare (views)
            a = a.copy()
        return torch.from_numpy(a)
    if is_cupy_array(a) or hasattr(a, "__dlpack__"):
        return torch.from_dlpack(a)
    if isinstance(a, (np.generic, float, int)):
        return torch.from_numpy(np.asarray(a))
    raise TypeError(f"expected a NumPy or CuPy array, got {type(a).__name__}")


def shares_memory(t, a) -> bool:
    """True when tensor t and array a start at the same address (the zero-copy check)."""
    if isinstance(a, np.ndarray):
        return t.data_ptr() == a.__array_interface__["data"][0]
    if is_cupy_array(a):
        return t.data_ptr() == a.data.ptr
    return False


@contextlib.contextmanager
def cuda_stream_of(t):
    """Within the block CuPy's current stream is torch's current stream on t's device (a no-op for
    CPU tensors), so fastlayers' CUDA kernels run in order with the torch work around them."""
    if not isinstance(t, torch.Tensor) or t.device.type != "cuda":
        yield
        return
    import cupy

    stream = torch.cuda.current_stream(t.device)
    with cupy.cuda.Device(t.device.index), cupy.cuda.ExternalStream(stream.cuda_stream):
        yield
