"""Fashion-MNIST and CIFAR-10 from their standard files: downloaded from a loopback http.server (never the
internet) with the module's URL and checksums patched to the synthetic files', checked, cached; corrupt
downloads and hostile pickles refused with nothing left behind or run."""

from __future__ import annotations

import io
import pickle
import tarfile

import numpy as np
import pytest

from fastlayers import data
from fastlayers.data import cifar

from .formats import cifar_archive, cifar_batch, idx_set, md5, py2_pickle


def _leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.endswith(".part") or p.name.startswith(".")]


# --- Fashion-MNIST --------------------------------------------------------------------------------

def test_fashion_mnist_downloads_checks_md5_and_caches(served, tmp_path, rng, monkeypatch):
    www, url = served
    arrays, blobs, files = idx_set(rng)
    for name, blob in blobs.items():
        (www / name).write_bytes(blob)
    monkeypatch.setattr(data, "FASHION_MNIST_URL", url)  # the defaults are read at call time
    monkeypatch.setattr(data, "FASHION_MNIST_FILES", files)
    cache = tmp_path / "fashion"
    (xtr, ytr), (xte, yte) = data.load_fashion_mnist(cache)
    np.testing.assert_array_equal(xtr, arrays["train_images"])
    np.testing.assert_array_equal(yte, arrays["test_labels"])
    assert ytr.dtype == np.int64 and xte.shape == (12, 28, 28)
    assert sorted(p.name for p in cache.iterdir()) == sorted(blobs)
    for f in www.iterdir():  # the second call reads the cache
        f.unlink()
    np.testing.assert_array_equal(data.load_fashion_mnist(cache)[0][0], arrays["train_images"])


def test_fashion_mnist_md5_mismatch_leaves_nothing(served, tmp_path, rng):
    www, url = served
    _, blobs, files = idx_set(rng)
    for name, blob in blobs.items():
        (www / name).write_bytes(blob)
    files["train_labels"] = (files["train_labels"][0], "0" * 32)
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match="MD5 mismatch .*expected 0{32}, got [0-9a-f]{32}.*discarded"):
        data.load_fashion_mnist(cache, url=url, files=files)
    assert not (cache / files["train_labels"][0]).exists() and not _leftovers(cache)


def test_fashion_mnist_defaults():
    assert data.default_cache_dir("fashion-mnist").name == "fashion-mnist"
    assert data.default_cache_dir("cifar10") != data.default_cache_dir("mnist")  # same file names: own folders
    with pytest.raises(FileNotFoundError, match="is missing"):
        data.load_fashion_mnist("/nonexistent-fastlayers-folder", download=False)
    with pytest.raises(TypeError, match="download must be a bool"):
        data.load_fashion_mnist("/nonexistent-fastlayers-folder", download="no")


def test_published_checksums():
    # as published with the datasets (Zalando's README; the CIFAR-10 page), the sums torchvision checks
    sums = [s for _, s in data.FASHION_MNIST_FILES.values()]
    assert sums[0] == "8d4fb7e6c68d591d4c3dfef9ec88bf0d" and len(set(sums)) == 4
    assert all(len(s) == 32 and int(s, 16) >= 0 for s in sums)
    assert data.CIFAR10_ARCHIVE == ("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a")
    assert len(data.CIFAR10_CLASSES) == len(data.FASHION_MNIST_CLASSES) == 10


# --- CIFAR-10 -------------------------------------------------------------------------------------

def test_cifar10_downloads_checks_and_reads_the_archive_in_place(served, tmp_path, rng, monkeypatch):
    www, url = served
    x, y, xt, yt, blob = cifar_archive(rng)
    (www / "cifar-10-python.tar.gz").write_bytes(blob)
    monkeypatch.setattr(cifar, "CIFAR10_URL", url)
    monkeypatch.setattr(cifar, "CIFAR10_ARCHIVE", ("cifar-10-python.tar.gz", md5(blob)))
    cache = tmp_path / "c10"
    (xtr, ytr), (xte, yte) = data.load_cifar10(cache)
    assert xtr.shape == (20, 3, 32, 32) and xtr.dtype == np.uint8 and ytr.dtype == np.int64
    np.testing.assert_array_equal(xtr, x)  # rows of 3072 = the R, G, B planes of 32x32: NCHW
    np.testing.assert_array_equal(ytr, y)
    np.testing.assert_array_equal(xte, xt)
    np.testing.assert_array_equal(yte, yt)
    assert [p.name for p in cache.iterdir()] == ["cifar-10-python.tar.gz"]  # nothing extracted
    (www / "cifar-10-python.tar.gz").unlink()
    np.testing.assert_array_equal(data.load_cifar10(cache)[1][0], xt)  # from the cache


