"""Semantic segmentation with a U-Net (fastlayers.nn.zoo.unet) on synthetic shapes; writes a PNG of
inputs, true and predicted masks. Same as `fastlayers train --model unet --plot unet_masks.png`
(mean IoU 0.95 in about a minute on one core).

    python examples/unet_segmentation.py
"""

import fastlayers as fl
from fastlayers.demos import segmentation

fl.set_num_threads(1)  # as the CLI does for this demo: its kernels are small (see docs/zoo.md)
result = segmentation.run(seed=0, plot="unet_masks.png")
print(f"mean IoU on held-out images: {result['test_miou']:.4f}")
