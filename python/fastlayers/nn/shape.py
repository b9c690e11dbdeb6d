"""Small layers that move data without arithmetic, or with a constant: Identity, Reshape and
Constant (x + c or x * c with a fixed array c, broadcast as NumPy). The ONNX importer and the torch
converter use them; they are ordinary layers (save / load / graph models)."""

from __future__ import annotations

import math

import numpy as np

from ._ops import F
from .layers import Layer

__all__ = ["Identity", "Reshape", "Constant", "Pad"]


class Identity(Layer):
    """y = x (a placeholder, as torch.nn.Identity)."""

    _cache_attrs = ()

    def forward(self, x, training=None):
        return x

    def backward(self, grad_out):
        return grad_out

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)


class Reshape(Layer):
    """(N, ...) -> (N, *shape) per sample; one entry of `shape` may be -1 (inferred)."""

    _cache_attrs = ("_shape",)

    def __init__(self, shape):
        super().__init__()
        shape = (shape,) if isinstance(shape, int) else tuple(int(s) for s in shape)
        if sum(1 for s in shape if s == -1) > 1 or any(s < -1 or s == 0 for s in shape):
            raise ValueError(f"shape must hold sizes >= 1 and at most one -1, got {shape}")
        self.shape = shape
        self._config = dict(shape=list(shape))

    def compute_output_shape(self, input_shape):
        n = math.prod(input_shape)
        known = math.prod(s for s in self.shape if s != -1)
        if -1 in self.shape:
            if n % known:
                raise ValueError(f"Reshape: cannot reshape per-sample shape {tuple(input_shape)} to {self.shape}")
            return tuple(n // known if s == -1 else s for s in self.shape)
        if known != n:
            raise ValueError(f"Reshape: cannot reshape per-sample shape {tuple(input_shape)} ({n} values) to "
                             f"{self.shape} ({known} values)")
        return self.shape

    def forward(self, x, training=None):
        self._shape = tuple(x.shape)
        out = self.compute_output_shape(tuple(x.shape[1:]))
        return x.reshape((x.shape[0],) + out)

    def backward(self, grad_out):
        return grad_out.reshape(self._shape)


class Constant(Layer):
    """y = x + c (op="add") or x * c (op="mul") with a fixed array c (no gradient for c), broadcast
    as NumPy against the batched x; c is a buffer (saved with the model, moved by .to())."""

    _cache_attrs = ()

    def __init__(self, value, op: str = "add"):
        super().__init__()
        if op not in ("add", "mul"):
            raise ValueError(f"op must be 'add' or 'mul', got {op!r}")
        self.op = op
        self._buffers["value"] = np.ascontiguousarray(value, dtype=np.float32)
        self._config = dict(value=self._buffers["value"].tolist(), op=op)

    def get_config(self):
        return dict(value=np.asarray(self._buffers["value"]).tolist(), op=self.op)

    def compute_output_shape(self, input_shape):
        c = self._buffers["value"].shape
        try:
            out = np.broadcast_shapes((1,) + tuple(input_shape), tuple(c))
        except ValueError:
            raise ValueError(f"Constant: a value of shape {tuple(c)} does not broadcast against per-sample shape "
                             f"{tuple(input_shape)}") from None
        if out[0] != 1:
            raise ValueError(f"Constant: a value of shape {tuple(c)} would change the batch size")
        return tuple(out[1:])

    def forward(self, x, training=None):
        c = self._buffers["value"]
        if type(c) is not type(x):  # NumPy value, CuPy input (after .to("cuda") it matches)
            from .layers import to_device

            c = to_device(c, "cuda" if hasattr(x, "device") and not isinstance(x, np.ndarray) else "cpu")
        self._in_shape = tuple(x.shape)
        if self.op == "add":
            return F.add(x, c) if tuple(c.shape) == tuple(x.shape) else (x + c).astype(np.float32, copy=False)
        return F.mul(x, c) if hasattr(F, "mul") and tuple(c.shape) == tuple(x.shape) else \
            (x * c).astype(np.float32, copy=False)

    def backward(self, grad_out):
        if self.op == "add":
            g = grad_out
        else:
            g = grad_out * self._buffers["value"]
        g = g.astype(np.float32, copy=False)
        if tuple(g.shape) != self._in_shape:  # the value broadcast x up: sum back over those axes
            extra = g.ndim - len(self._in_shape)
            g = g.sum(axis=tuple(range(extra))) if extra else g
            axes = tuple(i for i, (a, b) in enumerate(zip(self._in_shape, g.shape)) if a == 1 and b != 1)
            g = g.sum(axis=axes, keepdims=True) if axes else g
        return g


class Pad(Layer):
    """fastlayers.pad as a layer: `pad` lists (left, right) pairs from the last axis backwards, as
    torch.nn.functional.pad; mode "constant" (fill `value`), "reflect", "replicate" or "circular".
    The batch axis is never padded."""

    def __init__(self, pad, mode: str = "constant", value=None):
        super().__init__()
        self.pad = [int(p) for p in pad]
        if len(self.pad) % 2:
            raise ValueError(f"pad must hold (left, right) pairs, got {self.pad}")
        self.mode, self.value = str(mode), (None if value is None else float(value))
        self._config = dict(pad=self.pad, mode=self.mode, value=self.value)

    def forward(self, x, training=None):
        if len(self.pad) // 2 >= x.ndim:
            raise ValueError(f"Pad: {len(self.pad) // 2} padded axes leave no batch axis in input of shape "
                             f"{tuple(x.shape)}")
        self._x = x
        return F.pad(x, self.pad, self.mode, self.value)

    def backward(self, grad_out):
        return F.pad_backward(grad_out, self._x, self.pad, self.mode, self.value)
