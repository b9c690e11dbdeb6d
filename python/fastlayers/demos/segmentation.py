"""Semantic segmentation with a U-Net (nn.zoo.unet) on synthetic shapes (data.shapes_segmentation):
discs, squares and triangles on noisy backgrounds, four classes per pixel. Trained with the
per-pixel cross-entropy and Adam; the result is the mean intersection-over-union over the four
classes on held-out images (intersections and unions summed over the whole test set)."""

from __future__ import annotations

import time

import numpy as np

from .. import nn, optim
from ..data.synthetic import SHAPE_CLASSES, shapes_segmentation


def mean_iou(pred, target, num_classes: int):
    """(mean IoU, per-class IoU) from integer label maps; a class absent from both is left out."""
    ious = []
    for c in range(num_classes):
        p, t = pred == c, target == c
        union = np.logical_or(p, t).sum()
        if union:
            ious.append(np.logical_and(p, t).sum() / union)
        else:
            ious.append(np.nan)
    return float(np.nanmean(ious)), ious


def run(seed: int = 0, n_train: int = 1200, n_test: int = 200, size: int = 32, epochs: int = 10,
        batch_size: int = 16, lr: float = 3e-3, depth: int = 3, width: int = 16, plot: str | None = None,
        quiet: bool = False, **_ignored) -> dict:
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    t0 = time.perf_counter()
    x, y = shapes_segmentation(n_train + n_test, size=size, max_shapes=2, seed=seed)
    xtr, ytr, xte, yte = x[:n_train], y[:n_train], x[n_train:], y[n_train:]
    k = len(SHAPE_CLASSES)
    model = nn.zoo.unet(num_classes=k, in_channels=1, input_size=(size, size), depth=depth, width=width,
                        batch_norm=True, seed=seed)
    say(f"U-Net depth {depth}, width {width}: {model.num_parameters():,} parameters; synthetic shapes "
        f"{size}x{size}, {n_train} train / {n_test} held-out images, classes {', '.join(SHAPE_CLASSES)}")
    opt = optim.Adam(model.parameters(), lr=lr)
    sched = optim.ExponentialLR(opt, 0.75)
    history = model.fit(xtr, ytr, epochs=epochs, batch_size=batch_size, optimizer=opt, callbacks=[sched], seed=seed,
              verbose=0 if quiet else 1)
    train_s = time.perf_counter() - t0
    pred = model.predict(xte).argmax(axis=1)
    miou, ious = mean_iou(pred, yte, k)
    say("per-class IoU: " + ", ".join(f"{n} {v:.3f}" for n, v in zip(SHAPE_CLASSES, ious)))
    say(f"pixel accuracy {float((pred == yte).mean()):.4f}; trained in {train_s:.1f} s")
    if plot:
        save_plot(plot, xte[:6], yte[:6], pred[:6])
        say(f"saved inputs, true and predicted masks to {plot}")
    return {"test_miou": miou, "per_class_iou": ious, "seconds": time.perf_counter() - t0, "model": model,
            "history": history.history}


def save_plot(path, images, masks, preds):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(images)
    fig, ax = plt.subplots(3, n, figsize=(2 * n, 6.2))
    ax = np.asarray(ax).reshape(3, n)
    for i in range(n):
        ax[0, i].imshow(images[i, 0], cmap="gray")
        ax[1, i].imshow(masks[i], vmin=0, vmax=len(SHAPE_CLASSES) - 1, cmap="viridis", interpolation="nearest")
        ax[2, i].imshow(preds[i], vmin=0, vmax=len(SHAPE_CLASSES) - 1, cmap="viridis", interpolation="nearest")
        for r in range(3):
            ax[r, i].set_xticks([])
            ax[r, i].set_yticks([])
    for r, t in enumerate(("input", "true mask", "U-Net")):
        ax[r, 0].set_ylabel(t)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
