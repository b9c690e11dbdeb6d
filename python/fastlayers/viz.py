"""Pictures of training (matplotlib, imported only when a figure is drawn).

- `plot_history(history, path=None)`: loss and accuracy per epoch, train and validation (what
  `History.plot()` and `fastlayers train --plot PATH` draw).
- `plot_segmentation(images, true_masks, predicted, path=None, history=None)`: a row per image with
  the input, the true mask and the predicted mask (with its mean IoU), under the training curves when
  a History is given.
- `training_figure(history, model=None, samples=None, path=None)`: the figure `fastlayers train --plot`
  writes: the model class's own `plot_training(history, samples) -> Figure` when it defines one;
  else, when the samples' labels are per-pixel masks (x (N, C, H, W), y (N, H, W)), plot_segmentation
  of the model's predictions under the curves; else plot_history's curves.
- `save_figure(fig, path)`: write a figure (PNG, or any format matplotlib knows from the suffix),
  through a temporary file, in the primary process only (see fastlayers._primary).

With a path, figures are drawn on a plain matplotlib Figure (no pyplot, no display, no global
state), so they work on machines without a screen and from threads; without one, they come from
pyplot, so that a notebook shows them.
"""

from __future__ import annotations

import os

__all__ = ["plot_history", "plot_segmentation", "mean_iou", "training_figure", "save_figure", "have_matplotlib"]


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _empty_figure(width: float, height: float, interactive: bool, layout=None):
    try:
        import matplotlib  # noqa: F401
    except ImportError as e:
        raise ImportError("plots need matplotlib (a dependency of fastlayers; in an installation without it: "
                          "pip install matplotlib)") from e
    if interactive:
        import matplotlib.pyplot as plt

        return plt.figure(figsize=(width, height), layout=layout)
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout=layout)


def _path_arg(path, name: str = "path"):
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a file name (str or os.PathLike), got {type(path).__name__} {path!r}")
    return os.fspath(path)


def save_figure(fig, path) -> str:
    """Write fig to path (format from the suffix; .png when there is none); returns the path. Only the
    primary process writes; the file appears whole or not at all."""
    from ._primary import is_primary

    path = _path_arg(path)
    if not is_primary():
        return path
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{path}: folder {folder} does not exist")
    fmt = os.path.splitext(path)[1][1:].lower() or "png"
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.part")
    try:
        fig.savefig(tmp, format=fmt, dpi=110)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def _series(history, key):
    values = history.history.get(key) if hasattr(history, "history") else None
    if not values or all(v is None for v in values):
        return None
    return values


def _history_metrics(history, metrics):
    from .nn.callbacks import History

    if not isinstance(history, History):
        raise TypeError(f"history must be the History that fit returns, got {type(history).__name__}")
    if metrics is None:
        metrics = [m for m in ("loss", "accuracy") if _series(history, m) is not None]
    elif isinstance(metrics, str):
        metrics = [metrics]
    else:
        metrics = list(metrics)
    for m in metrics:
        if not isinstance(m, str):
            raise TypeError(f"metrics must be metric names, got {type(m).__name__} {m!r}")
        if _series(history, m) is None and _series(history, "val_" + m) is None:
            have = sorted(k for k in history.history if _series(history, k) is not None)
            raise ValueError(f"History has no values for {m!r}; it has {have}")
    if not metrics:
        raise ValueError("History is empty: fit has not run an epoch")
    return metrics


def _draw_history(axes, history, metrics, val_label):
    for ax, m in zip(axes, metrics):
        for key, label, style in ((m, "train", "-o"), ("val_" + m, str(val_label), "--s")):
            ys = _series(history, key)
            if ys is None:
                continue
            pts = [(e + 1, y) for e, y in zip(history.epoch, ys) if y is not None]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, ms=3.5, lw=1.5,
                    label=f"{label} (last {pts[-1][1]:.4g})")
        ax.set_xlabel("epoch")
        ax.set_ylabel(m)
        ax.set_title(m)
        if len(history.epoch) <= 20:  # whole epochs on the axis
            ax.set_xticks(sorted({e + 1 for e in history.epoch}))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)


