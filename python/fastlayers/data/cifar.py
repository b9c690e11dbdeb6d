"""CIFAR-10 from the files its authors publish (the "python version": cifar-10-python.tar.gz).

The archive holds cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}: Python 2 pickles of
plain dicts, b'data' a uint8 array (10000, 3072) (1024 red, 1024 green, 1024 blue values per image,
each a row-major 32x32 plane), b'labels' a list of ints 0-9.

Reading them safely: a pickle may name any Python callable, so these are read with an Unpickler
whose find_class allows exactly the globals that NumPy's own array pickles use (numpy's
_reconstruct, ndarray and dtype, _frombuffer for protocol 5, under their NumPy 1 and NumPy 2 module
names; numeric dtypes only; ndarray only as _reconstruct's argument) and nothing else; any other global is an error naming it, never an import or a call. The
result is then checked to be the dict described above. The archive is read in place (tarfile's
extractfile on the members named above, regular files of a bounded size only), so nothing is
extracted and no member path is ever written to disk.
"""

from __future__ import annotations

import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np

from ._download import default_cache_dir
from ._download import download as _download_file

__all__ = ["load_cifar10", "read_cifar_batch", "CIFAR10_URL", "CIFAR10_ARCHIVE", "CIFAR10_FOLDER", "CIFAR10_CLASSES"]

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/"  # the authors' page (Alex Krizhevsky, Geoffrey Hinton)
CIFAR10_ARCHIVE = ("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a")  # MD5 as published there
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST = ("test_batch",)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

_MAX_MEMBER = 256 << 20  # a batch is ~31 MB; refuse absurd member sizes before reading them


class _NdarrayName:
    """What the name numpy.ndarray resolves to inside a batch: accepted as _reconstruct's first
    argument only, so that a pickle cannot call ndarray(shape, dtype, buffer, offset, strides)."""


def _allowed_globals() -> dict:
    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # NumPy 1
        from numpy.core.multiarray import _reconstruct, scalar

    def reconstruct(subtype, shape, dtype_code):
        if subtype is not _NdarrayName:
            raise pickle.UnpicklingError(f"only plain numpy arrays are allowed, got {subtype!r}")
        return _reconstruct(np.ndarray, shape, dtype_code)

    def dtype(spec, *args):
        d = np.dtype(spec.decode("latin1") if isinstance(spec, bytes) else spec)
        if d.kind not in "biuf":  # numbers only: no object, void (structured), string or time types
            raise pickle.UnpicklingError(f"only numeric arrays are allowed, got dtype {d}")
        return np.dtype(d, *args) if args else d

    def numpy_scalar(d, *args):
        if not isinstance(d, np.dtype) or d.kind not in "biuf":
            raise pickle.UnpicklingError(f"only numeric scalars are allowed, got {d!r}")
        return scalar(d, *args)

    def encode(text, encoding="latin1"):  # Python 3 protocol-2 pickles spell bytes as _codecs.encode(str, 'latin1')
        if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
            raise pickle.UnpicklingError("_codecs.encode is allowed only as encode(str, 'latin1')")
        return text.encode("latin1")

    def frombuffer(buf, d, shape, order="C"):  # protocol 5 pickles of arrays (NumPy >= 1.16)
        if not isinstance(buf, (bytes, bytearray)) or not isinstance(d, np.dtype) or order not in ("C", "F"):
            raise pickle.UnpicklingError("_frombuffer is allowed only as (bytes, numeric dtype, shape, 'C'|'F')")
        return np.frombuffer(buf, dtype=d).reshape(shape, order=order)

    allowed = {("numpy", "ndarray"): _NdarrayName, ("numpy", "dtype"): dtype, ("_codecs", "encode"): encode}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = reconstruct
        allowed[(module, "scalar")] = numpy_scalar
    for module in ("numpy.core.numeric", "numpy._core.numeric"):
        allowed[(module, "_frombuffer")] = frombuffer
    return allowed


class _BatchUnpickler(pickle.Unpickler):
    _allowed = None

    def find_class(self, module, name):
        if _BatchUnpickler._allowed is None:
            _BatchUnpickler._allowed = _allowed_globals()
        obj = _BatchUnpickler._allowed.get((module, name))
        if obj is None:
            raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed in a CIFAR batch "
                                         f"(only numpy's array reconstruction is)")
        return obj


def _get(d: dict, key: str):
    return d[key.encode()] if key.encode() in d else d.get(key)


