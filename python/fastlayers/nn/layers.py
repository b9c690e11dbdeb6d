"""Layers: forward(x, training) caches what backward needs; backward(grad_out) returns the input
gradient and fills the layer's Parameter.grad. The code is array-module agnostic: NumPy arrays run
on the CPU kernels, CuPy arrays on the CUDA kernels, through the public ops (see _ops.F).

A layer with `trainable = False` keeps its weights (its parameters get no gradient and optimizers
skip them) but still passes the gradient on to its input, as transfer learning needs.

Every layer has a `name`: unique per class within the process, as Keras makes them ("conv2d",
"conv2d_1", ...), unless given as `name=` to any layer's constructor. Calling a layer on a symbolic
tensor (nn.Input, or another layer's symbolic output) records a node of a functional graph instead
of computing (see nn.graph); `layer.output` / `layer.input` are then that call's symbolic tensors.

State a layer keeps from one forward for its backward (the input or output it caches) lives in
private attributes (`self._x`); persistent state lives in public attributes, `_params` and
`_buffers`. The graph executor relies on that split when one layer object is called at several
nodes (it keeps each call's private state apart), and `release_cache()` drops the attributes named
in `_cache_attrs` when no backward will follow (predict, evaluate).
"""

from __future__ import annotations

import functools
import math
import inspect
import re

import numpy as np

from .. import _backend
from . import init as _init
from ._args import as_flag, as_input, as_real, as_size, as_size_pair
from ._ops import F

__all__ = ["Parameter", "Layer", "Linear", "Conv2d", "Conv1d", "MaxPool2d", "AvgPool2d", "LpPool2d",
           "GlobalAvgPool2d", "Flatten", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softmax", "Dropout",
           "Residual", "to_device", "BackwardBeforeForward", "LogSoftmax"]
