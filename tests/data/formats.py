"""Small synthetic files in the real formats of the datasets (for loopback-server and CLI tests):
IDX (MNIST, Fashion-MNIST) and CIFAR-10's python version, whose batches are written the way Python 2's
cPickle wrote the originals (protocol 2, str as BINSTRING, numpy under numpy.core.multiarray)."""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import http.server
import io
import pickle
import struct
import tarfile
import threading

import numpy as np

try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # NumPy 1
    from numpy.core.multiarray import _reconstruct


def idx_bytes(a: np.ndarray) -> bytes:
    return bytes([0, 0, 8, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape) + a.astype(np.uint8).tobytes()


def md5(blob: bytes) -> str:
    return hashlib.md5(blob).hexdigest()


def idx_set(rng, n_train=30, n_test=12):
    """(arrays, gz blobs by file name, files dict key -> (name, md5)) of an MNIST-format set."""
    names = {"train_images": "train-images-idx3-ubyte.gz", "train_labels": "train-labels-idx1-ubyte.gz",
             "test_images": "t10k-images-idx3-ubyte.gz", "test_labels": "t10k-labels-idx1-ubyte.gz"}
    arrays = {"train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
              "train_labels": rng.integers(0, 10, n_train).astype(np.uint8),
              "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
              "test_labels": rng.integers(0, 10, n_test).astype(np.uint8)}
    blobs = {names[k]: gzip.compress(idx_bytes(a)) for k, a in arrays.items()}
    files = {k: (names[k], md5(blobs[names[k]])) for k in names}
    return arrays, blobs, files


class Py2Pickler(pickle._Pickler):
    """Protocol 2 as Python 2's cPickle wrote it."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj):
        raw = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str
    dispatch[str] = save_py2_str

    def save_global(self, obj, name=None):
        if obj is _reconstruct:
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)


def py2_pickle(obj) -> bytes:
    f = io.BytesIO()
    Py2Pickler(f, protocol=2).dump(obj)
    return f.getvalue()


def cifar_batch(rng, n, label="training batch"):
    x = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    y = rng.integers(0, 10, n)
    d = {"batch_label": label, "labels": [int(v) for v in y], "data": x.reshape(n, 3072),
         "filenames": [f"img_{i}.png" for i in range(n)]}
    return x, y, py2_pickle(d)


def cifar_archive(rng, n_per_batch=4, n_test=6):
    """(x_train, y_train, x_test, y_test, tar.gz bytes) laid out as cifar-10-python.tar.gz."""
    xs, ys, members = [], [], {}
    for i in range(1, 6):
        x, y, blob = cifar_batch(rng, n_per_batch, f"training batch {i} of 5")
        xs.append(x)
        ys.append(y)
        members[f"data_batch_{i}"] = blob
    xt, yt, members["test_batch"] = cifar_batch(rng, n_test, "testing batch 1 of 1")
    members["batches.meta"] = py2_pickle({"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog",
                                                          "frog", "horse", "ship", "truck"],
                                          "num_cases_per_batch": n_per_batch, "num_vis": 3072})
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, blob in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return np.concatenate(xs), np.concatenate(ys), xt, yt, buf.getvalue()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve(folder):
    """A loopback HTTP server on 127.0.0.1 serving folder from a thread; yields its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
