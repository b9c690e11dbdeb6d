"""The course demos behind `fastlayers train --model transfer|unet|voxels` (and examples/):

- transfer: pre-train a CNN on the embedded MNIST digits 0-4, then learn digits 5-9 from a few
  labelled examples: a new head on the frozen body, then fine-tuning of the whole net, against the
  same net trained from scratch on the same few examples (demos.transfer).
- unet: a U-Net (nn.zoo.unet) segmenting synthetic shapes on noisy backgrounds; mean IoU on
  held-out images (demos.segmentation).
- voxels: a small Conv3d network classifying synthetic voxel shapes (sphere / cube / torus at a
  random pose, with noise) (demos.voxels).

Each module's run(...) trains, prints its progress (unless quiet) and returns a dict of results.
"""

DEMOS = ("transfer", "unet", "voxels")


def run(name: str, **kwargs) -> dict:
    if name == "transfer":
        from .transfer import run as fn
    elif name == "unet":
        from .segmentation import run as fn
    elif name == "voxels":
        from .voxels import run as fn
    else:
        raise ValueError(f"unknown demo {name!r}; choose one of {', '.join(DEMOS)}")
    return fn(**kwargs)