__all__ += ["LPPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "MaxUnpool2d"]
__all__ += ["Upsample"]
__all__ += ["ConvTranspose2d", "Conv3d", "MaxPool3d", "AvgPool3d"]
__all__ += ["BatchNorm1d", "BatchNorm2d", "BatchNorm3d"]


class Parameter:
    """A trainable array: .data (float32, contiguous), .grad (None until a backward pass), .name."""

    def __init__(self, data, name: str = ""):
        self.data = data
        self.grad = None
        self.name = name
        self.trainable = True

    @property
    def shape(self):
        return tuple(self.data.shape)

    @property
    def size(self) -> int:
        return int(self.data.size)

    def __repr__(self):
        return f"Parameter({self.name!r}, shape={self.shape}, trainable={self.trainable})"


def to_device(a, device: str):
    """Move an array to 'cpu' (NumPy) or 'cuda' (CuPy); a clear error when CUDA is not usable."""
    if device == "cpu":
        return a.get() if _backend.is_cupy_array(a) else a
    if device == "cuda":
        from .. import cuda

        if not cuda.is_available():
            why = ("this fastlayers was built without CUDA" if not cuda.is_built()
                   else "no usable CUDA device" if cuda.device_count() == 0
                   else "CuPy is not installed")
            raise RuntimeError(f"device 'cuda' requested but CUDA is not usable: {why}; use device='cpu'")
        import cupy

        return cupy.ascontiguousarray(cupy.asarray(a, dtype=cupy.float32))
    raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")


# Every Layer subclass by class name (load_model's lookup), and the auto-name counters per prefix.
_LAYER_CLASSES: dict[str, type] = {}
_NAME_COUNTS: dict[str, int] = {}


def _snake_case(class_name: str) -> str:
    """Conv2d -> conv2d, GlobalAvgPool2d -> global_avg_pool2d, LeakyReLU -> leaky_relu."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z][a-z])", "_", class_name.lstrip("_")).lower() or "layer"


def unique_name(prefix: str) -> str:
    """prefix, then prefix_1, prefix_2, ... (a counter per prefix for the whole process, as Keras)."""
    n = _NAME_COUNTS.get(prefix, 0)
    _NAME_COUNTS[prefix] = n + 1
    return prefix if n == 0 else f"{prefix}_{n}"


def _reserve_name(name: str):
    """An explicit (or loaded) name such as 'conv2d_7': later auto names of that prefix skip past it,
    so that a loaded model and freshly made layers do not collide."""
    m = re.fullmatch(r"(.*?)(?:_(\d+))?", name)
    prefix, n = m.group(1), int(m.group(2) or 0)
    if prefix:
        _NAME_COUNTS[prefix] = max(_NAME_COUNTS.get(prefix, 0), n + 1)


def _check_name(name) -> str:
    """Any non-empty string. Dotted names are fine: a graph Model names its parameters
    "<layer name>.<parameter>", so layers named like a PyTorch module's attributes ("layer1.0.conv1")
    give PyTorch's state_dict keys."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    if not name:
        raise ValueError("name must be a non-empty string, got ''")
    _reserve_name(name)
    return name


def _pair(v, name, minimum=0):
    """An int or a pair of ints (floats, bools and strings refused: no silent truncation)."""
    return as_size_pair(v, name, minimum)


# The largest weight tensor a layer makes (elements): the conv kernels' limit (ops/conv.py).
_MAX_WEIGHT_ELEMENTS = 2**48


class BackwardBeforeForward(ValueError, AttributeError):
    """Layer.backward called with no forward pass cached. A ValueError (bad call order: nothing to
    differentiate) and, so that hasattr() and copy keep working, an AttributeError."""


_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _conv_padding(padding, stride, padding_mode, as_tuple):
    """A conv layer's padding (an int/tuple via as_tuple, or 'same'/'valid') and padding_mode, checked as
    torch.nn.Conv2d checks them at construction."""
    if not isinstance(padding_mode, str) or padding_mode not in _PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {list(_PADDING_MODES)}, got padding_mode={padding_mode!r}")
    if isinstance(padding, str):
        if padding not in ("same", "valid"):
            raise ValueError(f"Invalid padding string {padding!r}, should be one of 'valid', 'same'")
        if padding == "same" and any(s != 1 for s in (stride if isinstance(stride, tuple) else (stride,))):
            raise ValueError(f"padding='same' is not supported for strided convolutions, got stride={stride}")
        return padding
    return as_tuple(padding)


class Layer:
    """Base class. Subclasses set self._params (name -> Parameter), self._config (constructor args)
    and, for state that is not trained but belongs to the model (batch-norm running statistics),
    self._buffers (name -> array): saved, loaded and moved by .to() like the parameters.

    Every constructor takes `name=` (keyword), also those of subclasses that do not declare it."""

    # Attributes holding per-call state that only backward reads; release_cache() drops them.
    _cache_attrs: tuple = ("_x", "_y")

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _LAYER_CLASSES[cls.__name__] = cls
        init = cls.__dict__.get("__init__")
        if init is not None and "name" not in inspect.signature(init).parameters:
            @functools.wraps(init)
            def __init__(self, *args, name=None, **kw):
                if name is not None:  # set first, so that Layer.__init__ does not make an auto name
                    self.name = _check_name(name)
                init(self, *args, **kw)

            sig = inspect.signature(init)
            params = list(sig.parameters.values())
            at = next((i for i, p in enumerate(params) if p.kind is p.VAR_KEYWORD), len(params))
            params.insert(at, inspect.Parameter("name", inspect.Parameter.KEYWORD_ONLY, default=None))
            __init__.__signature__ = sig.replace(parameters=params)
            cls.__init__ = __init__

    def __init__(self, name: str | None = None):
        self._params: dict[str, Parameter] = {}
        self._buffers: dict = {}
        self._config: dict = {}
        self.training = True
        self._trainable = True
        if name is not None:
            self.name = _check_name(name)
        elif not self.__dict__.get("name"):
            self.name = unique_name(_snake_case(type(self).__name__))

    # What forward caches for backward; reading one before any forward is BackwardBeforeForward.
    _CACHED = frozenset({"_x", "_y", "_shape"})

    def __getattr__(self, name):
        if name in Layer._CACHED:
            raise BackwardBeforeForward(f"{type(self).__name__}.backward called before forward: there is no "
                                        f"forward pass to differentiate (call the layer on an input first)")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # --- the pass -------------------------------------------------------------------------------
    def forward(self, x, training: bool | None = None):
        raise NotImplementedError

    def backward(self, grad_out):
        raise NotImplementedError

    def __call__(self, x, training: bool | None = None):
        sym = next((t for t in x if hasattr(t, "_apply_layer")), None) if isinstance(x, (list, tuple)) else (
            x if hasattr(x, "_apply_layer") else None)
        if sym is not None:  # a symbolic tensor: record a graph node (nn.graph)
            return sym._apply_layer(self, x)
        return self.forward(x, training)

    def release_cache(self):
        """Drop what forward kept for backward (the attributes in _cache_attrs, in this layer and
        its children): an inference pass calls it once a layer's output has been computed."""
        for attr in self._cache_attrs:
            if attr in self.__dict__:
                self.__dict__[attr] = None
        for child in self.children():
            child.release_cache()

    # --- the functional graph -----------------------------------------------------------------
    def _only_node(self, what: str):
        nodes = self.__dict__.get("_inbound_nodes") or []
        if len(nodes) != 1:
            raise ValueError(f"layer {self.name!r} has been called on symbolic tensors {len(nodes)} times, so "
                             f"it has no single {what}" + ("; use the tensor each call returned" if nodes else
                                                           " (call it on nn.Input or a layer's output first)"))
        return nodes[0]

    @property
    def output(self):
        """The symbolic output of this layer's one call in a functional graph (a list for a layer
        with several outputs); an error if it was called on symbolic tensors never or more than once."""
        outs = self._only_node("output").outputs
        return outs[0] if len(outs) == 1 else list(outs)

    @property
    def input(self):
        """The symbolic input(s) of this layer's one call in a functional graph."""
        node = self._only_node("input")
        return list(node.inputs) if node.multi_input else node.inputs[0]

    def _is_training(self, training):
        return self.training if training is None else bool(training)

    # --- parameters -----------------------------------------------------------------------------
    def children(self) -> list[Layer]:
        return []

    def named_parameters(self, prefix: str = ""):
        for name, p in self._params.items():
            yield prefix + name, p
        for i, child in enumerate(self.children()):
            yield from child.named_parameters(f"{prefix}{i}.")

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def named_buffers(self, prefix: str = ""):
        """(qualified name, owning layer, buffer name) for every buffer, children included, in a
        fixed order (the owner is returned so that loading can replace the array)."""
        for name in self._buffers:
            yield prefix + name, self, name
        for i, child in enumerate(self.children()):
            yield from child.named_buffers(f"{prefix}{i}.")

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.size for p in self.parameters() if p.trainable or not trainable_only)

    def zero_grad(self):
        for p in self.parameters():
            p.grad = None

    def _set_grad(self, name, grad):
        p = self._params[name]
        p.grad = grad if p.trainable else None

    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool):
        self._trainable = bool(value)
        for p in self._params.values():
            p.trainable = self._trainable
        for child in self.children():
            child.trainable = value

    def freeze(self):
        self.trainable = False
        return self

    def unfreeze(self):
        self.trainable = True
        return self

    # --- modes and devices ----------------------------------------------------------------------
    def train(self, mode: bool = True):
        self.training = bool(mode)
        for child in self.children():
            child.train(mode)
        return self

    def eval(self):
        return self.train(False)

    def to(self, device: str):
        for p in self.parameters():
            p.data = to_device(p.data, device)
            p.grad = None
        for _, owner, name in self.named_buffers():
            owner._buffers[name] = to_device(owner._buffers[name], device)
        return self

    # --- description ----------------------------------------------------------------------------
    def get_config(self) -> dict:
        return dict(self._config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self._config.items())
        return f"{type(self).__name__}({args})"

    def describe(self, width: int = 44) -> str:
        """A one-line description for summary(): the class and its non-default-looking settings."""
        def fmt(v):
            if isinstance(v, tuple) and len(set(v)) == 1:
                v = v[0]
            return str(v).replace(" ", "")
        args = ", ".join(f"{k}={fmt(v)}" for k, v in self.get_config().items()
                         if v not in (None, False) and k not in ("bias",) and fmt(v) not in ("0", "1") or
                         k in ("in_features", "out_features", "in_channels", "out_channels"))
        text = f"{type(self).__name__}({args})"
        return text if len(text) <= width else text[:width - 3] + "..."


