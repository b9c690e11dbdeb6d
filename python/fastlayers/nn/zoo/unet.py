"""U-Net (Ronneberger, Fischer and Brox, 2015) in the original's shape: a contracting path of
`depth` levels, each two 3x3 convolutions + ReLU then a 2x2 max-pool, channels doubling from `width`
(64 in the paper); a bottleneck of two convolutions; an expanding path whose levels upsample with a
2x2 transposed convolution (halving the channels), concatenate the contracting path's map of the
same level (skip connection) and apply two 3x3 convolutions; a final 1x1 convolution to
`num_classes` score maps. depth=4, width=64, in_channels=1, num_classes=2 is the paper's network.

Differences from the paper, chosen for fixed-size training: the 3x3 convolutions are padded
(padding=1), so that the output has the input's size and the skip maps need no cropping (the paper
uses unpadded convolutions and crops); input height and width must then be divisible by 2**depth.
batch_norm=True adds a BatchNorm2d after each 3x3 convolution (a common modern variant). Layer
names: down{l}.conv1/.bn1/.conv2/.bn2, bottleneck.*, up{l}.upconv / .conv1 ..., head."""

from __future__ import annotations

from .. import layers as L
from ..graph import Input, Model
from .._args import as_size
from ._build import Builder, check_input

__all__ = ["unet"]


def _double(b, x, p, cin, cout, batch_norm):
    for k, (ci, co) in enumerate(((cin, cout), (cout, cout)), start=1):
        x = b.conv(f"{p}.conv{k}", ci, co, 3, 1, 1, bias=not batch_norm)(x)
        if batch_norm:
            x = b.bn(f"{p}.bn{k}", co)(x)
        x = b.relu(f"{p}.relu{k}", x)
    return x


def unet(num_classes: int = 2, in_channels: int = 1, input_size=(256, 256), depth: int = 4, width: int = 64,
         batch_norm: bool = False, seed=None, init: str = "he_normal") -> Model:
    """U-Net whose output is (N, num_classes, H, W) per-pixel class scores (train it with the
    per-pixel cross-entropy, the default loss)."""
    depth = as_size(depth, "depth", minimum=1)
    width = as_size(width, "width", minimum=1)
    num_classes = as_size(num_classes, "num_classes", minimum=1)
    cin, size = check_input(in_channels, input_size, 2 ** depth, "unet")
    if size[0] % 2 ** depth or size[1] % 2 ** depth:
        raise ValueError(f"unet with depth={depth} needs input_size divisible by {2 ** depth}, got {size}")
    b = Builder(seed, init)
    inp = Input((cin,) + size, name="input")
    x, c, skips = inp, cin, []
    for lvl in range(1, depth + 1):
        w = width * 2 ** (lvl - 1)
        x = _double(b, x, f"down{lvl}", c, w, batch_norm)
        skips.append((x, w))
        x = L.MaxPool2d(2, 2, name=f"down{lvl}.pool")(x)
        c = w
    x = _double(b, x, "bottleneck", c, width * 2 ** depth, batch_norm)
    c = width * 2 ** depth
    for lvl in range(depth, 0, -1):
        skip, w = skips[lvl - 1]
        x = L.ConvTranspose2d(c, w, 2, stride=2, init=b.conv_init, rng=b.rng, name=f"up{lvl}.upconv")(x)
        x = b.cat(f"up{lvl}.cat", [skip, x])
        x = _double(b, x, f"up{lvl}", 2 * w, w, batch_norm)
        c = w
    x = b.conv("head", c, num_classes, 1)(x)
    return Model(inp, x, loss="cross_entropy")
