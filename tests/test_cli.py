"""The `fastlayers` command line, run as a subprocess (`python -m fastlayers.cli`, a fresh interpreter,
so no forked child inherits OpenMP state)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

import fastlayers as fl


def _run(*args, timeout=300):
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    return subprocess.run([sys.executable, "-m", "fastlayers.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_train_smoke_last_line_and_save(tmp_path):
    path = tmp_path / "mlp.npz"
    r = _run("train", "--model", "mlp", "--epochs", "1", "--limit", "300", "--test-limit", "200",
             "--save", str(path))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    m = re.fullmatch(r"test_accuracy=(0\.\d{4}|1\.0000)", lines[-1])
    assert m, lines[-1]
    assert float(m.group(1)) > 0.3  # 300 images, one epoch: far better than chance (0.1)
    assert any("epoch 1/1" in line for line in lines)  # progress, one line per epoch when not a tty
    from fastlayers import data, nn

    model = nn.load_model(path)
    (_, _), (xte, yte) = data.load_mnist_embedded()
    (xtr, _), _ = data.load_mnist_embedded()
    _, xte = data.standardize(xtr[:300], xte[:200])
    assert model.evaluate(xte[:, None], yte[:200])["accuracy"] == pytest.approx(float(m.group(1)), abs=6e-5)


def test_train_cnn_quiet_one_step():
    r = _run("train", "--epochs", "1", "--limit", "64", "--batch-size", "32", "--test-limit", "50", "--quiet")
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(r"test_accuracy=\d\.\d{4}", r.stdout.strip())  # quiet: only the result line


def test_unknown_model_is_rejected():
    r = _run("train", "--model", "vgg")
    assert r.returncode == 2
    assert "invalid choice: 'vgg'" in r.stderr


@pytest.mark.parametrize("argv, message", [
    (("--epochs", "0"), "--epochs must be >= 1, got 0"),
    (("--batch-size", "0"), "--batch-size must be >= 1, got 0"),
    (("--lr", "nan"), "--lr must be a finite number > 0, got nan"),
    (("--lr", "inf"), "--lr must be a finite number > 0, got inf"),
    (("--momentum", "1.5"), "--momentum must be in [0, 1), got 1.5"),
    (("--lr-decay", "-1"), "--lr-decay must be a finite number > 0, got -1.0"),
    (("--seed", "-1"), "--seed must be >= 0, got -1"),
    (("--threads", "0"), "--threads must be in [1, "),
    (("--save", "/nonexistent-folder/m.npz"), "--save /nonexistent-folder/m.npz: not a file in an existing folder"),
    (("--plot", "/nonexistent-folder/h.png"), "--plot /nonexistent-folder/h.png: not a file in an existing folder"),
    (("--validation-split", "1"), "--validation-split must be in [0, 1), got 1.0"),
    (("--dataset", "cifar100"), "argument --dataset: invalid choice: 'cifar100'"),
    (("--epochs", "1.5"), "argument --epochs: invalid int value: '1.5'"),
])
def test_bad_options_are_rejected_before_training(argv, message, capsys):
    from fastlayers import cli

    try:
        rc = cli.main(["train", *argv, "--limit", "10"])
    except SystemExit as e:  # argparse's own errors
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err, err


@pytest.mark.skipif(fl.cuda.is_available(), reason="CUDA is usable here; the error path is for machines without it")
def test_cuda_device_without_cuda_is_a_clear_error():
    r = _run("train", "--device", "cuda", "--limit", "10", "--epochs", "1")
    assert r.returncode == 2
    assert "CUDA is not usable" in r.stderr
    assert "Traceback" not in r.stderr


def test_bench_subcommand_dispatches():
    r = _run("bench", "--help", timeout=120)
    try:
        import fastlayers.bench  # noqa: F401
    except ImportError:
        assert r.returncode == 2 and "not available" in r.stderr
    else:
        assert r.returncode == 0, r.stderr
        assert "usage" in (r.stdout + r.stderr).lower()


def test_help_lists_subcommands():
    r = _run("--help")
    assert r.returncode == 0 and "train" in r.stdout and "bench" in r.stdout


def test_train_from_idx_folder(tmp_path):
    import gzip
    import struct

    import numpy as np

    rng = np.random.default_rng(0)

    def idx(a):
        return bytes([0, 0, 8, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape) + a.tobytes()

    files = {"train-images-idx3-ubyte.gz": rng.integers(0, 256, (40, 28, 28), dtype=np.uint8),
             "train-labels-idx1-ubyte.gz": rng.integers(0, 10, 40).astype(np.uint8),
             "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (16, 28, 28), dtype=np.uint8),
             "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, 16).astype(np.uint8)}
    for name, a in files.items():
        (tmp_path / name).write_bytes(gzip.compress(idx(a)))
    r = _run("train", "--model", "logreg", "--data", str(tmp_path), "--no-download", "--epochs", "1")
    assert r.returncode == 0, r.stderr
    assert "40 train / 16 test" in r.stdout
    assert re.fullmatch(r"test_accuracy=\d\.\d{4}", r.stdout.strip().splitlines()[-1])
    r = _run("train", "--data", str(tmp_path / "empty"), "--no-download")
    assert r.returncode == 2 and "is missing" in r.stderr


def test_train_plot_draws_the_curves(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib is a dependency of fastlayers; this installation lacks it")
    path = tmp_path / "curves.png"
    r = _run("train", "--model", "logreg", "--epochs", "2", "--limit", "200", "--test-limit", "100",
             "--plot", str(path), "--validation-split", "0.25")
    assert r.returncode == 0, r.stderr
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote the training figure to {path}" in r.stdout and "val_accuracy=" in r.stdout
    assert r.stdout.strip().splitlines()[-1].startswith("test_accuracy=")


def _train_in_process(capsys, *argv):
    from fastlayers import cli

    rc = cli.main(["train", "--epochs", "1", "--batch-size", "8", "-q", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_train_on_fashion_mnist_files(tmp_path, capsys):
    import numpy as np

    from .data.formats import idx_set

    _, blobs, _ = idx_set(np.random.default_rng(0), n_train=24, n_test=10)
    for name, blob in blobs.items():
        (tmp_path / name).write_bytes(blob)
    rc, out, err = _train_in_process(capsys, "--dataset", "fashion-mnist", "--data", str(tmp_path), "--no-download",
                                     "--model", "lenet5")
    assert rc == 0, err
    assert re.fullmatch(r"test_accuracy=\d\.\d{4}", out.strip())
    rc, out, err = _train_in_process(capsys, "--dataset", "fashion-mnist", "--data", str(tmp_path / "none"),
                                     "--no-download")
    assert rc == 2 and "train-images-idx3-ubyte.gz is missing" in err


def test_train_on_cifar10_downloads_and_the_cnn_adapts(tmp_path, capsys, monkeypatch):
    import numpy as np

    from fastlayers.data import cifar

    from .data.formats import cifar_archive, md5, serve

    *_, blob = cifar_archive(np.random.default_rng(0), n_per_batch=4, n_test=5)
    www = tmp_path / "www"
    www.mkdir()
    (www / "cifar-10-python.tar.gz").write_bytes(blob)
    monkeypatch.setattr(cifar, "CIFAR10_ARCHIVE", ("cifar-10-python.tar.gz", md5(blob)))
    with serve(www) as url:
        monkeypatch.setattr(cifar, "CIFAR10_URL", url)
        rc, out, err = _train_in_process(capsys, "--dataset", "cifar10", "--data", str(tmp_path / "c10"),
                                         "--save", str(tmp_path / "m.npz"))
    assert rc == 0, err
    assert (tmp_path / "c10" / "cifar-10-python.tar.gz").is_file()
    from fastlayers import nn

    model = nn.load_model(tmp_path / "m.npz")
    assert model.input_shape == (3, 32, 32) and model[0].weight.shape == (32, 3, 5, 5)
    monkeypatch.setattr(cifar, "CIFAR10_ARCHIVE", ("cifar-10-python.tar.gz", "0" * 32))
    with serve(www) as url:  # a corrupt download: a clear error, nothing left in the folder
        monkeypatch.setattr(cifar, "CIFAR10_URL", url)
        rc, out, err = _train_in_process(capsys, "--dataset", "cifar10", "--data", str(tmp_path / "bad"))
    assert rc == 2 and "MD5 mismatch" in err and "Traceback" not in err
    assert not list((tmp_path / "bad").iterdir())