class _Weighted(Layer):
    """Linear / Conv: a weight (+ optional bias) made by an initialiser."""

    def _make_params(self, w_shape, out, bias, init, rng):
        rng = _init.as_generator(rng)
        self._params["weight"] = Parameter(np.ascontiguousarray(_init.get(init)(w_shape, rng), np.float32),
                                           "weight")
        if bias:
            self._params["bias"] = Parameter(np.zeros(out, np.float32), "bias")

    @property
    def weight(self) -> Parameter:
        return self._params["weight"]

    @property
    def bias(self) -> Parameter | None:
        return self._params.get("bias")

    def _b(self):
        b = self._params.get("bias")
        return None if b is None else b.data

    def describe(self, width: int = 44) -> str:
        c = self.get_config()
        ins, outs = (c["in_features"], c["out_features"]) if "in_features" in c else (c["in_channels"], c["out_channels"])
        parts = [f"{ins}->{outs}"]
        for key in ("kernel_size", "stride", "padding", "dilation", "groups", "padding_mode"):
            if key in c:
                v = c[key]
                v = "x".join(map(str, v)) if isinstance(v, tuple) and len(set(v)) > 1 else (v[0] if isinstance(v, tuple) else v)
                if key == "kernel_size" or v != (0 if key == "padding" else 1):
                    parts.append(f"{'k' if key == 'kernel_size' else key}={v}")
        if not c.get("bias", True):
            parts.append("no bias")
        return f"{type(self).__name__}({', '.join(parts)})"[:width]


def _channels(in_channels, out_channels, groups):
    cin = as_size(in_channels, "in_channels", minimum=1)
    cout = as_size(out_channels, "out_channels", minimum=1)
    g = as_size(groups, "groups", minimum=1)
    if cin % g or cout % g:
        raise ValueError(f"groups={g} must divide in_channels={cin} and out_channels={cout}")
    return cin, cout, g


def _single(v, name, minimum):
    """Conv1d's sizes: an int or a 1-tuple."""
    if isinstance(v, (tuple, list)):
        if len(v) != 1:
            raise ValueError(f"{name} must be an int or a 1-tuple, got {v!r}")
        v = v[0]
    return as_size(v, name, minimum)


def _check_weight_size(shape):
    n = 1
    for d in shape:
        n *= d
    if n > _MAX_WEIGHT_ELEMENTS:
        raise ValueError(f"the weight tensor {tuple(shape)} would hold {n} elements, more than the "
                         f"{_MAX_WEIGHT_ELEMENTS} (2**48) fastlayers supports")


class Linear(_Weighted):
    """y = x·Wᵀ + b; W (out, in) as PyTorch; x (..., in)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, init="lecun_uniform", rng=None):
        super().__init__()
        self.in_features = as_size(in_features, "in_features", minimum=1)
        self.out_features = as_size(out_features, "out_features", minimum=1)
        bias = as_flag(bias, "bias")
        _check_weight_size((self.out_features, self.in_features))
        self._config = dict(in_features=self.in_features, out_features=self.out_features, bias=bool(bias))
        self._make_params((self.out_features, self.in_features), self.out_features, bias, init, rng)

    def forward(self, x, training=None):
        x = as_input(x)
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(f"Linear: input's last dimension must be in_features={self.in_features}, "
                             f"got input shape {tuple(x.shape)}")
        self._x = x
        return F.linear(x, self.weight.data, self._b())

    def backward(self, grad_out):
        gx, gw, gb = F.linear_backward(grad_out, self._x, self.weight.data, with_bias=self.bias is not None)
        self._set_grad("weight", gw)
        if self.bias is not None:
            self._set_grad("bias", gb)
        return gx


class Conv2d(_Weighted):
    """2-D convolution over NCHW input; weight (K, C/groups, R, S).

    `backward(grad_out, need_input_grad=False)` skips the backward-data pass and returns None:
    Sequential asks that of its first layer in training, where nothing uses the data's gradient.
    Setting the attribute `need_input_grad = False` makes it the default for this layer."""

    need_input_grad = True

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", init="lecun_uniform", rng=None):
        super().__init__()
        self.in_channels, self.out_channels, self.groups = _channels(in_channels, out_channels, groups)
        self.kernel_size = _pair(kernel_size, "kernel_size", minimum=1)
        self.stride, self.dilation = _pair(stride, "stride", 1), _pair(dilation, "dilation", 1)
        self.padding = _conv_padding(padding, self.stride, padding_mode, lambda v: _pair(v, "padding", 0))
        self.padding_mode = padding_mode
        bias = as_flag(bias, "bias")
        self._config = dict(in_channels=self.in_channels, out_channels=self.out_channels,
                            kernel_size=self.kernel_size, stride=self.stride, padding=self.padding,
                            dilation=self.dilation, groups=self.groups, bias=bool(bias))
        if padding_mode != "zeros":
            self._config["padding_mode"] = padding_mode
        shape = (self.out_channels, self.in_channels // self.groups) + self.kernel_size
        _check_weight_size(shape)
        self._make_params(shape, self.out_channels, bias, init, rng)

    def _geometry(self):
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups,
                    padding_mode=self.padding_mode)

    def forward(self, x, training=None):
        x = as_input(x)
        if x.ndim not in (3, 4) or x.shape[-3] != self.in_channels:
            raise ValueError(f"Conv2d: input must be (N, {self.in_channels}, H, W) or ({self.in_channels}, H, W), "
                             f"got {tuple(x.shape)}")
        self._x = x
        return F.conv2d(x, self.weight.data, self._b(), **self._geometry())

    def backward(self, grad_out, need_input_grad=None):
        need = self.need_input_grad if need_input_grad is None else need_input_grad
        gx, gw, gb = F.conv2d_backward(grad_out, self._x, self.weight.data, **self._geometry(),
                                       need_grad_x=need)
        self._set_grad("weight", gw)
        if self.bias is not None:
            self._set_grad("bias", gb)
        return gx


class Conv1d(_Weighted):
    """1-D convolution over (N, C, L) input; weight (K, C/groups, S). `need_input_grad` as Conv2d."""

    need_input_grad = True

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding=0,
                 dilation: int = 1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 init="lecun_uniform", rng=None):
        super().__init__()
        self.in_channels, self.out_channels, self.groups = _channels(in_channels, out_channels, groups)
        self.kernel_size, self.stride, self.dilation = (
            _single(kernel_size, "kernel_size", 1), _single(stride, "stride", 1), _single(dilation, "dilation", 1))
        self.padding = _conv_padding(padding, self.stride, padding_mode, lambda v: _single(v, "padding", 0))
        self.padding_mode = padding_mode
        bias = as_flag(bias, "bias")
        self._config = dict(in_channels=self.in_channels, out_channels=self.out_channels,
                            kernel_size=self.kernel_size, stride=self.stride, padding=self.padding,
                            dilation=self.dilation, groups=self.groups, bias=bool(bias))
        if padding_mode != "zeros":
            self._config["padding_mode"] = padding_mode
        shape = (self.out_channels, self.in_channels // self.groups, self.kernel_size)
        _check_weight_size(shape)
        self._make_params(shape, self.out_channels, bias, init, rng)

    def _geometry(self):
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups,
                    padding_mode=self.padding_mode)

    def forward(self, x, training=None):
        x = as_input(x)
        if x.ndim not in (2, 3) or x.shape[-2] != self.in_channels:
            raise ValueError(f"Conv1d: input must be (N, {self.in_channels}, L) or ({self.in_channels}, L), "
                             f"got {tuple(x.shape)}")
        self._x = x
        return F.conv1d(x, self.weight.data, self._b(), **self._geometry())

    def backward(self, grad_out, need_input_grad=None):
        need = self.need_input_grad if need_input_grad is None else need_input_grad
        gx, gw, gb = F.conv1d_backward(grad_out, self._x, self.weight.data, **self._geometry(),
                                       need_grad_x=need)
        self._set_grad("weight", gw)
        if self.bias is not None:
            self._set_grad("bias", gb)
        return gx


def _pool_size(v, name, default=None):
    """A pooling layer's int-or-pair argument as the op checks it (a float or bool is a TypeError),
    refused at construction when out of range: kernel_size, stride and dilation >= 1, padding >= 0
    (PyTorch waits for the first forward)."""
    from ..ops.pool import _size2

    pair = _size2(v, name, default)
    low = 0 if name == "padding" else 1
    if min(pair) < low:
        raise ValueError(f"{name} must be {'non-negative' if low == 0 else 'positive'}, got {v!r}")
    return pair


def _flag(v, name):
    from ..ops.pool import _flag as check

    return check(v, name)


class MaxPool2d(Layer):
    """torch.nn.MaxPool2d: max over each window; (N, C, H, W) or unbatched (C, H, W).

    With return_indices=True the layer returns (y, indices) as PyTorch (for MaxUnpool2d in a graph);
    in a Sequential keep it False. Backward: when the windows tile the input (stride == kernel_size,
    no padding or dilation: the 2x2/2 of most CNNs) the winners are recomputed from the saved input,
    one pass that costs less than writing and reading int64 indices; for any other geometry the
    training forward keeps the indices and the backward is a scatter (CPU) or gather (GPU) with no
    argmax (measured: benchmarks/pool_tune.py)."""

    _cache_attrs = ("_x", "_y", "_indices")

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices: bool = False,
                 ceil_mode: bool = False):
        super().__init__()
        self.kernel_size = _pool_size(kernel_size, "kernel_size")
        self.stride = _pool_size(stride, "stride", self.kernel_size)
        self.padding = _pool_size(padding, "padding")
        self.dilation = _pool_size(dilation, "dilation")
        self.return_indices = _flag(return_indices, "return_indices")
        self.ceil_mode = _flag(ceil_mode, "ceil_mode")
        self._config = dict(kernel_size=self.kernel_size, stride=self.stride, padding=self.padding,
                            dilation=self.dilation, return_indices=self.return_indices, ceil_mode=self.ceil_mode)
        self._indices = None

    def _geometry(self):
        return (self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)

    def _tiled(self) -> bool:
        return (self.stride == self.kernel_size and self.padding == (0, 0) and self.dilation == (1, 1))

    def forward(self, x, training=None):
        self._x = x
        keep = self.return_indices or (self._is_training(training) and not self._tiled())
        if not keep:
            self._indices = None
            return F.max_pool2d(x, *self._geometry())
        y, self._indices = F.max_pool2d(x, *self._geometry(), return_indices=True)
        return (y, self._indices) if self.return_indices else y

    def backward(self, grad_out):
        return F.max_pool2d_backward(grad_out, self._x, *self._geometry(), indices=self._indices)


class AvgPool2d(Layer):
    """torch.nn.AvgPool2d: the mean over each window with PyTorch's divisor rules."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True,
                 divisor_override=None):
        super().__init__()
        self.kernel_size = _pool_size(kernel_size, "kernel_size")
        self.stride = _pool_size(stride, "stride", self.kernel_size)
        self.padding = _pool_size(padding, "padding")
        self.ceil_mode = _flag(ceil_mode, "ceil_mode")
        self.count_include_pad = _flag(count_include_pad, "count_include_pad")
        from ..ops.pool import _check_divisor

        _check_divisor(divisor_override)
        self.divisor_override = None if divisor_override is None else int(divisor_override)
        self._config = dict(kernel_size=self.kernel_size, stride=self.stride, padding=self.padding,
                            ceil_mode=self.ceil_mode, count_include_pad=self.count_include_pad,
                            divisor_override=self.divisor_override)

    def _options(self):
        return (self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad,
                self.divisor_override)

    def forward(self, x, training=None):
        self._x = x
        return F.avg_pool2d(x, *self._options())

    def backward(self, grad_out):
        return F.avg_pool2d_backward(grad_out, self._x, *self._options())


