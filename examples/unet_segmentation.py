"""Semantic segmentation with a U-Net (fastlayers.nn.zoo.unet) on synthetic shapes; writes a PNG of
inputs, true and predicted masks. Same as `fastlayers train --model unet --plot unet_masks.png`.

    python examples/unet_segmentation.py
"""

from fastlayers.demos import segmentation

result = segmentation.run(seed=0, plot="unet_masks.png")
print(f"mean IoU on held-out images: {result['test_miou']:.4f}")
