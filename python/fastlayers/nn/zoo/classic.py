"""AlexNet and VGG, as torchvision.models.alexnet / vgg* build them (module names features.N,
avgpool, classifier.N; the same layers, sizes and order)."""

from __future__ import annotations

from .. import layers as L
from ..graph import Input, Model
from ._build import Builder, check_input

__all__ = ["alexnet", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn"]


def alexnet(num_classes: int = 1000, in_channels: int = 3, input_size=224, dropout: float = 0.5, seed=None,
            init: str = "he_normal") -> Model:
    """torchvision.models.alexnet: five convolutions (features.0/3/6/8/10), adaptive average pooling
    to 6x6 and three linear layers (classifier.1/4/6) with dropout before the first two."""
    cin, size = check_input(in_channels, input_size, 63, "alexnet")
    b = Builder(seed, init)
    inp = Input((cin,) + size, name="input")
    x = inp
    spec = [("conv", cin, 64, 11, 4, 2), ("relu",), ("pool",), ("conv", 64, 192, 5, 1, 2), ("relu",), ("pool",),
            ("conv", 192, 384, 3, 1, 1), ("relu",), ("conv", 384, 256, 3, 1, 1), ("relu",),
            ("conv", 256, 256, 3, 1, 1), ("relu",), ("pool",)]
    for i, s in enumerate(spec):
        name = f"features.{i}"
        if s[0] == "conv":
            x = b.conv(name, s[1], s[2], s[3], stride=s[4], padding=s[5])(x)
        elif s[0] == "relu":
            x = L.ReLU(name=name)(x)
        else:
            x = L.MaxPool2d(3, 2, name=name)(x)
    x = L.AdaptiveAvgPool2d((6, 6), name="avgpool")(x)
    x = L.Flatten(name="flatten")(x)
    x = L.Dropout(dropout, name="classifier.0")(x)
    x = b.linear("classifier.1", 256 * 6 * 6, 4096)(x)
    x = L.ReLU(name="classifier.2")(x)
    x = L.Dropout(dropout, name="classifier.3")(x)
    x = b.linear("classifier.4", 4096, 4096)(x)
    x = L.ReLU(name="classifier.5")(x)
    x = b.linear("classifier.6", 4096, num_classes)(x)
    return Model(inp, x, loss="cross_entropy")


_CFGS = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


def _vgg(cfg, batch_norm, num_classes, in_channels, input_size, dropout, seed, init) -> Model:
    cin, size = check_input(in_channels, input_size, 32, "vgg")
    b = Builder(seed, init)
    inp = Input((cin,) + size, name="input")
    x, i, c = inp, 0, cin
    for v in _CFGS[cfg]:
        if v == "M":
            x = L.MaxPool2d(2, 2, name=f"features.{i}")(x)
            i += 1
            continue
        x = b.conv(f"features.{i}", c, v, 3, padding=1)(x)
        i += 1
        if batch_norm:
            x = b.bn(f"features.{i}", v)(x)
            i += 1
        x = L.ReLU(name=f"features.{i}")(x)
        i += 1
        c = v
    x = L.AdaptiveAvgPool2d((7, 7), name="avgpool")(x)
    x = L.Flatten(name="flatten")(x)
    x = b.linear("classifier.0", 512 * 7 * 7, 4096)(x)
    x = L.ReLU(name="classifier.1")(x)
    x = L.Dropout(dropout, name="classifier.2")(x)
    x = b.linear("classifier.3", 4096, 4096)(x)
    x = L.ReLU(name="classifier.4")(x)
    x = L.Dropout(dropout, name="classifier.5")(x)
    x = b.linear("classifier.6", 4096, num_classes)(x)
    return Model(inp, x, loss="cross_entropy")


def _make_vgg(cfg, batch_norm):
    def build(num_classes: int = 1000, in_channels: int = 3, input_size=224, dropout: float = 0.5,
              seed=None, init: str = "he_normal") -> Model:
        return _vgg(cfg, batch_norm, num_classes, in_channels, input_size, dropout, seed, init)

    name = cfg + ("_bn" if batch_norm else "")
    build.__name__ = build.__qualname__ = name
    build.__doc__ = (f"torchvision.models.{name}: 3x3 convolutions{' with batch norm' if batch_norm else ''} "
                     f"(features.N), adaptive average pooling to 7x7, classifier.0/3/6.")
    return build


vgg11, vgg11_bn = _make_vgg("vgg11", False), _make_vgg("vgg11", True)
vgg13, vgg13_bn = _make_vgg("vgg13", False), _make_vgg("vgg13", True)
vgg16, vgg16_bn = _make_vgg("vgg16", False), _make_vgg("vgg16", True)
vgg19, vgg19_bn = _make_vgg("vgg19", False), _make_vgg("vgg19", True)
