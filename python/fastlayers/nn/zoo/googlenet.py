"""GoogLeNet (Inception v1) as torchvision.models.googlenet builds it with aux_logits=False and
transform_input=False (its defaults without pretrained weights): BasicConv2d = conv (no bias) +
batch norm (eps 0.001) + ReLU, named conv1.conv / conv1.bn; Inception blocks inception3a ... 5b with
branch1, branch2.0/1, branch3.0/1 (a 3x3, torchvision's known deviation from the paper's 5x5, kept
so that its weights load), branch4 = max-pool + branch4.1; ceil_mode max-pools; fc."""

from __future__ import annotations

from .. import layers as L
from ..graph import Input, Model
from ._build import Builder, check_input

__all__ = ["googlenet"]


def _basic(b, x, p, cin, cout, k, stride=1, padding=0):
    return b.conv_bn_relu(x, f"{p}.conv", f"{p}.bn", f"{p}.relu", cin, cout, k, stride, padding, eps=1e-3)


def _inception(b, x, p, cin, c1, c3r, c3, c5r, c5, pp):
    b1 = _basic(b, x, f"{p}.branch1", cin, c1, 1)
    b2 = _basic(b, _basic(b, x, f"{p}.branch2.0", cin, c3r, 1), f"{p}.branch2.1", c3r, c3, 3, padding=1)
    b3 = _basic(b, _basic(b, x, f"{p}.branch3.0", cin, c5r, 1), f"{p}.branch3.1", c5r, c5, 3, padding=1)
    b4 = L.MaxPool2d(3, 1, 1, ceil_mode=True, name=f"{p}.branch4.0")(x)
    b4 = _basic(b, b4, f"{p}.branch4.1", cin, pp, 1)
    return b.cat(f"{p}.cat", [b1, b2, b3, b4]), c1 + c3 + c5 + pp


_BLOCKS = [("inception3a", 64, 96, 128, 16, 32, 32), ("inception3b", 128, 128, 192, 32, 96, 64), "maxpool3",
           ("inception4a", 192, 96, 208, 16, 48, 64), ("inception4b", 160, 112, 224, 24, 64, 64),
           ("inception4c", 128, 128, 256, 24, 64, 64), ("inception4d", 112, 144, 288, 32, 64, 64),
           ("inception4e", 256, 160, 320, 32, 128, 128), "maxpool4",
           ("inception5a", 256, 160, 320, 32, 128, 128), ("inception5b", 384, 192, 384, 48, 128, 128)]


def googlenet(num_classes: int = 1000, in_channels: int = 3, input_size=224, dropout: float = 0.2,
              seed=None, init: str = "he_normal") -> Model:
    """torchvision.models.googlenet(aux_logits=False, transform_input=False)."""
    cin, size = check_input(in_channels, input_size, 32, "googlenet")
    b = Builder(seed, init)
    inp = Input((cin,) + size, name="input")
    x = _basic(b, inp, "conv1", cin, 64, 7, 2, 3)
    x = L.MaxPool2d(3, 2, ceil_mode=True, name="maxpool1")(x)
    x = _basic(b, x, "conv2", 64, 64, 1)
    x = _basic(b, x, "conv3", 64, 192, 3, padding=1)
    x = L.MaxPool2d(3, 2, ceil_mode=True, name="maxpool2")(x)
    c = 192
    for blk in _BLOCKS:
        if blk == "maxpool3":
            x = L.MaxPool2d(3, 2, ceil_mode=True, name=blk)(x)
        elif blk == "maxpool4":
            x = L.MaxPool2d(2, 2, ceil_mode=True, name=blk)(x)
        else:
            x, c = _inception(b, x, blk[0], c, *blk[1:])
    x = L.AdaptiveAvgPool2d((1, 1), name="avgpool")(x)
    x = L.Flatten(name="flatten")(x)
    x = L.Dropout(dropout, name="dropout")(x)
    x = b.linear("fc", 1024, num_classes)(x)
    return Model(inp, x, loss="cross_entropy")
