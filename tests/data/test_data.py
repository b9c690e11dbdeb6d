"""fastlayers.data: the embedded MNIST subset, IDX files, the downloader (served from a loopback
http.server on 127.0.0.1, no outside network), standardisation, batching, the Rosenbrock sets."""

from __future__ import annotations

import gzip
import hashlib
import socket
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastlayers import data


def test_embedded_subset():
    (xtr, ytr), (xte, yte) = data.load_mnist_embedded()
    assert xtr.shape == (4000, 28, 28) and xte.shape == (1000, 28, 28)
    assert xtr.dtype == np.uint8 and ytr.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(ytr, minlength=10), [400] * 10)  # stratified
    np.testing.assert_array_equal(np.bincount(yte, minlength=10), [100] * 10)
    assert xtr.max() == 255 and xtr.min() == 0
    # real digits: the mean image of each class differs from the others'; the border is mostly blank
    assert xtr[:, 0, :].mean() < 1 and xtr[:, 10:18, 10:18].mean() > 50
    # held out: no test image also appears in the training split
    train_keys = {bytes(im) for im in xtr.reshape(4000, -1)}
    assert not any(bytes(im) in train_keys for im in xte.reshape(1000, -1))
    assert data.EMBEDDED.stat().st_size < 2_000_000


def _idx_bytes(a: np.ndarray) -> bytes:
    code = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C}[a.dtype]
    return bytes([0, 0, code, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape) + a.tobytes()


def _fake_mnist(rng, n_train=12, n_test=5):
    arrays = {"train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
              "train_labels": rng.integers(0, 10, n_train).astype(np.uint8),
              "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
              "test_labels": rng.integers(0, 10, n_test).astype(np.uint8)}
    blobs = {key: gzip.compress(_idx_bytes(a)) for key, a in arrays.items()}
    files = {key: (data.MNIST_FILES[key][0], hashlib.sha256(blobs[key]).hexdigest()) for key in blobs}
    return arrays, blobs, files


def _check(loaded, arrays):
    (xtr, ytr), (xte, yte) = loaded
    np.testing.assert_array_equal(xtr, arrays["train_images"])
    np.testing.assert_array_equal(ytr, arrays["train_labels"])
    np.testing.assert_array_equal(xte, arrays["test_images"])
    np.testing.assert_array_equal(yte, arrays["test_labels"])
    assert ytr.dtype == np.int64


def test_read_idx_plain_and_gzip(tmp_path, rng):
    a = rng.integers(0, 256, (3, 4, 5), dtype=np.uint8)
    (tmp_path / "a-idx3-ubyte").write_bytes(_idx_bytes(a))
    (tmp_path / "a-idx3-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(a)))
    np.testing.assert_array_equal(data.read_idx(tmp_path / "a-idx3-ubyte"), a)
    np.testing.assert_array_equal(data.read_idx(tmp_path / "a-idx3-ubyte.gz"), a)
    b = rng.integers(-1000, 1000, (7,)).astype(">i4")
    (tmp_path / "b").write_bytes(_idx_bytes(b))
    np.testing.assert_array_equal(data.read_idx(tmp_path / "b"), b)
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(ValueError, match="not an IDX file"):
        data.read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(_idx_bytes(a)[:-3])
    with pytest.raises(ValueError, match="header says"):
        data.read_idx(tmp_path / "short")


def test_load_mnist_from_folder_uncompressed(tmp_path, rng):
    arrays, blobs, _ = _fake_mnist(rng)
    for key, blob in blobs.items():
        (tmp_path / data.MNIST_FILES[key][0][:-3]).write_bytes(gzip.decompress(blob))
    _check(data.load_mnist(tmp_path, download=False), arrays)


def test_load_mnist_missing_without_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.gz is missing"):
        data.load_mnist(tmp_path, download=False)


def test_download_checks_sha256_and_caches(served, tmp_path, rng):
    www, url = served
    arrays, blobs, files = _fake_mnist(rng)
    for key, blob in blobs.items():
        (www / files[key][0]).write_bytes(blob)
    cache = tmp_path / "cache"
    _check(data.load_mnist(cache, url=url, files=files), arrays)
    assert sorted(p.name for p in cache.iterdir()) == sorted(name for name, _ in files.values())
    for f in www.iterdir():  # the second call reads the cache, not the server
        f.unlink()
    _check(data.load_mnist(cache, url=url, files=files), arrays)


def test_download_rejects_wrong_sha256(served, tmp_path, rng):
    www, url = served
    _, blobs, files = _fake_mnist(rng)
    for key, blob in blobs.items():
        (www / files[key][0]).write_bytes(blob)
    files["test_labels"] = (files["test_labels"][0], "0" * 64)
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match="SHA-256 mismatch"):
        data.load_mnist(cache, url=url, files=files)
    assert not (cache / files["test_labels"][0]).exists()  # the bad file was discarded
    assert not list(cache.glob("*.part"))


def test_download_offline_is_a_clear_error(tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RuntimeError, match="could not download .* without network access"):
        data.load_mnist(tmp_path, url=f"http://127.0.0.1:{port}/", timeout=5)


def test_real_mnist_hashes_are_the_published_ones():
    # the SHA-256 sums published with the MNIST mirrors (torchvision, TensorFlow datasets)
    assert data.MNIST_FILES["train_images"][1].startswith("440fcabf73cc546f")
    assert len({sha for _, sha in data.MNIST_FILES.values()}) == 4
    assert all(len(sha) == 64 for _, sha in data.MNIST_FILES.values())


def test_standardize_uses_training_statistics(rng):
    xtr = rng.integers(0, 256, (50, 4, 4)).astype(np.uint8)
    xte = rng.integers(0, 256, (20, 4, 4)).astype(np.uint8)
    a, b = data.standardize(xtr, xte)
    assert a.dtype == np.float32 and b.dtype == np.float32
    assert abs(float(a.mean())) < 1e-5 and abs(float(a.std()) - 1) < 1e-5
    mean, std = xtr.astype(np.float64).mean(), xtr.astype(np.float64).std()
    np.testing.assert_allclose(b, (xte - mean) / std, rtol=1e-5, atol=1e-5)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 50), bs=st.integers(1, 17), shuffle=st.booleans(), drop_last=st.booleans())
