"""Layers: forward(x, training) caches what backward needs; backward(grad_out) returns the input
gradient and fills the layer's Parameter.grad. The code is array-module agnostic: NumPy arrays run
on the CPU kernels, CuPy arrays on the CUDA kernels, through the public ops (see _ops.F).

A layer with `trainable = False` keeps its weights (its parameters get no gradient and optimizers
skip them) but still passes the gradient on to its input, as transfer learning needs.
"""

from __future__ import annotations

import numpy as np

from .. import _backend
from . import init as _init
from ._ops import F

__all__ = ["Parameter", "Layer", "Linear", "Conv2d", "Conv1d", "MaxPool2d", "AvgPool2d", "LpPool2d",
           "GlobalAvgPool2d", "Flatten", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softmax", "Dropout",
           "Residual", "to_device", "BatchNorm1d", "BatchNorm2d", "BatchNorm3d"]


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


def _pair(v, name):
    if isinstance(v, (int, np.integer)):
        return (int(v), int(v))
    v = tuple(int(i) for i in v)
    if len(v) != 2:
        raise ValueError(f"{name} must be an int or a pair, got {v}")
    return v


class Layer:
    """Base class. Subclasses set self._params (name -> Parameter), self._config (constructor args)
    and, for state that is not trained but belongs to the model (batch-norm running statistics),
    self._buffers (name -> array): saved, loaded and moved by .to() like the parameters."""

    def __init__(self):
        self._params: dict[str, Parameter] = {}
        self._buffers: dict = {}
        self._config: dict = {}
        self.training = True
        self._trainable = True
        self.name = type(self).__name__

    # --- the pass -------------------------------------------------------------------------------
    def forward(self, x, training: bool | None = None):
        raise NotImplementedError

    def backward(self, grad_out):
        raise NotImplementedError

    def __call__(self, x, training: bool | None = None):
        return self.forward(x, training)

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
        for key in ("kernel_size", "stride", "padding", "dilation", "groups"):
            if key in c:
                v = c[key]
                v = "x".join(map(str, v)) if isinstance(v, tuple) and len(set(v)) > 1 else (v[0] if isinstance(v, tuple) else v)
                if key == "kernel_size" or v != (0 if key == "padding" else 1):
                    parts.append(f"{'k' if key == 'kernel_size' else key}={v}")
        if not c.get("bias", True):
            parts.append("no bias")
        return f"{type(self).__name__}({', '.join(parts)})"[:width]


