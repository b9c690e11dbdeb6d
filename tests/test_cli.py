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