def test_batches_cover_each_sample_once(n, bs, shuffle, drop_last):
    x = np.arange(n * 2).reshape(n, 2)
    y = np.arange(n)
    got = list(data.batches(x, y, bs, shuffle=shuffle, seed=1, drop_last=drop_last))
    seen = np.concatenate([yb for _, yb in got]) if got else np.zeros(0, int)
    for xb, yb in got:
        np.testing.assert_array_equal(xb[:, 0], 2 * yb)  # x and y stay paired
        assert len(yb) <= bs and (len(yb) == bs or not drop_last)
    expected = n - n % bs if drop_last else n
    assert len(seen) == expected and len(set(seen.tolist())) == expected
    if not shuffle:
        np.testing.assert_array_equal(seen, np.arange(expected))


def test_batches_bad_arguments():
    with pytest.raises(ValueError, match="same length"):
        list(data.batches(np.zeros(3), np.zeros(4)))
    with pytest.raises(ValueError, match="batch_size"):
        list(data.batches(np.zeros(3), batch_size=0))


def test_rosenbrock_sets():
    x, y = data.rosenbrock_classification(500, seed=3)
    assert x.shape == (500, 2) and x.dtype == np.float32 and set(np.unique(y)) == {0, 1}
    f = 100 * (x[:, 1].astype(np.float64) - x[:, 0] ** 2) ** 2 + (1 - x[:, 0]) ** 2
    np.testing.assert_array_equal(y, (f < 0.5).astype(np.int64))
    assert (x[:, 0] >= 0.8).all() and (x[:, 0] <= 1.2).all()
    xr, yr = data.rosenbrock_regression(100, seed=3)
    assert yr.shape == (100, 1)
    np.testing.assert_allclose(yr[:, 0], data.rosenbrock(xr[:, 0].astype(np.float64), xr[:, 1].astype(np.float64)),
                               rtol=1e-6)
    x2, _ = data.rosenbrock_classification(500, seed=3)
    np.testing.assert_array_equal(x, x2)  # seeded
