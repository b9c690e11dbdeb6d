"""Synthetic datasets the demos generate (deterministic for a seed; nothing is downloaded).

- `shapes_segmentation(n, size=32, seed=0)`: grey images of discs, squares and triangles (random
  size, position, rotation and brightness, up to three per image, later ones on top) on noisy,
  smoothly varying backgrounds, with per-pixel class masks: 0 background, 1 disc, 2 square,
  3 triangle. For U-Net segmentation (`fastlayers train --model unet`).
- `voxel_shapes(n, size=16, seed=0)`: (n, 1, size, size, size) occupancy grids of a sphere, a cube
  or a torus (class 0, 1, 2) at a random position, scale and 3-D rotation, blurred at the surface,
  with Gaussian noise and flipped voxels. For a Conv3d classifier (`fastlayers train --model voxels`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["shapes_segmentation", "voxel_shapes", "SHAPE_CLASSES", "VOXEL_CLASSES"]

SHAPE_CLASSES = ("background", "disc", "square", "triangle")
VOXEL_CLASSES = ("sphere", "cube", "torus")


def _count(n, name, minimum=1):
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {n!r}")
    return int(n)


def shapes_segmentation(n: int, size: int = 32, max_shapes: int = 3, noise: float = 0.15, seed=0):
    """(images float32 (n, 1, size, size), masks int64 (n, size, size)); see the module docstring."""
    n, size, max_shapes = _count(n, "n"), _count(size, "size", 8), _count(max_shapes, "max_shapes")
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    images = np.empty((n, 1, size, size), np.float32)
    masks = np.zeros((n, size, size), np.int64)
    for i in range(n):
        # background: a random linear ramp plus pixel noise
        gy, gx, g0 = rng.uniform(-0.4, 0.4, 3)
        img = g0 * 0.5 + (gy * (yy / size - 0.5) + gx * (xx / size - 0.5))
        m = masks[i]
        for _ in range(rng.integers(1, max_shapes + 1)):
            cls = int(rng.integers(1, 4))
            r = rng.uniform(0.15, 0.25) * size
            cy, cx = rng.uniform(r * 0.8, size - r * 0.8, 2)
            th = rng.uniform(0, 2 * np.pi)
            dy, dx = yy - cy, xx - cx
            u = np.cos(th) * dx + np.sin(th) * dy
            v = -np.sin(th) * dx + np.cos(th) * dy
            if cls == 1:
                inside = u * u + v * v <= r * r
            elif cls == 2:
                inside = (np.abs(u) <= r * 0.85) & (np.abs(v) <= r * 0.85)
            else:  # an equilateral triangle of circumradius r
                inside = np.ones_like(u, bool)
                for k in range(3):
                    a = th + 2 * np.pi * k / 3
                    inside &= np.cos(a) * dx + np.sin(a) * dy <= r * 0.5
            brightness = rng.uniform(0.6, 1.2) * (1 if rng.random() < 0.8 else -1)
            img = np.where(inside, brightness + 0.1 * g0, img)
            m[inside] = cls
        images[i, 0] = img + rng.normal(0, noise, img.shape)
    return images, masks


def _rotation(rng):
    q = rng.normal(size=4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]], np.float32)


def voxel_shapes(n: int, size: int = 16, noise: float = 0.2, flip: float = 0.02, seed=0):
    """(voxels float32 (n, 1, size, size, size), labels int64 (n,)); classes balanced in turn
    (sphere, cube, torus, sphere, ...), then shuffled. See the module docstring."""
    n, size = _count(n, "n"), _count(size, "size", 8)
    rng = np.random.default_rng(seed)
    c = (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1  # voxel centres in [-1, 1]
    grid = np.stack(np.meshgrid(c, c, c, indexing="ij"), -1).reshape(-1, 3)
    labels = np.arange(n, dtype=np.int64) % 3
    rng.shuffle(labels)
    vox = np.empty((n, 1, size, size, size), np.float32)
    soft = 1.5 * size / 16  # surface blur: about a voxel wide
    for i, cls in enumerate(labels):
        scale = rng.uniform(0.65, 0.9)
        centre = rng.uniform(-0.1, 0.1, 3)
        p = (grid - centre) @ _rotation(rng) / scale  # the shape's own frame, unit size
        if cls == 0:
            d = np.linalg.norm(p, axis=1) - 0.9  # signed distance, sphere
        elif cls == 1:
            d = np.abs(p).max(axis=1) - 0.7  # cube (max-norm distance)
        else:
            ring = np.sqrt(p[:, 0] ** 2 + p[:, 1] ** 2) - 0.65
            d = np.sqrt(ring ** 2 + p[:, 2] ** 2) - 0.3  # torus
        occ = 1 / (1 + np.exp(np.clip(d * scale * size * 0.5 * soft, -30, 30)))
        occ = occ + rng.normal(0, noise, occ.shape)
        flips = rng.random(occ.shape) < flip
        occ[flips] = 1 - occ[flips]
        vox[i, 0] = occ.reshape(size, size, size)
    return vox, labels