def plot_history(history, path=None, metrics=None, title: str | None = None, val_label: str = "validation"):
    """One panel per metric (default: 'loss', and 'accuracy' when there is one), each with the
    training curve and, when the fit had validation data, the validation curve (val_<metric>,
    labelled val_label), over epochs counted from 1. Writes the figure to path when given; returns
    the matplotlib Figure."""
    metrics = _history_metrics(history, metrics)
    if path is not None:
        path = _path_arg(path)
    fig = _empty_figure(5.0 * len(metrics), 3.6, interactive=path is None)
    _draw_history(fig.subplots(1, len(metrics), squeeze=False)[0], history, metrics, val_label)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


def _host(a, name):
    """A NumPy copy of a NumPy/CuPy array (or nested list)."""
    import numpy as np

    if hasattr(a, "get") and not isinstance(a, np.ndarray):  # CuPy
        a = a.get()
    try:
        return np.asarray(a)
    except Exception as e:
        raise TypeError(f"{name} must be an array, got {type(a).__name__}") from e


def _as_mask(a, name, n, hw):
    """Class indices (N, H, W) from indices, or from per-class scores (N, C, H, W): argmax over C, or
    score > 0 for one channel (a binary logit)."""
    import numpy as np

    a = _host(a, name)
    shape = a.shape
    if a.ndim == 4 and a.shape[1] == 1:
        a = (a[:, 0] > 0).astype(np.int64)
    elif a.ndim == 4:
        a = a.argmax(axis=1)
    if a.ndim != 3 or a.shape[0] != n or a.shape[1:] != hw:
        raise ValueError(f"{name} must be class indices (N, H, W) = {(n, *hw)} or scores (N, C, H, W), "
                         f"got shape {shape}")
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
            raise ValueError(f"{name} must hold whole class indices, got non-integer values")
        a = a.astype(np.int64)
    elif a.dtype.kind not in "iub":
        raise TypeError(f"{name} must hold class indices, got dtype {a.dtype}")
    return a.astype(np.int64)


def mean_iou(true_mask, pred_mask, num_classes: int) -> float:
    """Mean over the classes present in either mask of |true ∩ pred| / |true ∪ pred|; pixels whose true
    class is outside [0, num_classes) (an ignore label) do not count. NaN when no pixel counts."""
    import numpy as np

    t, p = np.asarray(true_mask).ravel(), np.asarray(pred_mask).ravel()
    keep = (t >= 0) & (t < num_classes)
    t, p = t[keep], p[keep]
    ious = []
    for c in range(num_classes):
        union = np.count_nonzero((t == c) | (p == c))
        if union:
            ious.append(np.count_nonzero((t == c) & (p == c)) / union)
    return float(np.mean(ious)) if ious else float("nan")


