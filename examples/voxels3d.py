"""3-D convolution: a small Conv3d network classifies synthetic voxel shapes (sphere / cube / torus
at a random pose, with noise). Same as `fastlayers train --model voxels`.

    python examples/voxels3d.py
"""

from fastlayers.demos import voxels

result = voxels.run(seed=0)
print(f"held-out accuracy: {result['test_accuracy']:.4f}")