def read_cifar_batch(source, name: str = "batch") -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 3, 32, 32), labels int64 (N,)) from one CIFAR-10 batch (the bytes of the
    pickle, or a path to it). Anything that is not such a batch is a ValueError naming `name`."""
    if isinstance(source, (str, os.PathLike)):
        name = str(source)
        with open(source, "rb") as fh:
            source = fh.read()
    try:
        d = _BatchUnpickler(io.BytesIO(source), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            MemoryError, OverflowError, RecursionError, UnicodeError) as e:
        raise ValueError(f"{name}: not a CIFAR-10 batch ({type(e).__name__}: {e})") from None
    if not isinstance(d, dict):
        raise ValueError(f"{name}: not a CIFAR-10 batch (a pickled {type(d).__name__}, expected a dict)")
    data, labels = _get(d, "data"), _get(d, "labels")
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == 3072):
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise ValueError(f"{name}: not a CIFAR-10 batch: 'data' must be a uint8 array (N, 3072), got {got}")
    try:
        labels = np.asarray(labels)
        ok = labels.shape == (len(data),) and labels.dtype.kind in "iu"
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{name}: not a CIFAR-10 batch: 'labels' must hold {len(data)} integers")
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{name}: labels must be in 0-9, found {int(labels.min())}..{int(labels.max())}")
    data = np.ascontiguousarray(data) if data.flags.writeable else data.copy()  # protocol 5: a read-only view
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _from_folder(folder: Path, names):
    return [read_cifar_batch(folder / n) for n in names]


def _from_archive(path: Path, names):
    out = []
    try:
        with tarfile.open(path, "r:gz") as tar:
            for n in names:
                member_name = f"{CIFAR10_FOLDER}/{n}"
                try:
                    member = tar.getmember(member_name)
                except KeyError:
                    raise ValueError(f"{path}: no {member_name} in the archive (not CIFAR-10's python version?)") \
                        from None
                if not member.isfile() or member.size > _MAX_MEMBER:
                    raise ValueError(f"{path}: {member_name} is not a regular file of at most {_MAX_MEMBER} bytes")
                with tar.extractfile(member) as fh:
                    out.append(read_cifar_batch(fh.read(), f"{path}:{member_name}"))
    except (tarfile.TarError, EOFError, OSError) as e:
        if isinstance(e, (FileNotFoundError, PermissionError)):
            raise
        raise ValueError(f"{path}: not a readable .tar.gz archive ({type(e).__name__}: {e})") from e
    return out


def _stack(parts):
    return np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts])


def load_cifar10(root=None, download: bool = True, url: str | None = None, archive: tuple | None = None,
                 timeout: float = 60.0):
    """((x_train, y_train), (x_test, y_test)): uint8 images (N, 3, 32, 32) (NCHW, RGB) and int64 labels
    0-9 naming CIFAR10_CLASSES; 50,000 / 10,000.

    Reads root/cifar-10-batches-py/ (the archive's folder, extracted) when it holds every batch, else
    the archive root/cifar-10-python.tar.gz in place; a missing archive is downloaded from url
    (default CIFAR10_URL; when download=True) and checked against the published MD5 first. root
    defaults to default_cache_dir('cifar10'). `archive` overrides CIFAR10_ARCHIVE (file name, MD5 or
    SHA-256 sum or None)."""
    from . import _path_arg

    root = Path(_path_arg(root, "root")) if root is not None else default_cache_dir("cifar10")
    if not isinstance(download, (bool, np.bool_)):
        raise TypeError(f"download must be a bool, got {type(download).__name__} {download!r}")
    url = CIFAR10_URL if url is None else url
    name, checksum = CIFAR10_ARCHIVE if archive is None else archive
    names = CIFAR10_TRAIN + CIFAR10_TEST
    folder = root / CIFAR10_FOLDER
    if all((folder / n).is_file() for n in names):
        parts = _from_folder(folder, names)
    else:
        path = root / name
        if not path.is_file():
            if not download:
                raise FileNotFoundError(f"{path} is missing, and so is an extracted {folder} (and download=False)")
            _download_file(url.rstrip("/") + "/" + name, path, checksum, timeout, what="the CIFAR-10 archive's")
        parts = _from_archive(path, names)
    return _stack(parts[:len(CIFAR10_TRAIN)]), _stack(parts[len(CIFAR10_TRAIN):])