class LpPool2d(Layer):
    """torch.nn.LPPool2d: (F * sum |x|^p)^(1/p) over each window, p = norm_type (see lp_pool2d).
    `padding` (keyword) is a fastlayers extension; `p=` is accepted for norm_type (older saved models)."""

    def __init__(self, norm_type=None, kernel_size=None, stride=None, ceil_mode: bool = False, *, padding=0, p=None):
        super().__init__()
        from ..ops.pool import _check_norm_type

        if norm_type is None and p is None:
            raise TypeError("LpPool2d needs norm_type (the p of the p-norm), got None")
        if norm_type is not None and p is not None:
            raise TypeError(f"LpPool2d takes norm_type or p (its old name), not both: got {norm_type!r} and {p!r}")
        self.norm_type = _check_norm_type(norm_type, "norm_type") if p is None else _check_norm_type(p, "p")
        self.kernel_size = _pool_size(kernel_size, "kernel_size")
        self.stride = _pool_size(stride, "stride", self.kernel_size)
        self.ceil_mode = _flag(ceil_mode, "ceil_mode")
        self.padding = _pool_size(padding, "padding")
        self._config = dict(norm_type=self.norm_type, kernel_size=self.kernel_size, stride=self.stride,
                            ceil_mode=self.ceil_mode, padding=self.padding)

    @property
    def p(self) -> float:
        return self.norm_type

    def forward(self, x, training=None):
        self._x = x
        return F.lp_pool2d(x, self.norm_type, self.kernel_size, self.stride, self.ceil_mode, padding=self.padding)

    def backward(self, grad_out):
        return F.lp_pool2d_backward(grad_out, self._x, self.norm_type, self.kernel_size, self.stride, self.ceil_mode,
                                    padding=self.padding)


LPPool2d = LpPool2d  # PyTorch's spelling


def _output_size(v):
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"output_size must be an int or a pair (None keeps the input size), got {v!r}")
        from .._checks import as_int

        return tuple(None if e is None else as_int(e, "output_size") for e in v)
    from .._checks import as_int

    return as_int(v, "output_size")


