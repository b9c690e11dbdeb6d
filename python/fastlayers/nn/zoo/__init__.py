"""The course's architectures, layer for layer as torchvision builds them, as graph Models
(fastlayers.nn.Model) whose layers carry torchvision's module names, so that the parameter names
are torchvision's state_dict keys:

    from fastlayers.nn import zoo
    model = zoo.resnet18(num_classes=1000)            # random weights (He-normal convolutions)
    model.load_torch_state_dict(torchvision_resnet18.state_dict())   # strict, by key
    model.get_layer("layer4.1.conv2"); model.freeze(up_to="layer4.1.relu_1")

Each takes num_classes, in_channels (an extension: torchvision's are fixed at 3) and input_size
(the per-sample H, W a graph Model fixes at construction; default 224) and `seed` for the initial
weights; the outputs are logits and the default loss is cross-entropy.

- alexnet; vgg11, vgg13, vgg16, vgg19 and their _bn variants
- resnet18, resnet34, resnet50, resnet101, resnet152
- googlenet (aux_logits=False, transform_input=False: torchvision's defaults without weights)
- densenet121, densenet161, densenet169, densenet201
- mobilenet_v2
- unet (not in torchvision: the original paper's shape, padded convolutions; see zoo.unet)
"""

from __future__ import annotations

from ._build import ReLU6  # noqa: F401
from .classic import alexnet, vgg11, vgg11_bn, vgg13, vgg13_bn, vgg16, vgg16_bn, vgg19, vgg19_bn
from .densenet import densenet121, densenet161, densenet169, densenet201
from .googlenet import googlenet
from .mobilenet import mobilenet_v2
from .resnet import resnet18, resnet34, resnet50, resnet101, resnet152
from .unet import unet

MODELS = {f.__name__: f for f in (alexnet, vgg11, vgg11_bn, vgg13, vgg13_bn, vgg16, vgg16_bn, vgg19, vgg19_bn,
                                   resnet18, resnet34, resnet50, resnet101, resnet152, googlenet, densenet121,
                                   densenet161, densenet169, densenet201, mobilenet_v2, unet)}

__all__ = sorted(MODELS) + ["MODELS", "build", "ReLU6"]


def build(name: str, **kwargs):
    """zoo.build("resnet18", num_classes=10) == zoo.resnet18(num_classes=10)."""
    if name not in MODELS:
        raise ValueError(f"unknown zoo model {name!r}; choose one of {', '.join(sorted(MODELS))}")
    return MODELS[name](**kwargs)
