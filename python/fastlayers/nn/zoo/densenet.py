"""DenseNet-121/161/169/201 as torchvision.models.densenet* build them (memory_efficient makes no
difference to the result): features.conv0 / norm0 / relu0 / pool0, features.denseblockB.denselayerL
(norm1, relu1, conv1, norm2, relu2, conv2), features.transitionB (norm, relu, conv, pool),
features.norm5, then ReLU, adaptive average pooling and `classifier`.

A dense layer reads the concatenation of every earlier feature map of its block; here that
concatenation grows one layer at a time (features_l = cat(features_{l-1}, new_l)), which holds the
same values as torchvision's cat of the whole list and copies each map once per layer."""

from __future__ import annotations

from .. import layers as L
from ..graph import Input, Model
from ._build import Builder, check_input

__all__ = ["densenet121", "densenet161", "densenet169", "densenet201"]


def _densenet(growth, blocks, init_features, num_classes, in_channels, input_size, bn_size, drop_rate, seed,
              init):
    cin, size = check_input(in_channels, input_size, 32, "densenet")
    b = Builder(seed, init)
    inp = Input((cin,) + size, name="input")
    x = b.conv("features.conv0", cin, init_features, 7, 2, 3, bias=False)(inp)
    x = b.relu("features.relu0", b.bn("features.norm0", init_features)(x))
    x = L.MaxPool2d(3, 2, 1, name="features.pool0")(x)
    c = init_features
    for i, n in enumerate(blocks, start=1):
        for j in range(1, n + 1):
            p = f"features.denseblock{i}.denselayer{j}"
            y = b.relu(f"{p}.relu1", b.bn(f"{p}.norm1", c)(x))
            y = b.conv(f"{p}.conv1", c, bn_size * growth, 1, bias=False)(y)
            y = b.relu(f"{p}.relu2", b.bn(f"{p}.norm2", bn_size * growth)(y))
            y = b.conv(f"{p}.conv2", bn_size * growth, growth, 3, 1, 1, bias=False)(y)
            if drop_rate > 0:
                y = L.Dropout(drop_rate, name=f"{p}.dropout")(y)
            x = b.cat(f"{p}.cat", [x, y])
            c += growth
        if i != len(blocks):
            p = f"features.transition{i}"
            x = b.relu(f"{p}.relu", b.bn(f"{p}.norm", c)(x))
            x = b.conv(f"{p}.conv", c, c // 2, 1, bias=False)(x)
            x = L.AvgPool2d(2, 2, name=f"{p}.pool")(x)
            c //= 2
    x = b.bn("features.norm5", c)(x)
    x = b.relu("relu", x)
    x = L.AdaptiveAvgPool2d((1, 1), name="avgpool")(x)
    x = L.Flatten(name="flatten")(x)
    x = b.linear("classifier", c, num_classes)(x)
    return Model(inp, x, loss="cross_entropy")


def _make(name, growth, blocks, init_features):
    def build(num_classes: int = 1000, in_channels: int = 3, input_size=224, bn_size: int = 4,
              drop_rate: float = 0.0, seed=None, init: str = "he_normal") -> Model:
        return _densenet(growth, blocks, init_features, num_classes, in_channels, input_size, bn_size,
                         drop_rate, seed, init)

    build.__name__ = build.__qualname__ = name
    build.__doc__ = f"torchvision.models.{name}: growth rate {growth}, blocks {list(blocks)}, {init_features} initial features."
    return build


densenet121 = _make("densenet121", 32, (6, 12, 24, 16), 64)
densenet161 = _make("densenet161", 48, (6, 12, 36, 24), 96)
densenet169 = _make("densenet169", 32, (6, 12, 32, 32), 64)
densenet201 = _make("densenet201", 32, (6, 12, 48, 32), 64)