class AdaptiveAvgPool2d(Layer):
    """torch.nn.AdaptiveAvgPool2d: the mean over PyTorch's adaptive windows to output_size ((1, 1):
    global average pooling, its fast kernel)."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = _output_size(output_size)
        self._config = dict(output_size=self.output_size)

    def forward(self, x, training=None):
        self._x = x
        return F.adaptive_avg_pool2d(x, self.output_size)

    def backward(self, grad_out):
        return F.adaptive_avg_pool2d_backward(grad_out, self._x, self.output_size)


class AdaptiveMaxPool2d(Layer):
    """torch.nn.AdaptiveMaxPool2d; return_indices as MaxPool2d. The training forward keeps the indices
    (adaptive windows may overlap; the backward is then a scatter/gather with no argmax)."""

    _cache_attrs = ("_x", "_y", "_indices")

    def __init__(self, output_size, return_indices: bool = False):
        super().__init__()
        self.output_size = _output_size(output_size)
        self.return_indices = _flag(return_indices, "return_indices")
        self._config = dict(output_size=self.output_size, return_indices=self.return_indices)
        self._indices = None

    def forward(self, x, training=None):
        self._x = x
        keep = self.return_indices or self._is_training(training)
        if not keep:
            self._indices = None
            return F.adaptive_max_pool2d(x, self.output_size)
        y, self._indices = F.adaptive_max_pool2d(x, self.output_size, return_indices=True)
        return (y, self._indices) if self.return_indices else y

    def backward(self, grad_out):
        return F.adaptive_max_pool2d_backward(grad_out, self._x, self.output_size, indices=self._indices)


class MaxUnpool2d(Layer):
    """torch.nn.MaxUnpool2d: `layer(x, indices, output_size=None)` places x at the indices a
    MaxPool2d(return_indices=True) gave (output_size: (H, W) or (N, C, H, W)). It takes two inputs,
    so it belongs in a graph model or hand-written code, not in a Sequential. backward(grad_out)
    returns the gradient for x (the indices have none)."""

    _cache_attrs = ("_x", "_ind", "_output_size")

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = _pool_size(kernel_size, "kernel_size")
        self.stride = _pool_size(stride, "stride", self.kernel_size)
        self.padding = _pool_size(padding, "padding")
        self._config = dict(kernel_size=self.kernel_size, stride=self.stride, padding=self.padding)

    def __call__(self, x, indices=None, output_size=None, training=None):
        return self.forward(x, indices, output_size, training)

    def forward(self, x, indices=None, output_size=None, training=None):
        if indices is None:
            raise TypeError("MaxUnpool2d needs the indices of the MaxPool2d it inverts: layer(x, indices)")
        self._x, self._ind, self._output_size = x, indices, output_size
        return F.max_unpool2d(x, indices, self.kernel_size, self.stride, self.padding, output_size)

    def backward(self, grad_out):
        return F.max_unpool2d_backward(grad_out, self._x, self._ind, self.kernel_size, self.stride, self.padding,
                                       self._output_size)


class GlobalAvgPool2d(Layer):
    """(N, C, H, W) -> (N, C): the mean over H and W."""

    def forward(self, x, training=None):
        self._x = x
        return F.global_avg_pool2d(x)

    def backward(self, grad_out):
        return F.global_avg_pool2d_backward(grad_out, self._x)


class Flatten(Layer):
    """(N, ...) -> (N, prod(...))."""

    def forward(self, x, training=None):
        x = as_input(x)
        if x.ndim < 1:
            raise ValueError("Flatten: x must have a batch dimension (N, ...), got a 0-D array")
        self._shape = tuple(x.shape)
        n = 1
        for d in x.shape[1:]:
            n *= int(d)
        return x.reshape(x.shape[0], n)  # not -1: that fails for N = 0

    def backward(self, grad_out):
        shape = self._shape
        grad_out = as_input(grad_out, "grad_out")
        n = 1
        for d in shape:
            n *= d
        if grad_out.size != n or grad_out.ndim < 1 or (len(shape) and grad_out.shape[0] != shape[0]):
            raise ValueError(f"Flatten.backward: grad_out must have the forward output's shape "
                             f"({shape[0] if shape else 1}, {n // max(shape[0], 1) if shape else 1}), "
                             f"got {tuple(grad_out.shape)}")
        return grad_out.reshape(shape)


class ReLU(Layer):
    # Keeps its output, not its input: y > 0 exactly where x > 0, so the gradient is the same, and
    # the next layer (a conv) usually keeps y anyway; the input can then be freed after forward.
    def forward(self, x, training=None):
        self._y = F.relu(x)
        return self._y

    def backward(self, grad_out):
        return F.relu_backward(grad_out, self._y)


class LeakyReLU(Layer):
    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = as_real(negative_slope, "negative_slope")
        self._config = dict(negative_slope=self.negative_slope)

    def forward(self, x, training=None):
        self._x = x
        return F.leaky_relu(x, self.negative_slope)

    def backward(self, grad_out):
        return F.leaky_relu_backward(grad_out, self._x, self.negative_slope)


class Sigmoid(Layer):
    def forward(self, x, training=None):
        self._y = F.sigmoid(x)
        return self._y

    def backward(self, grad_out):
        return F.sigmoid_backward(grad_out, self._y)


class Tanh(Layer):
    def forward(self, x, training=None):
        self._y = F.tanh(x)
        return self._y

    def backward(self, grad_out):
        return F.tanh_backward(grad_out, self._y)


class Softmax(Layer):
    """Softmax along `axis`. For training a classifier prefer raw logits + SoftmaxCrossEntropyLoss."""

    def __init__(self, axis: int = -1):
        super().__init__()
        self.axis = as_size(axis, "axis", minimum=None)
        self._config = dict(axis=self.axis)

    def forward(self, x, training=None):
        self._y = F.softmax(x, self.axis)
        return self._y

    def backward(self, grad_out):
        return F.softmax_backward(grad_out, self._y, self.axis)


class Dropout(Layer):
    """Inverted dropout with a Philox mask that is a pure function of (seed, element index).

    Every training forward uses the current seed and then advances it, so successive batches get
    different masks; backward regenerates the mask of the last forward from that forward's seed.
    In eval mode (or p = 0) it is the identity."""

    def __init__(self, p: float = 0.5, seed: int = 0):
        super().__init__()
        self.p = as_real(p, "p", 0.0, 1.0, hi_open=True)
        if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**64:
            raise (ValueError if isinstance(seed, (int, np.integer)) and not isinstance(seed, (bool, np.bool_))
                   else TypeError)(f"seed must be an int in [0, 2**64), got {type(seed).__name__} {seed!r}")
        self.seed = int(seed)
        self._config = dict(p=self.p, seed=self.seed)
        self._used_seed = None

    def get_config(self):
        return dict(p=self.p, seed=self.seed)  # the current seed, so a reloaded model continues the stream

    def forward(self, x, training=None):
        x = as_input(x)
        if not self._is_training(training) or self.p == 0:
            self._used_seed = None
            return x
        self._used_seed = self.seed
        self.seed = (self.seed + 1) % 2**64
        self._out_shape = tuple(x.shape)
        return F.dropout(x, self.p, seed=self._used_seed, training=True)

    def backward(self, grad_out):
        if self._used_seed is None:
            return grad_out
        grad_out = as_input(grad_out, "grad_out")
        if tuple(grad_out.shape) != self._out_shape:  # the mask is per element of the forward's output
            raise ValueError(f"Dropout.backward: grad_out must have the forward output's shape {self._out_shape}, "
                             f"got {tuple(grad_out.shape)}")
        return F.dropout_backward(grad_out, self.p, seed=self._used_seed)


class Residual(Layer):
    """y = body(x) + shortcut(x); shortcut is the identity, or a 1x1 Conv2d projection (no bias) when
    in_channels != out_channels or stride != 1 (or an explicit `projection` layer)."""

    def __init__(self, body, in_channels: int | None = None, out_channels: int | None = None, stride=1,
                 projection: Layer | None = None, rng=None):
        super().__init__()
        from .sequential import Sequential  # the body may be a list of layers

        self.body = body if isinstance(body, Layer) else Sequential(list(body))
        stride = _pair(stride, "stride", 1)
        if projection is not None and not isinstance(projection, Layer):
            raise TypeError(f"projection must be a Layer or None, got {type(projection).__name__}")
        if projection is None and in_channels is not None and out_channels is not None and (
                in_channels != out_channels or stride != (1, 1)):
            projection = Conv2d(in_channels, out_channels, 1, stride=stride, bias=False, rng=rng)
        self.projection = projection
        self._config = dict(in_channels=in_channels, out_channels=out_channels, stride=stride)

    def children(self):
        return [self.body] + ([self.projection] if self.projection is not None else [])

    def describe(self, width: int = 44) -> str:
        n = len(self.body.layers) if hasattr(self.body, "layers") else 1
        skip = "1x1 projection" if self.projection is not None else "identity"
        return f"Residual({n} layers + {skip})"[:width]

    def forward(self, x, training=None):
        training = self._is_training(training)
        fx = self.body.forward(x, training)
        skip = x if self.projection is None else self.projection.forward(x, training)
        if tuple(fx.shape) != tuple(skip.shape):
            raise ValueError(f"Residual: body output {tuple(fx.shape)} and shortcut {tuple(skip.shape)} differ; "
                             f"give in_channels/out_channels/stride so a projection is made")
        return F.add(fx, skip)

    def backward(self, grad_out):
        # Both branches read grad_out as it is: a layer's backward never writes into the gradient
        # it is given, so the two copies add_backward would make (one per branch) are not needed.
        gx = self.body.backward(grad_out)
        g_skip = grad_out if self.projection is None else self.projection.backward(grad_out)
        return F.add(gx, g_skip)


class LogSoftmax(Layer):
    """log_softmax along `axis` (torch.nn.LogSoftmax(dim)): the log-probabilities that NLLLoss takes.
    For training a classifier, raw logits + CrossEntropyLoss is the same loss, fused."""

    def __init__(self, axis: int = -1):
        super().__init__()
        self.axis = as_size(axis, "axis", minimum=None)
        self._config = dict(axis=self.axis)

    def forward(self, x, training=None):
        self._y = F.log_softmax(x, self.axis)
        return self._y

    def backward(self, grad_out):
        return F.log_softmax_backward(grad_out, self._y, self.axis)


class Upsample(Layer):
    """torch.nn.Upsample: interpolate (N, C, H, W) or (N, C, L) input to `size` or by `scale_factor`,
    mode "nearest", "bilinear" (4-D) or "linear" (3-D); align_corners as fastlayers.interpolate."""

    def __init__(self, size=None, scale_factor=None, mode: str = "nearest", align_corners=None,
                 recompute_scale_factor=None):
        super().__init__()
        if mode not in ("nearest", "linear", "bilinear"):
            raise ValueError(f"mode must be 'nearest', 'linear' or 'bilinear', got {mode!r}")
        if mode == "nearest" and align_corners is not None:
            raise ValueError("align_corners option can only be set with the interpolating modes: linear | bilinear "
                             f"(mode='nearest' takes align_corners=None), got align_corners={align_corners!r}")
        if (size is None) == (scale_factor is None):
            raise ValueError(f"give exactly one of size and scale_factor, got size={size!r}, "
                             f"scale_factor={scale_factor!r}")
        self.size = tuple(size) if isinstance(size, (list, tuple)) else size
        self.scale_factor = tuple(scale_factor) if isinstance(scale_factor, (list, tuple)) else scale_factor
        self.mode, self.align_corners, self.recompute_scale_factor = mode, align_corners, recompute_scale_factor
        self._config = dict(size=self.size, scale_factor=self.scale_factor, mode=mode)
        if align_corners is not None:
            self._config["align_corners"] = align_corners
        if recompute_scale_factor is not None:
            self._config["recompute_scale_factor"] = recompute_scale_factor

    def _args(self):
        return dict(size=self.size, scale_factor=self.scale_factor, mode=self.mode, align_corners=self.align_corners,
                    recompute_scale_factor=self.recompute_scale_factor)

    def forward(self, x, training=None):
        self._x = x
        return F.interpolate(x, **self._args())

    def backward(self, grad_out):
        return F.interpolate_backward(grad_out, self._x, **self._args())


# ---- transposed and 3-D convolution, 3-D pooling (PyTorch's constructor arguments) -----------------

def _ntuple(v, n, name, minimum=0):
    """An int or a sequence of n ints, each >= minimum (floats, bools and strings refused)."""
    if isinstance(v, (tuple, list)):
        if len(v) != n:
            raise ValueError(f"{name} must be an int or a sequence of {n} ints, got {v!r}")
        return tuple(as_size(i, name, minimum) for i in v)
    return (as_size(v, name, minimum),) * n


def _zeros_padding_only(padding_mode):
    if padding_mode != "zeros":
        raise ValueError(f"padding_mode must be 'zeros' (the only mode of this layer), got {padding_mode!r}")


class ConvTranspose2d(_Weighted):
    """Transposed 2-D convolution over NCHW (or unbatched CHW) input; weight (C_in, C_out/groups, R, S)
    as PyTorch. `need_input_grad` as Conv2d."""

    need_input_grad = True

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, output_padding=0,
                 groups: int = 1, bias: bool = True, dilation=1, padding_mode: str = "zeros", init="lecun_uniform",
                 rng=None):
        super().__init__()
        _zeros_padding_only(padding_mode)
        self.in_channels, self.out_channels, self.groups = _channels(in_channels, out_channels, groups)
        self.kernel_size = _pair(kernel_size, "kernel_size", minimum=1)
        self.stride, self.padding = _pair(stride, "stride", 1), _pair(padding, "padding", 0)
        self.output_padding, self.dilation = _pair(output_padding, "output_padding", 0), _pair(dilation, "dilation", 1)
        bias = as_flag(bias, "bias")
        if any(op >= max(st, d) for op, st, d in zip(self.output_padding, self.stride, self.dilation)):
            raise ValueError(f"output_padding must be smaller than either stride or dilation, got "
                             f"output_padding={self.output_padding}, stride={self.stride}, dilation={self.dilation}")
        self._config = dict(in_channels=self.in_channels, out_channels=self.out_channels,
                            kernel_size=self.kernel_size, stride=self.stride, padding=self.padding,
                            output_padding=self.output_padding, groups=self.groups, bias=bool(bias),
                            dilation=self.dilation)
        shape = (self.in_channels, self.out_channels // self.groups) + self.kernel_size
        _check_weight_size(shape)
        self._make_params(shape, self.out_channels, bias, init, rng)

    def _geometry(self):
        return dict(stride=self.stride, padding=self.padding, output_padding=self.output_padding, groups=self.groups,
                    dilation=self.dilation)

    def describe(self, width: int = 44) -> str:
        # Short keys: the class name is long and output_padding matters (it sets the output size).
        def fmt(v):
            return str(v[0]) if len(set(v)) == 1 else "x".join(map(str, v))
        parts = [f"{self.in_channels}->{self.out_channels}", f"k={fmt(self.kernel_size)}"]
        for key, v, default in (("s", self.stride, 1), ("p", self.padding, 0), ("op", self.output_padding, 0),
                                ("d", self.dilation, 1)):
            if v != (default, default):
                parts.append(f"{key}={fmt(v)}")
        if self.groups != 1:
            parts.append(f"g={self.groups}")
        if self.bias is None:
            parts.append("no bias")
        return f"ConvTranspose2d({', '.join(parts)})"[:width]

    def forward(self, x, training=None):
        x = as_input(x)
        if x.ndim not in (3, 4) or x.shape[-3] != self.in_channels:
            raise ValueError(f"ConvTranspose2d: input must be (N, {self.in_channels}, H, W) or unbatched "
                             f"({self.in_channels}, H, W), got {tuple(x.shape)}")
        self._x = x
        return F.conv_transpose2d(x, self.weight.data, self._b(), **self._geometry())

    def backward(self, grad_out, need_input_grad=None):
        need = self.need_input_grad if need_input_grad is None else need_input_grad
        gx, gw, gb = F.conv_transpose2d_backward(grad_out, self._x, self.weight.data, **self._geometry(),
                                                 need_grad_x=need)
        self._set_grad("weight", gw)
        if self.bias is not None:
            self._set_grad("bias", gb)
        return gx


class Conv3d(_Weighted):
    """3-D convolution over NCDHW (or unbatched CDHW) input; weight (K, C/groups, T, R, S).
    `need_input_grad` as Conv2d."""

    need_input_grad = True

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", init="lecun_uniform", rng=None):
        super().__init__()
        _zeros_padding_only(padding_mode)
        self.in_channels, self.out_channels, self.groups = _channels(in_channels, out_channels, groups)
        self.kernel_size = _ntuple(kernel_size, 3, "kernel_size", 1)
        self.stride, self.padding = _ntuple(stride, 3, "stride", 1), _ntuple(padding, 3, "padding", 0)
        self.dilation = _ntuple(dilation, 3, "dilation", 1)
        bias = as_flag(bias, "bias")
        self._config = dict(in_channels=self.in_channels, out_channels=self.out_channels,
                            kernel_size=self.kernel_size, stride=self.stride, padding=self.padding,
                            dilation=self.dilation, groups=self.groups, bias=bool(bias))
        shape = (self.out_channels, self.in_channels // self.groups) + self.kernel_size
        _check_weight_size(shape)
        self._make_params(shape, self.out_channels, bias, init, rng)

    def _geometry(self):
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups)

    def forward(self, x, training=None):
        x = as_input(x)
        if x.ndim not in (4, 5) or x.shape[-4] != self.in_channels:
            raise ValueError(f"Conv3d: input must be (N, {self.in_channels}, D, H, W) or unbatched "
                             f"({self.in_channels}, D, H, W), got {tuple(x.shape)}")
        self._x = x
        return F.conv3d(x, self.weight.data, self._b(), **self._geometry())

    def backward(self, grad_out, need_input_grad=None):
        need = self.need_input_grad if need_input_grad is None else need_input_grad
        gx, gw, gb = F.conv3d_backward(grad_out, self._x, self.weight.data, **self._geometry(), need_grad_x=need)
        self._set_grad("weight", gw)
        if self.bias is not None:
            self._set_grad("bias", gb)
        return gx


class MaxPool3d(Layer):
    """Max over 3-D windows. With return_indices=True, forward returns (y, indices) as PyTorch's
    layer does, and backward takes the gradient of y."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices: bool = False,
                 ceil_mode: bool = False):
        super().__init__()
        self.kernel_size = _ntuple(kernel_size, 3, "kernel_size", 1)
        self.stride = self.kernel_size if stride is None else _ntuple(stride, 3, "stride", 1)
        self.padding, self.dilation = _ntuple(padding, 3, "padding", 0), _ntuple(dilation, 3, "dilation", 1)
        self.return_indices, self.ceil_mode = as_flag(return_indices, "return_indices"), as_flag(ceil_mode, "ceil_mode")
        self._config = dict(kernel_size=self.kernel_size, stride=self.stride, padding=self.padding,
                            dilation=self.dilation, return_indices=self.return_indices, ceil_mode=self.ceil_mode)

    def _args(self):
        return dict(kernel_size=self.kernel_size, stride=self.stride, padding=self.padding, dilation=self.dilation,
                    ceil_mode=self.ceil_mode)

    def forward(self, x, training=None):
        self._x = x
        return F.max_pool3d(x, **self._args(), return_indices=self.return_indices)

    def backward(self, grad_out):
        return F.max_pool3d_backward(grad_out, self._x, **self._args())


