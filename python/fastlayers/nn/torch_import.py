"""fastlayers.nn.from_torch: a torch.nn.Sequential (nested ones included) of supported layers as a
fastlayers Sequential with the same settings and weights. torch is imported by the caller, never here.

Supported: Linear, Conv1d, Conv2d, Conv3d, ConvTranspose2d, BatchNorm1d/2d/3d, MaxPool2d, AvgPool2d,
AdaptiveAvgPool2d, MaxPool3d, AvgPool3d, ReLU, ReLU6, LeakyReLU, Sigmoid, Tanh, Softmax, LogSoftmax,
Dropout, Flatten (start_dim=1, end_dim=-1), Upsample and Sequential. Anything
else is a TypeError naming the module's path and type.
"""

from __future__ import annotations

from . import layers as L

__all__ = ["from_torch"]


def _get(name):
    cls = getattr(L, name, None)
    if cls is None:
        raise TypeError(f"this fastlayers has no nn.{name} layer")
    return cls


def _pair_or_int(v):
    return tuple(v) if isinstance(v, (tuple, list)) else v


def _zeros_padding(m, path):
    if getattr(m, "padding_mode", "zeros") != "zeros":
        raise TypeError(f"{path} ({type(m).__name__}): padding_mode={m.padding_mode!r} is not supported (only 'zeros')")
    if isinstance(getattr(m, "padding", 0), str):
        raise TypeError(f"{path} ({type(m).__name__}): padding={m.padding!r} (a string) is not supported; "
                        f"give the sizes")


def _conv(name):
    def make(m, path):
        _zeros_padding(m, path)
        kw = dict(stride=_pair_or_int(m.stride), padding=_pair_or_int(m.padding), dilation=_pair_or_int(m.dilation),
                  groups=m.groups, bias=m.bias is not None)
        if name == "Conv1d":
            kw = {k: (v[0] if isinstance(v, tuple) else v) for k, v in kw.items()}
            return _get(name)(m.in_channels, m.out_channels, m.kernel_size[0], **kw)
        if name == "ConvTranspose2d":
            kw["output_padding"] = _pair_or_int(m.output_padding)
        return _get(name)(m.in_channels, m.out_channels, _pair_or_int(m.kernel_size), **kw)
    return make


def _bn(name):
    def make(m, path):
        return _get(name)(m.num_features, eps=m.eps, momentum=m.momentum, affine=m.affine,
                          track_running_stats=m.track_running_stats)
    return make


def _maxpool(name):
    def make(m, path):
        if getattr(m, "return_indices", False):
            raise TypeError(f"{path} ({type(m).__name__}): return_indices=True has no place in a Sequential")
        kw = dict(stride=m.stride, padding=m.padding, dilation=m.dilation)
        if getattr(m, "ceil_mode", False):
            kw["ceil_mode"] = True
        return _get(name)(m.kernel_size, **kw)
    return make


def _avgpool(name):
    def make(m, path):
        kw = dict(stride=m.stride, padding=m.padding, count_include_pad=m.count_include_pad)
        if getattr(m, "ceil_mode", False):
            kw["ceil_mode"] = True
        if getattr(m, "divisor_override", None) is not None:
            kw["divisor_override"] = m.divisor_override
        return _get(name)(m.kernel_size, **kw)
    return make


def _flatten(m, path):
    if m.start_dim != 1 or m.end_dim != -1:
        raise TypeError(f"{path} (Flatten): only start_dim=1, end_dim=-1 is supported, got start_dim={m.start_dim}, "
                        f"end_dim={m.end_dim}")
    return L.Flatten()


def _softmax(name):
    def make(m, path):
        if m.dim is None:
            raise TypeError(f"{path} ({name}): give dim explicitly (dim=None is PyTorch's deprecated implicit choice)")
        return _get(name)(axis=m.dim)
    return make


def _relu6(m, path):
    from .zoo import ReLU6

    return ReLU6()


_CONVERTERS = {
    "Linear": lambda m, path: L.Linear(m.in_features, m.out_features, bias=m.bias is not None),
    "Conv1d": _conv("Conv1d"), "Conv2d": _conv("Conv2d"), "Conv3d": _conv("Conv3d"),
    "ConvTranspose2d": _conv("ConvTranspose2d"),
    "BatchNorm1d": _bn("BatchNorm1d"), "BatchNorm2d": _bn("BatchNorm2d"), "BatchNorm3d": _bn("BatchNorm3d"),
    "MaxPool2d": _maxpool("MaxPool2d"), "MaxPool3d": _maxpool("MaxPool3d"),
    "AvgPool2d": _avgpool("AvgPool2d"), "AvgPool3d": _avgpool("AvgPool3d"),
    "AdaptiveAvgPool2d": lambda m, path: _get("AdaptiveAvgPool2d")(_pair_or_int(m.output_size)),
    "ReLU": lambda m, path: L.ReLU(), "ReLU6": _relu6,
    "LeakyReLU": lambda m, path: L.LeakyReLU(m.negative_slope),
    "Sigmoid": lambda m, path: L.Sigmoid(), "Tanh": lambda m, path: L.Tanh(),
    "Softmax": _softmax("Softmax"), "LogSoftmax": _softmax("LogSoftmax"),
    "Dropout": lambda m, path: L.Dropout(m.p),
    "Flatten": _flatten,
    "Upsample": lambda m, path: _get("Upsample")(size=m.size, scale_factor=m.scale_factor, mode=m.mode,
                                                 align_corners=m.align_corners),
}


def _convert(module, path):
    from .sequential import Sequential

    kind = type(module).__name__
    if kind == "Sequential":
        layers = []
        for name, child in module.named_children():
            layer = _convert(child, f"{path}.{name}" if path else name)
            layers.append(layer)
        return Sequential(layers)
    fn = _CONVERTERS.get(kind)
    if fn is None:
        raise TypeError(f"from_torch: module {path or '(root)'} is a {kind}, which has no fastlayers equivalent here; "
                        f"supported: Sequential, {', '.join(sorted(_CONVERTERS))}")
    return fn(module, path or "(root)")


def from_torch(module):
    """A torch.nn.Sequential (or one supported module) as a fastlayers Sequential with its settings
    and its state_dict loaded (strictly, by key; batch-norm statistics included). The fastlayers
    model starts in eval mode when the torch module is in eval mode."""
    if not hasattr(module, "state_dict") or not hasattr(module, "named_children"):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    from .sequential import Sequential

    if type(module).__name__ == "Sequential":
        model = _convert(_without_identity(module), "")
    else:
        model = Sequential([_convert(module, "")])
        # the keys of a lone module gain the Sequential's "0."
        state = {f"0.{k}": v for k, v in module.state_dict().items()}
        model.load_torch_state_dict(state)
        return model.train(module.training)
    model.load_torch_state_dict(module.state_dict())
    return model.train(module.training)


def _without_identity(seq):
    """An Identity child is refused with a clear message (dropping it would shift the indices that
    the state_dict keys use)."""
    for name, child in seq.named_children():
        if type(child).__name__ == "Identity":
            raise TypeError(f"from_torch: module {name} is an Identity; remove it (it would shift the indices "
                            f"that the state_dict keys use)")
        if type(child).__name__ == "Sequential":
            _without_identity(child)
    return seq
