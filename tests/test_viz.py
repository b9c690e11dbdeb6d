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


def _masks(n=3, h=12, w=10):
    y = np.zeros((n, h, w), np.int64)
    for i in range(n):
        y[i, 2:6, 1 + i:5 + i] = 1
        y[i, 8:11, 3:8] = 2
    x = (y[:, None] + np.random.default_rng(1).normal(0, 0.2, (n, 1, h, w))).astype(np.float32)
    return x, y


def test_mean_iou():
    t = np.array([[0, 0, 1, 1], [0, 0, 1, 1]])
    p = np.array([[0, 1, 1, 1], [0, 0, 1, 1]])
    # class 0: 3 / 4, class 1: 4 / 5
    assert viz.mean_iou(t, p, 2) == pytest.approx((3 / 4 + 4 / 5) / 2)
    assert viz.mean_iou(t, t, 2) == 1.0
    ignored = np.where(t == 1, 255, t)  # an ignore label counts nowhere
    assert viz.mean_iou(ignored, p, 2) == pytest.approx((3 / 4 + 0) / 2)  # class 0: 3 of 4; class 1: 0 of 1


def test_segmentation_rows_show_input_true_and_predicted(tmp_path):
    x, y = _masks()
    scores = np.eye(3, dtype=np.float32)[y].transpose(0, 3, 1, 2)  # (N, C, H, W), argmax = y
    scores[1, :, 0, 0] = [0, 0, 5]  # one wrong pixel in image 1
    fig = viz.plot_segmentation(x, y, scores, path=tmp_path / "seg.png", max_rows=2)
    assert (tmp_path / "seg.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    axes = fig.axes
    assert len(axes) == 6  # 2 rows of input, true, predicted
    assert [ax.get_title() for ax in axes[:3]] == ["input", "true mask", "predicted (mean IoU 1.000)"]
    np.testing.assert_array_equal(axes[0].images[0].get_array(), x[0, 0])
    np.testing.assert_array_equal(axes[4].images[0].get_array(), y[1])
    pred1 = axes[5].images[0].get_array()
    assert pred1[0, 0] == 2 and np.array_equal(pred1.ravel()[1:], y[1].ravel()[1:])
    want = viz.mean_iou(y[1], pred1, 3)
    assert want < 1 and axes[5].get_title() == f"predicted (mean IoU {want:.3f})"
    # the class colours are fixed: the same class has the same colour in both masks
    assert axes[1].images[0].get_clim() == axes[2].images[0].get_clim() == (0, 2)


def test_segmentation_under_the_curves_and_binary_logits(tmp_path):
    x, y = _masks(n=2)
    yb = (y > 0).astype(np.int64)
    logits = np.where(yb[:, None] > 0, 3.0, -3.0).astype(np.float32)  # (N, 1, H, W): score > 0 is class 1
    rgb = np.repeat(x, 3, axis=1)  # colour input
    fig = viz.plot_segmentation(rgb, yb, logits, path=tmp_path / "b.png", history=_history())
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:2] == ["loss", "accuracy"] and titles[2:5] == ["input", "true mask", "predicted (mean IoU 1.000)"]
    assert fig.axes[2].images[0].get_array().shape == (12, 10, 3)
    with pytest.raises(ValueError, match=r"true_masks must be class indices \(N, H, W\) = \(2, 12, 10\)"):
        viz.plot_segmentation(x, y[:, :5], logits)
    with pytest.raises(ValueError, match="whole class indices"):
        viz.plot_segmentation(x, y + 0.5, y)
    with pytest.raises(ValueError, match="max_rows must be an int >= 1, got 0"):
        viz.plot_segmentation(x, y, y, max_rows=0)


def test_training_figure_of_a_per_pixel_model_shows_its_predictions(tmp_path):
    # what `fastlayers train --plot` draws for a segmentation model: predictions of the trained model
    x, y = _masks(n=2)
    model = nn.Sequential([nn.Conv2d(1, 3, 3, padding=1)])
    fig = viz.training_figure(_history(), model, samples=(x, y), path=tmp_path / "t.png", val_label="test set")
    assert (tmp_path / "t.png").exists()
    pred = model.predict(x).argmax(axis=1)
    np.testing.assert_array_equal(fig.axes[-1].images[0].get_array(), pred[1])
    assert "test set" in fig.axes[0].get_legend().get_texts()[1].get_text()