class AvgPool3d(Layer):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True,
                 divisor_override=None):
        super().__init__()
        self.kernel_size = _ntuple(kernel_size, 3, "kernel_size", 1)
        self.stride = self.kernel_size if stride is None else _ntuple(stride, 3, "stride", 1)
        self.padding = _ntuple(padding, 3, "padding", 0)
        self.ceil_mode = as_flag(ceil_mode, "ceil_mode")
        self.count_include_pad = as_flag(count_include_pad, "count_include_pad")
        if divisor_override is not None and as_size(divisor_override, "divisor_override", minimum=None) == 0:
            raise ValueError("divisor_override must be a non-zero int or None, got 0")
        self.divisor_override = None if divisor_override is None else int(divisor_override)
        self._config = dict(kernel_size=self.kernel_size, stride=self.stride, padding=self.padding,
                            ceil_mode=self.ceil_mode, count_include_pad=self.count_include_pad,
                            divisor_override=self.divisor_override)

    def _args(self):
        return dict(kernel_size=self.kernel_size, stride=self.stride, padding=self.padding, ceil_mode=self.ceil_mode,
                    count_include_pad=self.count_include_pad, divisor_override=self.divisor_override)

    def forward(self, x, training=None):
        self._x = x
        return F.avg_pool3d(x, **self._args())

    def backward(self, grad_out):
        return F.avg_pool3d_backward(grad_out, self._x, **self._args())


