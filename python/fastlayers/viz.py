"""Pictures of training (matplotlib, imported only when a figure is drawn).

- `plot_history(history, path=None)`: loss and accuracy per epoch, train and validation (what
  `History.plot()` and `fastlayers train --plot PATH` draw).
- `training_figure(history, model=None, samples=None, path=None)`: the figure `fastlayers train --plot`
  writes.
  A model class can supply its own by defining `plot_training(history, samples) -> Figure`
  (a segmentation model, say, adding inputs with their true and predicted masks); every other model
  gets plot_history's curves.
- `save_figure(fig, path)`: write a figure (PNG, or any format matplotlib knows from the suffix),
  through a temporary file, in the primary process only (see fastlayers._primary).

With a path, figures are drawn on a plain matplotlib Figure (no pyplot, no display, no global
state), so they work on machines without a screen and from threads; without one, they come from
pyplot, so that a notebook shows them.
"""

from __future__ import annotations

import os

__all__ = ["plot_history", "training_figure", "save_figure", "have_matplotlib"]


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _new_figure(ncols: int, width: float, height: float, interactive: bool):
    try:
        import matplotlib  # noqa: F401
    except ImportError as e:
        raise ImportError("plots need matplotlib (a dependency of fastlayers; in an installation without it: "
                          "pip install matplotlib)") from e
    if interactive:
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, ncols, figsize=(width, height), squeeze=False)
    else:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(width, height))
        axes = fig.subplots(1, ncols, squeeze=False)
    return fig, list(axes[0])


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


def plot_history(history, path=None, metrics=None, title: str | None = None, val_label: str = "validation"):
    """One panel per metric (default: 'loss', and 'accuracy' when there is one), each with the
    training curve and, when the fit had validation data, the validation curve (val_<metric>,
    labelled val_label), over epochs counted from 1. Writes the figure to path when given; returns
    the matplotlib Figure."""
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
    if path is not None:
        path = _path_arg(path)
    fig, axes = _new_figure(len(metrics), 5.0 * len(metrics), 3.6, interactive=path is None)
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
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


def training_figure(history, model=None, samples=None, path=None, **options):
    """The figure of a finished fit, written to path when given: model.plot_training(history, samples,
    **options) when the model's class defines one (it returns a Figure, best a matplotlib.figure.Figure
    made without pyplot), else plot_history(history, **options) (options: title, val_label).
    samples: a few held-out (x, y) for models that show examples."""
    own = getattr(model, "plot_training", None)
    if not callable(own):
        return plot_history(history, path=path, **options)
    fig = own(history, samples, **options)
    if not hasattr(fig, "savefig"):
        raise TypeError(f"{type(model).__name__}.plot_training must return a matplotlib Figure, "
                        f"got {type(fig).__name__}")
    if path is not None:
        save_figure(fig, path)
    return fig