def test_cifar10_from_an_extracted_folder(tmp_path, rng):
    x, y, xt, yt, blob = cifar_archive(rng, n_per_batch=3, n_test=2)
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        for m in tar.getmembers():
            (tmp_path / m.name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / m.name).write_bytes(tar.extractfile(m).read())
    (xtr, ytr), (xte, yte) = data.load_cifar10(tmp_path, download=False)
    np.testing.assert_array_equal(xtr, x)
    np.testing.assert_array_equal(yte, yt)
    (tmp_path / "cifar-10-batches-py" / "test_batch").unlink()
    with pytest.raises(FileNotFoundError, match="cifar-10-python.tar.gz is missing, and so is an extracted"):
        data.load_cifar10(tmp_path, download=False)


def test_cifar10_checksum_mismatch_and_bad_archives(served, tmp_path, rng):
    www, url = served
    *_, blob = cifar_archive(rng, n_per_batch=1, n_test=1)
    (www / "cifar-10-python.tar.gz").write_bytes(blob)
    cache = tmp_path / "c"
    with pytest.raises(ValueError, match="MD5 mismatch"):
        data.load_cifar10(cache, url=url, archive=("cifar-10-python.tar.gz", "f" * 32))
    assert not list(cache.iterdir())
    (cache / "cifar-10-python.tar.gz").write_bytes(blob[: len(blob) // 2])  # truncated
    with pytest.raises(ValueError, match="not a readable .tar.gz archive"):
        data.load_cifar10(cache, download=False)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:  # an archive without the batches
        info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
        tar.addfile(info, io.BytesIO(b""))
    (cache / "cifar-10-python.tar.gz").write_bytes(buf.getvalue())
    with pytest.raises(ValueError, match="data_batch_1: not a CIFAR-10 batch"):
        data.load_cifar10(cache, download=False)


def test_cifar_batches_are_unpickled_safely(tmp_path, rng):
    marker = tmp_path / "ran"
    # a pickle that would call os.system: refused by name, nothing imported or run
    evil = b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."
    with pytest.raises(ValueError, match="global 'os.system' is not allowed"):
        cifar.read_cifar_batch(evil, "evil")
    assert not marker.exists()
    evil = pickle.dumps({b"data": np.array([marker], dtype=object), b"labels": [0]}, protocol=2)
    with pytest.raises(ValueError, match="not allowed|only numeric"):
        cifar.read_cifar_batch(evil, "objects")
    # numpy.ndarray may only appear as _reconstruct's argument, never be called with a buffer
    called = (b"\x80\x02cnumpy\nndarray\nK\x01\x85cnumpy\ndtype\nU\x02u1\x89\x88\x87RU\x01a\x87R.")
    with pytest.raises(ValueError, match="not a CIFAR-10 batch"):
        cifar.read_cifar_batch(called, "called")
    with pytest.raises(ValueError, match="'data' must be a uint8 array"):
        cifar.read_cifar_batch(py2_pickle({"data": np.zeros((2, 10), np.uint8), "labels": [0, 1]}))
    with pytest.raises(ValueError, match="'labels' must hold 2 integers"):
        cifar.read_cifar_batch(py2_pickle({"data": np.zeros((2, 3072), np.uint8), "labels": [0]}))
    with pytest.raises(ValueError, match="labels must be in 0-9"):
        cifar.read_cifar_batch(py2_pickle({"data": np.zeros((1, 3072), np.uint8), "labels": [12]}))
    with pytest.raises(ValueError, match="a pickled list, expected a dict"):
        cifar.read_cifar_batch(py2_pickle([1, 2]))
    with pytest.raises(ValueError, match="not a CIFAR-10 batch"):
        cifar.read_cifar_batch(b"\x00garbage")


def test_cifar_batches_pickled_by_python3_and_numpy2_also_load(rng):
    x, y, _ = cifar_batch(rng, 3)
    for protocol in (2, 4, pickle.HIGHEST_PROTOCOL):  # str keys, _codecs.encode (2), numpy._core names
        d = {"data": x.reshape(3, 3072), "labels": np.asarray(y, np.int64), "batch_label": "b"}
        xs, ys = cifar.read_cifar_batch(pickle.dumps(d, protocol=protocol))
        np.testing.assert_array_equal(xs, x)
        np.testing.assert_array_equal(ys, y)
