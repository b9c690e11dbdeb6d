"""Downloading a dataset's files into a cache folder: checksum (MD5 or SHA-256, as the dataset's
publishers give it), a temporary file renamed into place only when the sum matches, so a folder
never holds a partial or corrupt file under the real name."""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

USER_AGENT = "fastlayers (dataset download; https://pypi.org/project/fastlayers)"


def default_cache_dir(dataset: str = "mnist") -> Path:
    """Where a dataset's files go when no folder is given: $FASTLAYERS_DATA/<dataset>, else
    $XDG_CACHE_HOME/fastlayers/<dataset>, else ~/.cache/fastlayers/<dataset>."""
    if os.environ.get("FASTLAYERS_DATA"):
        return Path(os.environ["FASTLAYERS_DATA"]) / dataset
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "fastlayers" / dataset


def digest_kind(checksum: str) -> str:
    """'md5' for a 32-digit hex sum, 'sha256' for a 64-digit one."""
    if isinstance(checksum, str) and len(checksum) in (32, 64):
        try:
            int(checksum, 16)
        except ValueError:
            pass
        else:
            return "md5" if len(checksum) == 32 else "sha256"
    raise ValueError(f"checksum must be an MD5 (32 hex digits) or SHA-256 (64 hex digits) sum, got {checksum!r}")


def file_digest(path, kind: str) -> str:
    h = hashlib.new(kind)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _sha256(path) -> str:
    return file_digest(path, "sha256")


def download(url: str, dest: Path, checksum: str | None, timeout: float, what: str = "the dataset's",
             offline_hint: str = ""):
    """url -> dest, checked against checksum (MD5 or SHA-256; None: unchecked). On a mismatch a
    ValueError, on a network or file error a RuntimeError; either way no file is left behind (the
    download goes to dest's folder under a temporary name and is renamed only when it checks out)."""
    kind = digest_kind(checksum) if checksum is not None else None
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name, suffix=".part")
    try:
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as resp:
            total = resp.headers.get("Content-Length")
            bar = None
            if sys.stderr.isatty() and total and int(total) > (8 << 20):  # a bar for the big files only
                from tqdm.auto import tqdm

                bar = tqdm(total=int(total), unit="B", unit_scale=True, desc=dest.name, file=sys.stderr)
            try:
                if bar is None:
                    shutil.copyfileobj(resp, out, 1 << 20)
                else:
                    for block in iter(lambda: resp.read(1 << 20), b""):
                        out.write(block)
                        bar.update(len(block))
            finally:
                if bar is not None:
                    bar.close()
        if kind is not None:
            got = file_digest(tmp, kind)
            if got != checksum.lower():
                name = {"md5": "MD5", "sha256": "SHA-256"}[kind]
                raise ValueError(f"{url}: {name} mismatch (expected {checksum}, got {got}); the download is "
                                 f"corrupt or the mirror changed; file discarded")
        os.replace(tmp, dest)
    except (urllib.error.URLError, OSError) as e:
        hint = f"; {offline_hint}" if offline_hint else ""
        raise RuntimeError(f"could not download {url} ({e}); without network access put {what} files into "
                           f"{dest.parent} yourself{hint}") from e
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
