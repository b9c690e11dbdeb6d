"""Ready-made models from the course, each a compiled-with-loss Sequential.

- perceptron(in_features): one linear unit, hinge loss with margin 0 (the perceptron criterion), labels ±1
  (or 0/1); with num_classes > 1, one-vs-rest units.
- logistic_regression(in_features, num_classes=1): binary (BCE on one logit) or multinomial (softmax CE).
- mlp(sizes): Flatten, then Linear layers of the given sizes with ReLU between.
- mnist_cnn(): 1x28x28 -> conv 32@5x5 -> max-pool 2 -> ReLU -> conv 64@5x5 -> max-pool 2 -> ReLU ->
  flatten 1024 -> dense 200 -> ReLU -> dense 10; softmax cross-entropy. Other input shapes (CIFAR-10's
  3x32x32: flatten 64x5x5 = 1600) change the first convolution's channels and the flatten size.
- lenet5(): LeNet-5 (conv 6@5x5, avg-pool, conv 16@5x5, avg-pool, 120, 84, 10), with ReLU; a 28x28
  input is padded by 2 to LeNet's 32x32, a 32x32 one (CIFAR-10) is not.
- small_resnet(): a 3x3 stem and three residual stages (16, 32, 64 channels; stride 2 with 1x1 projections),
  global average pooling and a dense classifier; no batch norm.
"""

from __future__ import annotations

from . import init as _init
from .layers import (AvgPool2d, Conv2d, Flatten, GlobalAvgPool2d, Linear, MaxPool2d, ReLU, Residual)
from .losses import BCEWithLogitsLoss, HingeLoss, SoftmaxCrossEntropyLoss
from .sequential import Sequential

__all__ = ["perceptron", "logistic_regression", "mlp", "mnist_cnn", "lenet5", "small_resnet", "MODELS", "build"]


def perceptron(in_features: int, num_classes: int = 1, seed=None) -> Sequential:
    rng = _init.as_generator(seed)
    units = 1 if num_classes <= 2 else num_classes
    return Sequential([Flatten(), Linear(in_features, units, rng=rng)], loss=HingeLoss(margin=0.0))


def logistic_regression(in_features: int, num_classes: int = 1, seed=None) -> Sequential:
    rng = _init.as_generator(seed)
    if num_classes <= 2:
        return Sequential([Flatten(), Linear(in_features, 1, rng=rng)], loss=BCEWithLogitsLoss())
    return Sequential([Flatten(), Linear(in_features, num_classes, rng=rng)], loss=SoftmaxCrossEntropyLoss())


def mlp(sizes, activation=ReLU, seed=None, init="lecun_uniform") -> Sequential:
    """sizes = [in, hidden..., out]; out == 1 -> BCE on one logit, else softmax cross-entropy."""
    from ._args import as_size

    if not isinstance(sizes, (list, tuple)):
        raise TypeError(f"sizes must be a list of layer sizes [in, hidden..., out], got {type(sizes).__name__}")
    sizes = [as_size(s, f"sizes[{i}]", minimum=1) for i, s in enumerate(sizes)]
    if len(sizes) < 2:
        raise ValueError(f"sizes must list at least the input and output sizes, got {sizes}")
    rng = _init.as_generator(seed)
    layers = [Flatten()]
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(Linear(a, b, rng=rng, init=init))
        if i < len(sizes) - 2:
            layers.append(activation())
    loss = BCEWithLogitsLoss() if sizes[-1] == 1 else SoftmaxCrossEntropyLoss()
    return Sequential(layers, loss=loss, input_shape=(sizes[0],))


def _image_shape(input_shape, name: str, smallest: int) -> tuple[int, int, int]:
    """(C, H, W) of an image input, each side at least `smallest` (what the model's layers need)."""
    from ._args import as_size

    if not isinstance(input_shape, (tuple, list)) or len(input_shape) != 3:
        raise ValueError(f"{name} takes images: input_shape must be (channels, height, width), got {input_shape!r}")
    c, h, w = (as_size(d, "input_shape", minimum=1) for d in input_shape)
    if h < smallest or w < smallest:
        raise ValueError(f"{name} needs images of at least {smallest}x{smallest}, got input_shape {input_shape!r}")
    return c, h, w


