"""What the zoo's model definitions share: a small builder that names every layer after the
PyTorch module path torchvision gives it ("layer1.0.conv1"), so that a graph Model's parameter names
("<layer name>.<parameter>") are torchvision's state_dict keys, plus ReLU6 (MobileNetV2's activation).

Layers without weights get names too (torchvision's where it has a module for them, "features.1"
for AlexNet's first ReLU; a readable one otherwise, "layer1.0.relu_1" for a block's second ReLU,
"layer1.0.add" for a residual sum), because layer names must be unique within a Model.
"""

from __future__ import annotations

import numpy as np

from ... import _backend
from .. import init as _init
from .. import layers as L
from .. import merge as M
from .._args import as_size
from .._ops import F
from ..layers import Layer

__all__ = ["ReLU6", "Builder", "check_input"]


class ReLU6(Layer):
    """min(max(x, 0), 6) (torch.nn.ReLU6). A composite layer: fl.relu, then the array module's
    minimum; backward passes the gradient where 0 < y < 6 (PyTorch's rule at the two kinks)."""

    def forward(self, x, training=None):
        xp = _backend.array_module(x)
        y = xp.minimum(F.relu(x), np.float32(6.0))
        self._y = y
        return y

    def backward(self, grad_out):
        xp = _backend.array_module(grad_out)
        y = self._y
        return xp.where((y > 0) & (y < 6), grad_out, xp.zeros((), dtype=grad_out.dtype)).astype(np.float32,
                                                                                                  copy=False)


def check_input(in_channels, input_size, min_size, name):
    """in_channels and input_size ((H, W) or an int) as sizes; input_size at least min_size."""
    cin = as_size(in_channels, "in_channels", minimum=1)
    if isinstance(input_size, (int, np.integer)) and not isinstance(input_size, bool):
        input_size = (input_size, input_size)
    if not isinstance(input_size, (tuple, list)) or len(input_size) != 2:
        raise ValueError(f"input_size must be an int or a pair (H, W), got {input_size!r}")
    h, w = (as_size(s, "input_size", minimum=1) for s in input_size)
    if h < min_size or w < min_size:
        raise ValueError(f"{name} needs input_size of at least {min_size}x{min_size}, got {h}x{w}")
    return cin, (h, w)


class Builder:
    """Makes named layers with one random generator (seeded) and applies them to symbolic tensors."""

    def __init__(self, seed=None, init: str = "he_normal"):
        self.rng = _init.as_generator(seed)
        if init not in ("he_normal", "zeros"):
            raise ValueError(f"init must be 'he_normal' (random weights) or 'zeros' (for weights that will be "
                             f"loaded: skips drawing them), got {init!r}")
        self.conv_init = init
        self.linear_init = "lecun_uniform" if init == "he_normal" else "zeros"

    # layers (not yet applied)
    def conv(self, name, cin, cout, k, stride=1, padding=0, groups=1, bias=True):
        # He (Kaiming) normal like torchvision's convolution initialisation
        return L.Conv2d(cin, cout, k, stride=stride, padding=padding, groups=groups, bias=bias,
                        init=self.conv_init, rng=self.rng, name=name)

    def linear(self, name, fin, fout):
        return L.Linear(fin, fout, init=self.linear_init, rng=self.rng, name=name)

    @staticmethod
    def bn(name, c, eps=1e-5):
        return L.BatchNorm2d(c, eps=eps, name=name)

    # applied to a tensor
    def conv_bn_relu(self, x, conv_name, bn_name, relu_name, cin, cout, k, stride=1, padding=0, groups=1,
                     eps=1e-5, act=None):
        x = self.conv(conv_name, cin, cout, k, stride, padding, groups, bias=False)(x)
        x = self.bn(bn_name, cout, eps)(x)
        return (act or L.ReLU)(name=relu_name)(x)

    @staticmethod
    def relu(name, x):
        return L.ReLU(name=name)(x)

    @staticmethod
    def add(name, xs):
        return M.Add(name=name)(list(xs))

    @staticmethod
    def cat(name, xs):
        return M.Concatenate(axis=1, name=name)(list(xs))
