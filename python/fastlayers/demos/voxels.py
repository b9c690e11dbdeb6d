"""3-D convolution: a small Conv3d network classifies synthetic voxel shapes (data.voxel_shapes:
sphere / cube / torus at a random position, scale and rotation, with noise and flipped voxels).

    Conv3d(1, 8, 3, padding=1) - BatchNorm3d - ReLU - MaxPool3d(2)
    Conv3d(8, 16, 3, padding=1) - BatchNorm3d - ReLU - MaxPool3d(2)
    Conv3d(16, 32, 3, padding=1) - ReLU - AvgPool3d(size / 4) - Flatten - Linear(32, 3)
"""

from __future__ import annotations

import time

from .. import nn, optim
from ..data.synthetic import VOXEL_CLASSES, voxel_shapes


def voxel_net(size: int = 16, seed=0) -> nn.Sequential:
    rng = nn.init.as_generator(seed)
    return nn.Sequential([
        nn.Conv3d(1, 8, 3, padding=1, rng=rng), nn.BatchNorm3d(8), nn.ReLU(), nn.MaxPool3d(2),
        nn.Conv3d(8, 16, 3, padding=1, rng=rng), nn.BatchNorm3d(16), nn.ReLU(), nn.MaxPool3d(2),
        nn.Conv3d(16, 32, 3, padding=1, rng=rng), nn.ReLU(), nn.AvgPool3d(size // 4), nn.Flatten(),
        nn.Linear(32, len(VOXEL_CLASSES), rng=rng)], loss="cross_entropy")


def run(seed: int = 0, n_train: int = 900, n_test: int = 300, size: int = 16, epochs: int = 8,
        batch_size: int = 16, lr: float = 3e-3, quiet: bool = False, **_ignored) -> dict:
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    t0 = time.perf_counter()
    x, y = voxel_shapes(n_train + n_test, size=size, seed=seed)
    xtr, ytr, xte, yte = x[:n_train], y[:n_train], x[n_train:], y[n_train:]
    model = voxel_net(size, seed)
    say(f"Conv3d net: {model.num_parameters():,} parameters; synthetic voxels {size}^3 "
        f"({', '.join(VOXEL_CLASSES)}), {n_train} train / {n_test} held-out")
    opt = optim.Adam(model.parameters(), lr=lr)
    history = model.fit(xtr, ytr, epochs=epochs, batch_size=batch_size, optimizer=opt, seed=seed, verbose=0 if quiet else 1)
    acc = model.evaluate(xte, yte)["accuracy"]
    seconds = time.perf_counter() - t0
    say(f"trained in {seconds:.1f} s")
    return {"test_accuracy": acc, "seconds": seconds, "model": model, "history": history.history}