def plot_segmentation(images, true_masks, predicted, path=None, history=None, num_classes: int | None = None,
                      max_rows: int = 6, metrics=None, title: str | None = None, val_label: str = "validation"):
    """A row per image (the first max_rows): the input, the true mask and the predicted mask titled
    with its mean IoU (see mean_iou), masks in one discrete colour per class (true pixels outside
    [0, num_classes), an ignore label, left blank). images: (N, C, H, W) (C = 1: grey, 3: colour,
    else channel 0) or (N, H, W); true_masks: (N, H, W) class indices; predicted: class indices
    (N, H, W) or the model's scores (N, C, H, W), argmax over C (one channel: score > 0).
    num_classes: default the largest class seen + 1. With history, its curves (as plot_history,
    `metrics`, `val_label`) sit above the rows. Writes to path when given; returns the Figure."""
    import numpy as np

    x = _host(images, "images")
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[0] < 1:
        raise ValueError(f"images must be (N, C, H, W) or (N, H, W) with N >= 1, got shape {x.shape}")
    n, hw = x.shape[0], x.shape[2:]
    true = _as_mask(true_masks, "true_masks", n, hw)
    pred = _as_mask(predicted, "predicted", n, hw)
    if num_classes is None:
        num_classes = int(max(2, true.max() + 1, pred.max() + 1))
    elif isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}")
    if isinstance(max_rows, bool) or not isinstance(max_rows, (int, np.integer)) or max_rows < 1:
        raise ValueError(f"max_rows must be an int >= 1, got {max_rows!r}")
    metrics = _history_metrics(history, metrics) if history is not None else []
    if path is not None:
        path = _path_arg(path)
    rows = min(n, int(max_rows))
    curves_h = 3.4 if metrics else 0.0
    fig = _empty_figure(max(7.5, 4.6 * len(metrics)), curves_h + 2.5 * rows + 0.4, interactive=path is None,
                        layout="constrained")
    if metrics:
        top, bottom = fig.subfigures(2, 1, height_ratios=[curves_h, 2.5 * rows])
        _draw_history(top.subplots(1, len(metrics), squeeze=False)[0], history, metrics, val_label)
    else:
        bottom = fig
    axes = bottom.subplots(rows, 3, squeeze=False)
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap

    # one fixed colour per class: tab10's first colours (tab20's, then viridis' for more classes)
    cmap = (ListedColormap(colormaps["tab10" if num_classes <= 10 else "tab20"].colors[:max(num_classes, 2)])
            if num_classes <= 20 else colormaps["viridis"])
    for i in range(rows):
        img = x[i]
        if img.shape[0] == 3:
            img = img.transpose(1, 2, 0)
            lo, hi = float(img.min()), float(img.max())
            axes[i, 0].imshow((img - lo) / (hi - lo) if hi > lo else np.zeros_like(img))
        else:
            axes[i, 0].imshow(img[0], cmap="gray")
        shown = np.ma.masked_where((true[i] < 0) | (true[i] >= num_classes), true[i])
        axes[i, 1].imshow(shown, cmap=cmap, vmin=0, vmax=max(num_classes - 1, 1), interpolation="nearest")
        axes[i, 2].imshow(np.clip(pred[i], 0, num_classes - 1), cmap=cmap, vmin=0, vmax=max(num_classes - 1, 1),
                          interpolation="nearest")
        axes[i, 0].set_title("input" if x.shape[1] in (1, 3) else f"input (channel 0 of {x.shape[1]})", fontsize=9)
        axes[i, 1].set_title("true mask", fontsize=9)
        axes[i, 2].set_title(f"predicted (mean IoU {mean_iou(true[i], pred[i], num_classes):.3f})", fontsize=9)
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
    if title:
        fig.suptitle(title)
    if path is not None:
        save_figure(fig, path)
    return fig


def _mask_samples(samples) -> bool:
    """True when samples is (x (N, C, H, W), y (N, H, W)): per-pixel labels."""
    try:
        x, y = samples
    except (TypeError, ValueError):
        return False
    xs, ys = getattr(x, "shape", None), getattr(y, "shape", None)
    return (xs is not None and ys is not None and len(xs) == 4 and len(ys) == 3
            and tuple(ys) == (xs[0], xs[2], xs[3]))


def training_figure(history, model=None, samples=None, path=None, **options):
    """The figure of a finished fit, written to path when given: model.plot_training(history, samples,
    **options) when the model's class defines one (it returns a Figure, best a matplotlib.figure.Figure
    made without pyplot); else, when samples are images with per-pixel labels (x (N, C, H, W),
    y (N, H, W)) and there is a model, plot_segmentation(x, y, model.predict(x), history=history);
    else plot_history(history) (options: title, val_label). samples: a few held-out (x, y)."""
    own = getattr(model, "plot_training", None)
    if not callable(own):
        if model is not None and _mask_samples(samples):
            x, y = samples
            return plot_segmentation(x, y, model.predict(x), path=path, history=history, **options)
        return plot_history(history, path=path, **options)
    fig = own(history, samples, **options)
    if not hasattr(fig, "savefig"):
        raise TypeError(f"{type(model).__name__}.plot_training must return a matplotlib Figure, "
                        f"got {type(fig).__name__}")
    if path is not None:
        save_figure(fig, path)
    return fig