def mnist_cnn(num_classes: int = 10, seed=None, input_shape=(1, 28, 28)) -> Sequential:
    c, h, w = _image_shape(input_shape, "mnist_cnn", 16)
    side = lambda n: ((n - 4) // 2 - 4) // 2  # noqa: E731  (two 5x5 valid convolutions, each pooled by 2)
    rng = _init.as_generator(seed)
    return Sequential([
        Conv2d(c, 32, 5, rng=rng), MaxPool2d(2), ReLU(),
        Conv2d(32, 64, 5, rng=rng), MaxPool2d(2), ReLU(),
        Flatten(), Linear(64 * side(h) * side(w), 200, rng=rng), ReLU(), Linear(200, num_classes, rng=rng),
    ], loss=SoftmaxCrossEntropyLoss(), input_shape=(c, h, w))


def lenet5(num_classes: int = 10, seed=None, input_shape=(1, 28, 28)) -> Sequential:
    c, h, w = _image_shape(input_shape, "lenet5", 12)
    pad = 2 if min(h, w) < 32 else 0  # MNIST's 28x28 padded to LeNet's 32x32
    side = lambda n: ((n + 2 * pad - 4) // 2 - 4) // 2  # noqa: E731
    rng = _init.as_generator(seed)
    return Sequential([
        Conv2d(c, 6, 5, padding=pad, rng=rng), ReLU(), AvgPool2d(2),
        Conv2d(6, 16, 5, rng=rng), ReLU(), AvgPool2d(2),
        Flatten(), Linear(16 * side(h) * side(w), 120, rng=rng), ReLU(), Linear(120, 84, rng=rng), ReLU(),
        Linear(84, num_classes, rng=rng),
    ], loss=SoftmaxCrossEntropyLoss(), input_shape=(c, h, w))


def _block(c_in, c_out, stride, rng):
    body = Sequential([Conv2d(c_in, c_out, 3, stride=stride, padding=1, rng=rng, init="he_normal"), ReLU(),
                       Conv2d(c_out, c_out, 3, padding=1, rng=rng, init="he_normal")])
    return Residual(body, c_in, c_out, stride, rng=rng)


def small_resnet(in_channels: int = 1, num_classes: int = 10, width: int = 16, seed=None,
                 input_shape=(1, 28, 28)) -> Sequential:
    rng = _init.as_generator(seed)
    w = int(width)
    return Sequential([
        Conv2d(in_channels, w, 3, padding=1, rng=rng, init="he_normal"), ReLU(),
        _block(w, w, 1, rng), ReLU(),
        _block(w, 2 * w, 2, rng), ReLU(),
        _block(2 * w, 4 * w, 2, rng), ReLU(),
        GlobalAvgPool2d(), Linear(4 * w, num_classes, rng=rng),
    ], loss=SoftmaxCrossEntropyLoss(), input_shape=input_shape)


MODELS = {"cnn": mnist_cnn, "mlp": None, "lenet5": lenet5, "resnet": small_resnet, "perceptron": perceptron,
          "logreg": logistic_regression}


def build(name: str, seed=None, num_classes: int = 10, input_shape=(1, 28, 28)) -> Sequential:
    """A model for inputs of input_shape (default MNIST) by its CLI name."""
    import math

    n_in = math.prod(input_shape)
    if name == "cnn":
        return mnist_cnn(num_classes, seed=seed, input_shape=tuple(input_shape))
    if name == "lenet5":
        return lenet5(num_classes, seed=seed, input_shape=tuple(input_shape))
    if name == "resnet":
        return small_resnet(input_shape[0], num_classes, seed=seed, input_shape=input_shape)
    if name == "mlp":
        m = mlp([n_in, 256, 128, num_classes], seed=seed)
        m.input_shape = tuple(input_shape)
        return m
    if name == "perceptron":
        m = perceptron(n_in, num_classes, seed=seed)
        m.input_shape = tuple(input_shape)
        return m
    if name == "logreg":
        m = logistic_regression(n_in, num_classes, seed=seed)
        m.input_shape = tuple(input_shape)
        return m
    raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
