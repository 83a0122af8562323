"""Fetching the standard archives into torchvision's on-disk layout, checked against torchvision's MD5s.

Only the standard library is used (``urllib.request``). Every file is written to a temporary name in its
target folder and renamed into place once complete and verified, so an interrupted or refused download
never leaves a half file where a reader would take it for data.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import logging
import os
import shutil
import tarfile
import tempfile
import urllib.request
from pathlib import Path

log = logging.getLogger("gan_lab.data")

# The mirrors and checksums torchvision uses (torchvision/datasets/mnist.py, cifar.py).
MNIST_MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"
FASHION_MNIST_MIRROR = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
FASHION_MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_FOLDER = "cifar-10-batches-py"

TIMEOUT_S = 60.0
_CHUNK = 1 << 20


class DownloadError(Exception):
    """A download that failed or was refused; the readers turn it into a ConfigError on paths.data_dir."""


def md5sum(path: str | os.PathLike) -> str:
    h = hashlib.md5(usedforsecurity=False)  # integrity against torchvision's published checksums
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _temp_beside(dest: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    os.close(fd)
    return Path(name)


def fetch(url: str, dest: Path, md5: str, timeout: float = TIMEOUT_S) -> Path:
    """Download ``url`` to ``dest`` via a temporary file beside it, renamed into place only if its MD5 is ``md5``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_beside(dest)
    log.info("downloading %s to %s", url, dest)
    h = hashlib.md5(usedforsecurity=False)
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "gan_lab (python urllib)"})
        with urllib.request.urlopen(request, timeout=timeout) as response, open(tmp, "wb") as out:
            for block in iter(lambda: response.read(_CHUNK), b""):
                h.update(block)
                out.write(block)
        got = h.hexdigest()
        if got != md5:
            raise DownloadError(f"the file downloaded from {url} has MD5 {got}, not the published {md5}: "
                                "it was refused and not kept (a changed or corrupted mirror, or a proxy page)")
        os.replace(tmp, dest)
    except (OSError, http.client.HTTPException, ValueError) as err:
        raise DownloadError(f"downloading {url} failed ({type(err).__name__}: {err})") from err
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def gunzip(src: Path, dest: Path) -> Path:
    """Decompress ``src`` to ``dest`` (temporary file, then rename), as torchvision keeps both in ``raw/``."""
    tmp = _temp_beside(dest)
    try:
        with gzip.open(src, "rb") as f, open(tmp, "wb") as out:
            shutil.copyfileobj(f, out, _CHUNK)
        os.replace(tmp, dest)
    except (OSError, EOFError) as err:
        raise DownloadError(f"{src} does not decompress ({err})") from err
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def download_idx(raw_dir: Path, mirror: str, md5s: dict[str, str], names: list[str]) -> None:
    """Fetch the IDX files ``names`` (uncompressed names) into ``raw_dir`` as ``.gz`` plus their decompressed copy."""
    for name in names:
        gz = raw_dir / f"{name}.gz"
        if not gz.is_file() or md5sum(gz) != md5s[gz.name]:
            fetch(mirror + gz.name, gz, md5s[gz.name])
        gunzip(gz, raw_dir / name)


def _safe_extract(archive: tarfile.TarFile, into: Path) -> None:
    if hasattr(tarfile, "data_filter"):
        archive.extractall(into, filter="data")  # refuses absolute paths, '..', links out, devices
        return
    for member in archive.getmembers():  # Python without extraction filters (< 3.10.12 / 3.11.4)
        target = (into / member.name).resolve()
        if not (member.isfile() or member.isdir()) or not target.is_relative_to(into.resolve()):
            raise DownloadError(f"the archive holds an unsafe entry {member.name!r}; refused")
    archive.extractall(into)


def download_cifar10(root: Path) -> None:
    """Fetch and unpack CIFAR-10 into ``root/cifar-10-batches-py`` (the archive stays in ``root``, as torchvision)."""
    archive = root / CIFAR10_ARCHIVE
    if not archive.is_file() or md5sum(archive) != CIFAR10_MD5:
        fetch(CIFAR10_URL, archive, CIFAR10_MD5)
    staging = Path(tempfile.mkdtemp(prefix=".cifar10.", dir=root))
    try:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                _safe_extract(tar, staging)
        except (OSError, EOFError, tarfile.TarError) as err:
            raise DownloadError(f"{archive} does not unpack ({err})") from err
        unpacked = staging / CIFAR10_FOLDER
        if not unpacked.is_dir():
            raise DownloadError(f"{archive} holds no {CIFAR10_FOLDER}/ folder")
        target = root / CIFAR10_FOLDER
        if target.is_dir():  # a partial folder from elsewhere: complete it file by file
            for item in unpacked.iterdir():
                if not (target / item.name).exists():
                    os.replace(item, target / item.name)
        else:
            os.replace(unpacked, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
