"""ResNet-18/34/50/101/152 as torchvision.models.resnet* build them (v1.5: the stride of a
bottleneck sits on its 3x3 convolution), with torchvision's module names: conv1, bn1, layerS.B.conv1,
layerS.B.bn1, ..., layerS.B.downsample.0 / .1, fc."""

from __future__ import annotations

from .. import layers as L
from ..graph import Input, Model
from ._build import Builder, check_input

__all__ = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]


def _basic(b, x, p, cin, planes, stride):
    out = b.conv(f"{p}.conv1", cin, planes, 3, stride, 1, bias=False)(x)
    out = b.relu(f"{p}.relu", b.bn(f"{p}.bn1", planes)(out))
    out = b.conv(f"{p}.conv2", planes, planes, 3, 1, 1, bias=False)(out)
    out = b.bn(f"{p}.bn2", planes)(out)
    return out, planes


def _bottleneck(b, x, p, cin, planes, stride):
    width = planes  # groups=1, width_per_group=64
    out = b.conv(f"{p}.conv1", cin, width, 1, bias=False)(x)
    out = b.relu(f"{p}.relu", b.bn(f"{p}.bn1", width)(out))
    out = b.conv(f"{p}.conv2", width, width, 3, stride, 1, bias=False)(out)
    out = b.relu(f"{p}.relu_1", b.bn(f"{p}.bn2", width)(out))
    out = b.conv(f"{p}.conv3", width, planes * 4, 1, bias=False)(out)
    out = b.bn(f"{p}.bn3", planes * 4)(out)
    return out, planes * 4


def _resnet(block, layers, num_classes, in_channels, input_size, seed, init) -> Model:
    cin, size = check_input(in_channels, input_size, 16, "resnet")
    expansion = 4 if block is _bottleneck else 1
    b = Builder(seed, init)
    inp = Input((cin,) + size, name="input")
    x = b.conv("conv1", cin, 64, 7, 2, 3, bias=False)(inp)
    x = b.relu("relu", b.bn("bn1", 64)(x))
    x = L.MaxPool2d(3, 2, 1, name="maxpool")(x)
    c = 64
    for s, (planes, n) in enumerate(zip((64, 128, 256, 512), layers), start=1):
        for i in range(n):
            p = f"layer{s}.{i}"
            stride = 2 if (s > 1 and i == 0) else 1
            out, cout = block(b, x, p, c, planes, stride)
            if stride != 1 or c != planes * expansion:
                identity = b.conv(f"{p}.downsample.0", c, cout, 1, stride, bias=False)(x)
                identity = b.bn(f"{p}.downsample.1", cout)(identity)
            else:
                identity = x
            x = b.relu(f"{p}.relu_{2 if block is _bottleneck else 1}", b.add(f"{p}.add", [out, identity]))
            c = cout
    x = L.AdaptiveAvgPool2d((1, 1), name="avgpool")(x)
    x = L.Flatten(name="flatten")(x)
    x = b.linear("fc", 512 * expansion, num_classes)(x)
    return Model(inp, x, loss="cross_entropy")


def resnet18(num_classes: int = 1000, in_channels: int = 3, input_size=224, seed=None,
             init: str = "he_normal") -> Model:
    """torchvision.models.resnet18: BasicBlocks [2, 2, 2, 2]."""
    return _resnet(_basic, (2, 2, 2, 2), num_classes, in_channels, input_size, seed, init)


def resnet34(num_classes: int = 1000, in_channels: int = 3, input_size=224, seed=None,
             init: str = "he_normal") -> Model:
    """torchvision.models.resnet34: BasicBlocks [3, 4, 6, 3]."""
    return _resnet(_basic, (3, 4, 6, 3), num_classes, in_channels, input_size, seed, init)


def resnet50(num_classes: int = 1000, in_channels: int = 3, input_size=224, seed=None,
             init: str = "he_normal") -> Model:
    """torchvision.models.resnet50: Bottlenecks [3, 4, 6, 3]."""
    return _resnet(_bottleneck, (3, 4, 6, 3), num_classes, in_channels, input_size, seed, init)


def resnet101(num_classes: int = 1000, in_channels: int = 3, input_size=224, seed=None,
             init: str = "he_normal") -> Model:
    """torchvision.models.resnet101: Bottlenecks [3, 4, 23, 3]."""
    return _resnet(_bottleneck, (3, 4, 23, 3), num_classes, in_channels, input_size, seed, init)


def resnet152(num_classes: int = 1000, in_channels: int = 3, input_size=224, seed=None,
             init: str = "he_normal") -> Model:
    """torchvision.models.resnet152: Bottlenecks [3, 8, 36, 3]."""
    return _resnet(_bottleneck, (3, 8, 36, 3), num_classes, in_channels, input_size, seed, init)