class _BatchNorm(Layer):
    """Batch normalisation over axis 1 (torch.nn.BatchNorm*d's behaviour and argument names).

    Training (and trainable): normalises with the batch's statistics and, with track_running_stats,
    updates the buffers running_mean / running_var in place (momentum: running = (1 - momentum) *
    running + momentum * batch value, unbiased variance; momentum=None: a cumulative average, factor
    1 / num_batches_tracked) and counts num_batches_tracked. Eval: normalises with the running
    statistics (with track_running_stats=False, with the batch's, as PyTorch).

    trainable = False puts the layer in eval mode whatever the model's mode: fit / forward(training=
    True) then normalise with the running statistics and leave them (and num_batches_tracked)
    untouched, weight and bias get no gradient, and backward is the eval-mode gradient. That is
    Keras's behaviour for a frozen BatchNormalization, the one fine-tuning wants; without running
    statistics (track_running_stats=False) only the affine parameters freeze.

    Parameters weight (ones) and bias (zeros) when affine; buffers running_mean (zeros), running_var
    (ones), num_batches_tracked (int64, shape (1,)) when track_running_stats.
    """

    _input_ndims: tuple = ()
    _layout = ""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True):
        super().__init__()
        num_features = as_size(num_features, "num_features", minimum=1)
        eps = as_real(eps, "eps", 0.0, math.inf, lo_open=True, finite=True)
        if momentum is not None:
            momentum = as_real(momentum, "momentum", 0.0, 1.0)
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = as_flag(affine, "affine"), as_flag(track_running_stats, "track_running_stats")
        self._config = dict(num_features=self.num_features, eps=self.eps, momentum=self.momentum,
                            affine=self.affine, track_running_stats=self.track_running_stats)
        c = self.num_features
        if self.affine:
            self._params["weight"] = Parameter(np.ones(c, np.float32), "weight")
            self._params["bias"] = Parameter(np.zeros(c, np.float32), "bias")
        if self.track_running_stats:
            self._buffers["running_mean"] = np.zeros(c, np.float32)
            self._buffers["running_var"] = np.ones(c, np.float32)
            self._buffers["num_batches_tracked"] = np.zeros(1, np.int64)
        self._batch_stats = True

    @property
    def weight(self) -> Parameter | None:
        return self._params.get("weight")

    @property
    def bias(self) -> Parameter | None:
        return self._params.get("bias")

    @property
    def running_mean(self):
        return self._buffers.get("running_mean")

    @property
    def running_var(self):
        return self._buffers.get("running_var")

    @property
    def num_batches_tracked(self) -> int:
        return int(self._buffers["num_batches_tracked"][0]) if self.track_running_stats else 0

    def describe(self, width: int = 44) -> str:
        parts = [str(self.num_features)]
        if self.eps != 1e-5:
            parts.append(f"eps={self.eps:g}")
        if self.momentum != 0.1:
            parts.append(f"momentum={self.momentum}")
        if not self.affine:
            parts.append("affine=False")
        if not self.track_running_stats:
            parts.append("track_running_stats=False")
        return f"{type(self).__name__}({', '.join(parts)})"[:width]

    def forward(self, x, training=None):
        x = as_input(x)
        if x.ndim not in self._input_ndims or x.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}: input must be {self._layout} with C = num_features = "
                             f"{self.num_features}, got {tuple(x.shape)}")
        tracking = self.track_running_stats
        # Batch statistics in (trainable) training, and always without running statistics.
        batch = (self._is_training(training) and self.trainable) or not tracking
        factor = 0.0
        if batch and tracking:
            count = self._buffers["num_batches_tracked"]
            count += 1
            factor = 1.0 / float(count[0]) if self.momentum is None else self.momentum
        self._x, self._batch_stats = x, batch
        w, b = self.weight, self.bias
        return F.batch_norm(x, self.running_mean if tracking else None, self.running_var if tracking else None,
                            None if w is None else w.data, None if b is None else b.data, training=batch,
                            momentum=factor, eps=self.eps)

    def backward(self, grad_out):
        w = None if self.weight is None else self.weight.data
        if self._batch_stats:
            gx, gw, gb = F.batch_norm_backward(grad_out, self._x, w, self.eps, training=True)
        else:
            gx, gw, gb = F.batch_norm_backward(grad_out, self._x, w, self.eps, training=False,
                                               running_mean=self.running_mean, running_var=self.running_var)
        if self.affine:
            self._set_grad("weight", gw)
            self._set_grad("bias", gb)
        return gx


class BatchNorm1d(_BatchNorm):
    """Batch norm over (N, C) or (N, C, L) input (after a Linear or a Conv1d); see _BatchNorm."""

    _input_ndims = (2, 3)
    _layout = "(N, C) or (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch norm over (N, C, H, W) input (after a Conv2d); see _BatchNorm."""

    _input_ndims = (4,)
    _layout = "(N, C, H, W)"


class BatchNorm3d(_BatchNorm):
    """Batch norm over (N, C, D, H, W) input; see _BatchNorm."""

    _input_ndims = (5,)
    _layout = "(N, C, D, H, W)"
