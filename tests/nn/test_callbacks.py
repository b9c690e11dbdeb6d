"""Keras-style callbacks (ModelCheckpoint, CSVLogger, LearningRateScheduler, ReduceLROnPlateau) on tiny
fits, alone and with the schedules of fastlayers.optim; the optimizers' uniform `lr`; the primary-process
switch that decides who writes files."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from fastlayers import _primary, nn, optim


def _blobs(rng, n=48, classes=3):
    centers = rng.standard_normal((classes, 4)) * 3
    y = rng.integers(0, classes, n)
    x = (centers[y] + rng.standard_normal((n, 4))).astype(np.float32)
    return x, y


def _optimizers():
    """Every optimizer class of fastlayers.optim, with a learning rate it trains with."""
    out = []
    for name in optim.__all__:
        cls = getattr(optim, name)
        if isinstance(cls, type) and issubclass(cls, optim.Optimizer) and cls is not optim.Optimizer:
            out.append(cls)
    return out


class _LrProbe(nn.Callback):
    """Records the learning rate each epoch trained with (read at the end of the epoch)."""

    def __init__(self):
        self.lrs = []

    def on_epoch_end(self, model, epoch, logs):
        self.lrs.append(model.optimizer.lr)


# --- ModelCheckpoint ------------------------------------------------------------------------------

def test_checkpoint_every_epoch_formats_the_name_and_saves_that_epochs_weights(rng, tmp_path):
    x, y = _blobs(rng)
    xv, yv = _blobs(rng, n=20)
    model = nn.models.mlp([4, 8, 3], seed=0)
    ck = nn.ModelCheckpoint(tmp_path / "ck" / "m-{epoch:02d}-{val_loss:.4f}.npz")  # folder made on demand
    h = model.fit(x, y, epochs=3, batch_size=16, validation_data=(xv, yv), callbacks=[ck], verbose=0)
    names = sorted(p.name for p in (tmp_path / "ck").iterdir())
    assert names == [f"m-{e + 1:02d}-{v:.4f}.npz" for e, v in enumerate(h.val_loss)]
    for e, name in enumerate(names):  # each file holds the weights that produced that epoch's val_loss
        saved = nn.load_model(tmp_path / "ck" / name)
        assert saved.evaluate(xv, yv)["loss"] == pytest.approx(h.val_loss[e], rel=1e-6)
    assert ck.last_saved == str(tmp_path / "ck" / names[-1])


def test_checkpoint_best_only_keeps_the_best_epoch(rng, tmp_path):
    x, y = _blobs(rng, n=60)
    xv, yv = x.copy(), rng.permutation(y)  # unrelated labels: val_loss wanders, rises as x is fitted
    model = nn.models.mlp([4, 32, 3], seed=0)
    every = nn.ModelCheckpoint(tmp_path / "improved-{epoch}.npz", save_best_only=True)
    best = nn.ModelCheckpoint(tmp_path / "best.npz", monitor="val_loss", save_best_only=True, verbose=1)
    h = model.fit(x, y, epochs=8, batch_size=6, validation_data=(xv, yv), verbose=0,
                  optimizer=optim.SGD(model.parameters(), lr=0.2, momentum=0.9), callbacks=[every, best])
    improved = [e for e, v in enumerate(h.val_loss) if v < min(h.val_loss[:e], default=math.inf)]
    assert 1 <= len(improved) < 8  # the data make some epochs worse
    assert sorted(p.name for p in tmp_path.glob("improved-*")) == sorted(f"improved-{e + 1}.npz" for e in improved)
    assert best.best == min(h.val_loss)
    assert nn.load_model(tmp_path / "best.npz").evaluate(xv, yv)["loss"] == pytest.approx(min(h.val_loss), rel=1e-6)
    assert not list(tmp_path.glob("*.part")) and not list(tmp_path.glob(".*"))  # no temporary files left


def test_checkpoint_mode_auto_maximises_accuracy(rng, tmp_path):
    x, y = _blobs(rng)
    model = nn.models.mlp([4, 8, 3], seed=0)
    ck = nn.ModelCheckpoint(tmp_path / "m.npz", monitor="accuracy", save_best_only=True)
    assert ck.mode == "max" and nn.ModelCheckpoint(tmp_path / "m.npz").mode == "min"
    h = model.fit(x, y, epochs=3, callbacks=[ck], verbose=0)
    assert ck.best == max(h.accuracy)
    with pytest.raises(ValueError, match="mode must be 'auto', 'min' or 'max', got 'best'"):
        nn.ModelCheckpoint("m.npz", mode="best")


def test_checkpoint_errors(rng, tmp_path):
    x, y = _blobs(rng, n=16)
    model = nn.models.mlp([4, 3], seed=0)
    with pytest.raises(ValueError, match=r"names \['val_acc'\].*they have epoch, accuracy, loss"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[nn.ModelCheckpoint(tmp_path / "m-{val_acc:.2f}.npz")])
    with pytest.raises(ValueError, match="ModelCheckpoint monitors 'val_loss'.*validation_split"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[nn.ModelCheckpoint(tmp_path / "m.npz", save_best_only=True)])
    assert not list(tmp_path.iterdir())
    with pytest.raises(ValueError, match="save_freq must be 'epoch'.*got 5"):
        nn.ModelCheckpoint(tmp_path / "m.npz", save_freq=5)
    with pytest.raises(TypeError, match="filepath must be a file name"):
        nn.ModelCheckpoint(None)
    with pytest.raises(ValueError, match="empty"):
        nn.ModelCheckpoint(tmp_path / "m-{}.npz")
    reg = nn.Sequential([nn.Linear(4, 1, rng=rng)], loss="mse")  # accuracy is None for a regression
    with pytest.raises(ValueError, match="accuracy is None in this fit"):
        reg.fit(x, rng.standard_normal((16, 1)), verbose=0, callbacks=[nn.ModelCheckpoint(tmp_path / "{accuracy:.2f}")])


def test_only_the_primary_process_writes(rng, tmp_path):
    x, y = _blobs(rng, n=16)
    model = nn.models.mlp([4, 3], seed=0)
    ck, log = nn.ModelCheckpoint(tmp_path / "m-{epoch}.npz"), nn.CSVLogger(tmp_path / "log.csv")
    _primary.set_primary_check(lambda: False)  # as a rank other than 0 of a data-parallel run
    try:
        h = model.fit(x, y, epochs=2, verbose=0, callbacks=[ck, log])
        h.plot(tmp_path / "h.png")
    finally:
        _primary.set_primary_check(None)
    assert not list(tmp_path.iterdir())
    assert _primary.is_primary()
    with pytest.raises(TypeError, match="callable"):
        _primary.set_primary_check(0)


# --- CSVLogger ------------------------------------------------------------------------------------

def test_csv_logger_writes_every_epoch_and_appends(rng, tmp_path):
    x, y = _blobs(rng)
    model = nn.models.mlp([4, 8, 3], seed=0)
    path = tmp_path / "log.csv"
    h = model.fit(x, y, epochs=3, validation_split=0.25, callbacks=[nn.CSVLogger(path)], verbose=0)
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert [int(r[0]) for r in rows[1:]] == [0, 1, 2]
    for col, key in enumerate(rows[0][1:], 1):
        assert [float(r[col]) for r in rows[1:]] == h[key]  # full precision, no rounding
    h2 = model.fit(x, y, epochs=2, validation_split=0.25, callbacks=[nn.CSVLogger(path, append=True)], verbose=0)
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert len(rows) == 1 + 3 + 2 and rows[0][0] == "epoch" and [r[0] for r in rows[4:]] == ["0", "1"]
    assert float(rows[-1][2]) == h2.loss[-1]
    model.fit(x, y, epochs=1, callbacks=[nn.CSVLogger(path)], verbose=0)  # append=False starts over
    assert len(path.read_text().splitlines()) == 2


def test_csv_logger_separator_and_regression_columns(rng, tmp_path):
    x = rng.standard_normal((20, 3)).astype(np.float32)
    t = x @ np.array([[1.0], [-2.0], [0.5]], np.float32)
    model = nn.Sequential([nn.Linear(3, 1, rng=rng)], loss="mse")
    path = tmp_path / "reg.tsv"
    model.fit(x, t, epochs=2, callbacks=[nn.CSVLogger(path, separator="\t")], verbose=0)
    lines = path.read_text().splitlines()
    assert lines[0] == "epoch\tloss" and len(lines) == 3  # no accuracy column for a regression loss
    with pytest.raises(ValueError, match="separator must be a single character"):
        nn.CSVLogger(path, separator=", ")


# --- LearningRateScheduler ------------------------------------------------------------------------

@pytest.mark.parametrize("opt_cls", _optimizers(), ids=lambda c: c.__name__)
def test_scheduler_sets_each_epochs_lr_with_every_optimizer(rng, opt_cls):
    x, y = _blobs(rng, n=24)
    model = nn.models.mlp([4, 6, 3], seed=0)
    opt = opt_cls(model.parameters(), lr=0.05)
    seen = []

    def schedule(epoch, lr):
        seen.append((epoch, lr))
        return 0.05 * 0.5 ** epoch if epoch < 3 else 0.0  # lr 0 freezes the last epoch

    probe, frozen = _LrProbe(), {}

    class Weights(nn.Callback):
        def on_epoch_begin(self, m, epoch, logs=None):
            frozen[epoch] = [p.data.copy() for p in m.parameters()]

    model.fit(x, y, epochs=4, batch_size=8, optimizer=opt,
              callbacks=[nn.LearningRateScheduler(schedule), probe, Weights()], verbose=0)
    assert probe.lrs == [0.05, 0.025, 0.0125, 0.0]
    assert seen == [(0, 0.05), (1, 0.05), (2, 0.025), (3, 0.0125)]  # called with the current rate
    assert opt.lr == opt.learning_rate == 0.0
    for p, w in zip(model.parameters(), frozen[3]):  # the lr the optimizer really used
        np.testing.assert_array_equal(p.data, w)
    assert any(not np.array_equal(a, b) for a, b in zip(frozen[1], frozen[2]))


def test_scheduler_one_argument_form_verbose_and_errors(rng, capsys):
    x, y = _blobs(rng, n=16)
    model = nn.models.mlp([4, 3], seed=0)
    probe = _LrProbe()
    model.fit(x, y, epochs=2, verbose=0, optimizer=optim.SGD(model.parameters(), lr=0.1),
              callbacks=[nn.LearningRateScheduler(lambda epoch: 0.01 * (epoch + 1), verbose=1), probe])
    assert probe.lrs == [0.01, 0.02]
    assert "Epoch 00002: LearningRateScheduler setting learning rate to 0.02." in capsys.readouterr().out
    with pytest.raises(TypeError, match=r"schedule\(epoch=0, lr=0.02\) returned str 'fast'"):
        model.fit(x, y, verbose=0, callbacks=[nn.LearningRateScheduler(lambda e, lr: "fast")])
    with pytest.raises(ValueError, match=r"returned -1.0; a learning rate must be finite and >= 0"):
        model.fit(x, y, verbose=0, callbacks=[nn.LearningRateScheduler(lambda e, lr: -1.0)])
    with pytest.raises(ValueError, match="returned nan"):
        model.fit(x, y, verbose=0, callbacks=[nn.LearningRateScheduler(lambda e, lr: float("nan"))])
    with pytest.raises(TypeError, match="schedule must be a function"):
        nn.LearningRateScheduler(0.1)


def test_scheduler_chains_with_an_optim_schedule(rng):
    """LearningRateScheduler halves the rate before each epoch after the first; ExponentialLR(0.9)
    multiplies it after each epoch: each continues from the rate the other left."""
    x, y = _blobs(rng, n=16)
    model = nn.models.mlp([4, 3], seed=0)
    opt = optim.SGD(model.parameters(), lr=0.1)
    probe = _LrProbe()
    model.fit(x, y, epochs=3, verbose=0, optimizer=opt,
              callbacks=[nn.LearningRateScheduler(lambda e, lr: lr if e == 0 else lr / 2),
                         probe, optim.ExponentialLR(opt, 0.9)])
    np.testing.assert_allclose(probe.lrs, [0.1, 0.1 * 0.9 / 2, 0.1 * 0.9 ** 2 / 4], rtol=1e-12)
    assert opt.lr == pytest.approx(0.1 * 0.9 ** 3 / 4, rel=1e-12)


# --- ReduceLROnPlateau ----------------------------------------------------------------------------

class _Model:
    """Just what a callback sees of a model."""

    def __init__(self, lr):
        self.optimizer = optim.SGD([nn.Parameter(np.zeros(2, np.float32))], lr=lr)
        self.stop_training = False


def _drive(cb, values, lr=0.1, key="val_loss"):
    m = _Model(lr)
    cb.on_train_begin(m)
    out = []
    for e, v in enumerate(values):
        cb.on_epoch_end(m, e, {"loss": 1.0, key: v})
        out.append(m.optimizer.lr)
    return out


def test_plateau_patience_cooldown_min_lr():
    # patience 2: two epochs without improvement halve the rate; a cooldown epoch follows (its
    # counter ends within that epoch, so that epoch already counts, as in Keras); never below min_lr,
    # and at min_lr nothing changes any more.
    cb = nn.ReduceLROnPlateau(factor=0.5, patience=2, cooldown=1, min_delta=0.0, min_lr=0.02)
    lrs = _drive(cb, [1.0, 0.9, 0.95, 0.93, 0.92, 0.91, 0.99, 0.99, 0.5, 0.6, 0.6])
    np.testing.assert_allclose(lrs, [.1, .1, .1, .05, .05, .025, .025, .02, .02, .02, .02], rtol=1e-12)
    assert cb.best == 0.5


def test_plateau_min_delta_mode_and_a_longer_cooldown():
    cb = nn.ReduceLROnPlateau(monitor="val_accuracy", factor=0.1, patience=1, min_delta=0.05)
    assert cb.mode == "max"
    np.testing.assert_allclose(_drive(cb, [0.5, 0.52, 0.6], key="val_accuracy"), [0.1, 0.01, 0.01], rtol=1e-12)
    cb = nn.ReduceLROnPlateau(factor=0.5, patience=1, cooldown=3, min_delta=0.0)
    # reduce after epoch 1; epochs 2-3 are cooldown (no counting), epoch 4 counts again
    np.testing.assert_allclose(_drive(cb, [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]), [.1, .05, .05, .05, .025, .025])


def test_plateau_in_fit_chains_with_step_lr(rng):
    x, y = _blobs(rng, n=60)
    xv, yv = x.copy(), rng.permutation(y)  # val_loss stops improving soon
    model = nn.models.mlp([4, 32, 3], seed=0)
    opt = optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    plateau = nn.ReduceLROnPlateau(factor=0.5, patience=1, min_delta=0.0)
    probe = _LrProbe()
    h = model.fit(x, y, epochs=8, batch_size=6, validation_data=(xv, yv), optimizer=opt, verbose=0,
                  callbacks=[probe, plateau, optim.StepLR(opt, step_size=4, gamma=0.1)])
    # the rate each epoch trained with, replayed: StepLR's tenfold cut after epoch 4, and a halving
    # after every epoch that did not beat the best val_loss (patience 1)
    expected, lr, best = [], 0.2, math.inf
    for e, v in enumerate(h.val_loss):
        expected.append(lr)
        if v < best:
            best = v
        else:
            lr *= 0.5
        if (e + 1) % 4 == 0:
            lr *= 0.1
    np.testing.assert_allclose(probe.lrs, expected, rtol=1e-12)
    assert len(set(probe.lrs)) > 2


def test_plateau_errors():
    with pytest.raises(ValueError, match=r"factor must be in \(0.0, 1.0\), got 1.5"):
        nn.ReduceLROnPlateau(factor=1.5)
    with pytest.raises(ValueError, match="patience must be >= 0"):
        nn.ReduceLROnPlateau(patience=-1)
    with pytest.raises(ValueError, match="ReduceLROnPlateau monitors 'val_loss'"):
        _drive(nn.ReduceLROnPlateau(), [1.0], key="loss")
    cb = nn.ReduceLROnPlateau()

    class NoOptimizer:
        optimizer = None

    with pytest.raises(TypeError, match="needs an optimizer with a float lr"):
        cb.on_train_begin(NoOptimizer())


# --- the optimizers' lr ---------------------------------------------------------------------------

@pytest.mark.parametrize("opt_cls", _optimizers(), ids=lambda c: c.__name__)
def test_every_optimizer_has_a_checked_lr(opt_cls):
    opt = opt_cls([nn.Parameter(np.zeros(2, np.float32))], lr=0.3)
    assert opt.lr == opt.learning_rate == 0.3
    opt.learning_rate = 0.1
    assert opt.lr == 0.1
    for bad, err in (("0.1", TypeError), (-0.1, ValueError), (float("inf"), ValueError), (None, TypeError)):
        with pytest.raises(err, match="lr"):
            opt.lr = bad
    assert opt.lr == 0.1


def test_early_stopping_mode_auto():
    assert nn.EarlyStopping().mode == "min" and nn.EarlyStopping(monitor="val_accuracy").mode == "max"
