"""History.plot / fastlayers.viz: the curves drawn are the History's values; files appear whole; a model
can supply its own training figure; importing fastlayers does not import matplotlib."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from fastlayers import nn, viz

pytest.importorskip("matplotlib", reason="matplotlib is a dependency of fastlayers; this installation lacks it")


def _history(classify=True, validation=True, epochs=3):
    h = nn.History()
    rng = np.random.default_rng(0)
    for e in range(epochs):
        logs = {"loss": float(rng.random()), "accuracy": float(rng.random()) if classify else None}
        if validation:
            logs["val_loss"], logs["val_accuracy"] = float(rng.random()), float(rng.random()) if classify else None
        h.append(e, logs)
    return h


def _lines(ax):
    return {line.get_label().split(" (")[0]: (list(line.get_xdata()), list(line.get_ydata())) for line in ax.lines}


def test_history_plot_draws_train_and_validation_per_metric(tmp_path):
    h = _history()
    path = tmp_path / "h.png"
    fig = h.plot(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy"]
    for ax, m in zip(fig.axes, ("loss", "accuracy")):
        lines = _lines(ax)
        assert lines["train"] == ([1, 2, 3], h[m]) and lines["validation"] == ([1, 2, 3], h["val_" + m])
    assert not list(tmp_path.glob("*.part")) and not list(tmp_path.glob(".*"))


def test_regression_and_no_validation_draw_what_exists(tmp_path):
    fig = _history(classify=False, validation=False).plot(tmp_path / "r.svg")
    assert [ax.get_title() for ax in fig.axes] == ["loss"] and set(_lines(fig.axes[0])) == {"train"}
    assert (tmp_path / "r.svg").read_text().lstrip().startswith("<?xml")
    fig = _history().plot(tmp_path / "v.png", metrics="val_loss")  # a metric with no train twin
    assert set(_lines(fig.axes[0])) == {"train"} and fig.axes[0].get_title() == "val_loss"


def test_history_plot_errors(tmp_path):
    h = _history(classify=False)
    with pytest.raises(ValueError, match=r"no values for 'accuracy'; it has \['loss', 'val_loss'\]"):
        h.plot(tmp_path / "x.png", metrics=["accuracy"])
    with pytest.raises(ValueError, match="empty"):
        nn.History().plot(tmp_path / "x.png")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        h.plot(tmp_path / "missing" / "x.png")
    with pytest.raises(TypeError, match="path must be a file name"):
        h.plot(3)
    with pytest.raises(TypeError, match="history must be the History"):
        viz.plot_history({"loss": [1.0]})
    assert not list(tmp_path.iterdir())


def test_plot_without_path_is_a_pyplot_figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = _history().plot()
    try:
        assert plt.fignum_exists(fig.number)  # shown by a notebook, managed by pyplot
    finally:
        plt.close(fig)


def test_a_model_can_supply_its_own_training_figure(tmp_path):
    from matplotlib.figure import Figure

    class Segmenter(nn.Sequential):
        def plot_training(self, history, samples, **options):
            fig = Figure()
            fig.subplots(1, len(samples[0]))
            return fig

    model, h = Segmenter([nn.ReLU()]), _history()
    fig = viz.training_figure(h, model, samples=(np.zeros((3, 1, 4, 4)), np.zeros(3)), path=tmp_path / "s.png")
    assert len(fig.axes) == 3 and (tmp_path / "s.png").exists()
    fig = viz.training_figure(h, nn.Sequential([nn.ReLU()]), path=tmp_path / "c.png")
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy"]


def test_import_does_not_load_matplotlib():
    code = "import sys, fastlayers; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr
