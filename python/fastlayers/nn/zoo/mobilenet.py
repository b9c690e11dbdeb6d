"""MobileNetV2 as torchvision.models.mobilenet_v2 builds it: features.0 (conv + BN + ReLU6),
features.1 ... 17 inverted residual blocks (features.N.conv.K...), features.18 (1x1 conv to 1280),
adaptive average pooling, classifier.0 (dropout) and classifier.1 (linear)."""

from __future__ import annotations

from .. import layers as L
from ..graph import Input, Model
from ._build import Builder, ReLU6, check_input

__all__ = ["mobilenet_v2"]


def _make_divisible(v, divisor, min_value=None):
    # torchvision's rounding of the channel counts
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def _cna(b, x, p, cin, cout, k=3, stride=1, groups=1):
    """torchvision's Conv2dNormActivation with ReLU6: p.0 conv, p.1 batch norm, p.2 ReLU6."""
    return b.conv_bn_relu(x, f"{p}.0", f"{p}.1", f"{p}.2", cin, cout, k, stride, (k - 1) // 2, groups, act=ReLU6)


def mobilenet_v2(num_classes: int = 1000, in_channels: int = 3, input_size=224, width_mult: float = 1.0,
                 round_nearest: int = 8, dropout: float = 0.2, seed=None, init: str = "he_normal") -> Model:
    """torchvision.models.mobilenet_v2 (width_mult, round_nearest as torchvision)."""
    cin, size = check_input(in_channels, input_size, 16, "mobilenet_v2")
    b = Builder(seed, init)
    inp = Input((cin,) + size, name="input")
    c = _make_divisible(32 * width_mult, round_nearest)
    last = _make_divisible(1280 * max(1.0, width_mult), round_nearest)
    x = _cna(b, inp, "features.0", cin, c, stride=2)
    i = 1
    for t, ch, n, s in [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1],
                        [6, 160, 3, 2], [6, 320, 1, 1]]:
        out_c = _make_divisible(ch * width_mult, round_nearest)
        for j in range(n):
            stride = s if j == 0 else 1
            p = f"features.{i}.conv"
            hidden = int(round(c * t))
            y, k = x, 0
            if t != 1:
                y = _cna(b, y, f"{p}.0", c, hidden, k=1)
                k = 1
            y = _cna(b, y, f"{p}.{k}", hidden, hidden, stride=stride, groups=hidden)
            y = b.conv(f"{p}.{k + 1}", hidden, out_c, 1, bias=False)(y)
            y = b.bn(f"{p}.{k + 2}", out_c)(y)
            x = b.add(f"features.{i}.add", [x, y]) if stride == 1 and c == out_c else y
            c = out_c
            i += 1
    x = _cna(b, x, f"features.{i}", c, last, k=1)
    x = L.AdaptiveAvgPool2d((1, 1), name="avgpool")(x)
    x = L.Flatten(name="flatten")(x)
    x = L.Dropout(dropout, name="classifier.0")(x)
    x = b.linear("classifier.1", last, num_classes)(x)
    return Model(inp, x, loss="cross_entropy")