class Linear(_Weighted):
    """y = x·Wᵀ + b; W (out, in) as PyTorch; x (..., in)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, init="lecun_uniform", rng=None):
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        if self.in_features < 1 or self.out_features < 1:
            raise ValueError(f"in_features and out_features must be >= 1, got {in_features}, {out_features}")
        self._config = dict(in_features=self.in_features, out_features=self.out_features, bias=bool(bias))
        self._make_params((self.out_features, self.in_features), self.out_features, bias, init, rng)

    def forward(self, x, training=None):
        if x.shape[-1] != self.in_features:
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
                 groups: int = 1, bias: bool = True, init="lecun_uniform", rng=None):
        super().__init__()
        self.in_channels, self.out_channels, self.groups = int(in_channels), int(out_channels), int(groups)
        if self.groups < 1 or self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"groups={groups} must divide in_channels={in_channels} and "
                             f"out_channels={out_channels}")
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride, self.padding, self.dilation = (_pair(stride, "stride"), _pair(padding, "padding"),
                                                    _pair(dilation, "dilation"))
        self._config = dict(in_channels=self.in_channels, out_channels=self.out_channels,
                            kernel_size=self.kernel_size, stride=self.stride, padding=self.padding,
                            dilation=self.dilation, groups=self.groups, bias=bool(bias))
        shape = (self.out_channels, self.in_channels // self.groups) + self.kernel_size
        self._make_params(shape, self.out_channels, bias, init, rng)

    def _geometry(self):
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups)

    def forward(self, x, training=None):
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"Conv2d: input must be (N, {self.in_channels}, H, W), got {tuple(x.shape)}")
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

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 dilation: int = 1, groups: int = 1, bias: bool = True, init="lecun_uniform", rng=None):
        super().__init__()
        self.in_channels, self.out_channels, self.groups = int(in_channels), int(out_channels), int(groups)
        if self.groups < 1 or self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"groups={groups} must divide in_channels={in_channels} and "
                             f"out_channels={out_channels}")
        self.kernel_size, self.stride, self.padding, self.dilation = (int(kernel_size), int(stride),
                                                                      int(padding), int(dilation))
        self._config = dict(in_channels=self.in_channels, out_channels=self.out_channels,
                            kernel_size=self.kernel_size, stride=self.stride, padding=self.padding,
                            dilation=self.dilation, groups=self.groups, bias=bool(bias))
        shape = (self.out_channels, self.in_channels // self.groups, self.kernel_size)
        self._make_params(shape, self.out_channels, bias, init, rng)

    def _geometry(self):
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups)

    def forward(self, x, training=None):
        if x.ndim != 3 or x.shape[1] != self.in_channels:
            raise ValueError(f"Conv1d: input must be (N, {self.in_channels}, L), got {tuple(x.shape)}")
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


class MaxPool2d(Layer):
    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else _pair(stride, "stride")
        self.padding = _pair(padding, "padding")
        self._config = dict(kernel_size=self.kernel_size, stride=self.stride, padding=self.padding)

    def forward(self, x, training=None):
        self._x = x
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding)

    def backward(self, grad_out):
        return F.max_pool2d_backward(grad_out, self._x, self.kernel_size, self.stride, self.padding)


class AvgPool2d(Layer):
    def __init__(self, kernel_size, stride=None, padding=0, count_include_pad: bool = True):
        super().__init__()
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else _pair(stride, "stride")
        self.padding = _pair(padding, "padding")
        self.count_include_pad = bool(count_include_pad)
        self._config = dict(kernel_size=self.kernel_size, stride=self.stride, padding=self.padding,
                            count_include_pad=self.count_include_pad)

    def forward(self, x, training=None):
        self._x = x
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.count_include_pad)

    def backward(self, grad_out):
        return F.avg_pool2d_backward(grad_out, self._x, self.kernel_size, self.stride, self.padding,
                                     self.count_include_pad)


class LpPool2d(Layer):
    """(Σ|x|^p)^(1/p) over each window."""

    def __init__(self, p: float, kernel_size, stride=None, padding=0):
        super().__init__()
        if not p > 0:
            raise ValueError(f"p must be > 0, got {p}")
        self.p = float(p)
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else _pair(stride, "stride")
        self.padding = _pair(padding, "padding")
        self._config = dict(p=self.p, kernel_size=self.kernel_size, stride=self.stride, padding=self.padding)

    def forward(self, x, training=None):
        self._x = x
        return F.lp_pool2d(x, self.p, self.kernel_size, self.stride, self.padding)

    def backward(self, grad_out):
        return F.lp_pool2d_backward(grad_out, self._x, self.p, self.kernel_size, self.stride, self.padding)


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
        self._shape = tuple(x.shape)
        return x.reshape(x.shape[0], -1)

    def backward(self, grad_out):
        return grad_out.reshape(self._shape)


class ReLU(Layer):
    def forward(self, x, training=None):
        self._x = x
        return F.relu(x)

    def backward(self, grad_out):
        return F.relu_backward(grad_out, self._x)


class LeakyReLU(Layer):
    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = float(negative_slope)
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
        self.axis = int(axis)
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
        if not 0 <= p < 1:
            raise ValueError(f"p must be in [0, 1), got {p}")
        self.p, self.seed = float(p), int(seed)
        self._config = dict(p=self.p, seed=self.seed)
        self._used_seed = None

    def get_config(self):
        return dict(p=self.p, seed=self.seed)  # the current seed, so a reloaded model continues the stream

    def forward(self, x, training=None):
        if not self._is_training(training) or self.p == 0:
            self._used_seed = None
            return x
        self._used_seed = self.seed
        self.seed += 1
        return F.dropout(x, self.p, seed=self._used_seed, training=True)

    def backward(self, grad_out):
        if self._used_seed is None:
            return grad_out
        return F.dropout_backward(grad_out, self.p, seed=self._used_seed)


class Residual(Layer):
    """y = body(x) + shortcut(x); shortcut is the identity, or a 1x1 Conv2d projection (no bias) when
    in_channels != out_channels or stride != 1 (or an explicit `projection` layer)."""

    def __init__(self, body, in_channels: int | None = None, out_channels: int | None = None, stride=1,
                 projection: Layer | None = None, rng=None):
        super().__init__()
        from .sequential import Sequential  # the body may be a list of layers

        self.body = body if isinstance(body, Layer) else Sequential(list(body))
        stride = _pair(stride, "stride")
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
        g_body, g_skip = F.add_backward(grad_out)
        gx = self.body.backward(g_body)
        if self.projection is not None:
            g_skip = self.projection.backward(g_skip)
        return F.add(gx, g_skip)


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
        if isinstance(num_features, bool) or not isinstance(num_features, (int, np.integer)) or num_features < 1:
            raise ValueError(f"num_features must be an int >= 1, got {num_features!r}")
        eps = float(eps)
        if not (eps > 0 and np.isfinite(eps)):
            raise ValueError(f"eps must be a finite number > 0, got {eps!r}")
        if momentum is not None:
            momentum = float(momentum)
            if not 0 <= momentum <= 1:
                raise ValueError(f"momentum must lie in [0, 1] or be None (cumulative average), got {momentum!r}")
        self.num_features, self.eps, self.momentum = int(num_features), eps, momentum
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
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
