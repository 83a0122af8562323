"""MNIST and Fashion-MNIST from their IDX files (optionally gzipped) in torchvision's layout, loaded whole into
memory; each file's header (magic number, item shape, length) is checked before its bytes are used.

Fashion-MNIST is looked for in ``<data_dir>/FashionMNIST/raw/``, then in :data:`FASHION_MNIST_SYSTEM_DIR`, where
Debian's package ``dataset-fashion-mnist`` installs the same four ``.gz`` files (``apt-get install
dataset-fashion-mnist``; ``make data``): with the package installed, ``dataset=fashion_mnist`` needs no setting.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import torch

from gan_lab.data import download as dl
from gan_lab.data.base import DataSpec, TensorSource
from gan_lab.data.files.common import DataDir, Download, _bad_file, _missing, resolve_dir
from gan_lab.data.images import PadTo, _to_signed_unit, pad_28

_IDX_NAMES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
              "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
Split = Annotated[Literal["train", "test", "all"], "train | test | all (both, train first)"]
IDX_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
IDX_LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension
FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist


def read_idx(path: Path, magic: int, item_shape: tuple[int, ...] = ()) -> np.ndarray:
    """The uint8 array of an IDX file (gzipped if its name ends in ``.gz``); ValueError says what is wrong.

    Checks the magic number, that the item dimensions are ``item_shape`` and that the file holds exactly
    the bytes its header promises.
    """
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:
        raise ValueError(f"{path} cannot be read ({type(err).__name__}: {err})") from err
    kind = "image" if magic == IDX_IMAGES_MAGIC else "label"
    if len(raw) < 4:
        raise ValueError(f"{path} is truncated: {len(raw)} bytes, not even an IDX header")
    got = int.from_bytes(raw[:4], "big")
    if got != magic:
        raise ValueError(f"{path} is not an IDX {kind} file: its magic number is 0x{got:08x}, expected 0x{magic:08x}")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path} is truncated: {len(raw)} bytes, shorter than its {header}-byte header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    if item_shape and shape[1:] != item_shape:
        raise ValueError(f"{path} holds items of shape {shape[1:]}, expected {item_shape}")
    expected = header + math.prod(shape)
    if len(raw) != expected:
        state = "truncated" if len(raw) < expected else "corrupt (longer than its header says)"
        raise ValueError(f"{path} is {state}: its header promises {shape[0]} {kind}s, {expected} bytes in all, "
                         f"but it holds {len(raw)} bytes")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _idx_file(raw_dir: Path, name: str) -> Path | None:
    for candidate in (raw_dir / name, raw_dir / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _idx_split(raw_dir: Path, split: str, root: Path, what: str) -> tuple[np.ndarray, np.ndarray]:
    image_file, label_file = (_idx_file(raw_dir, n) for n in _IDX_NAMES[split])
    try:
        x = read_idx(image_file, IDX_IMAGES_MAGIC, (28, 28))
        y = read_idx(label_file, IDX_LABELS_MAGIC)
    except ValueError as err:
        raise _bad_file(root, what, str(err)) from err
    if len(x) != len(y):
        raise _bad_file(root, what, f"{image_file} holds {len(x)} images but {label_file} {len(y)} labels")
    return x, y


def _idx_set(name: str, folder: str, mirror: str, md5s: dict[str, str], data_dir: str | os.PathLike,
             split: str, download: bool, system_dir: Path | None = None, package: str = "",
             pad_to: int | None = None) -> TensorSource:
    """``system_dir``: where a system package (``package``) puts the same files, searched after the data_dir;
    ``pad_to``: :func:`gan_lab.data.images.pad_28`."""
    root = resolve_dir(data_dir)
    raw_dir = root / folder / "raw"
    splits = ("train", "test") if split == "all" else (split,)
    wanted = [n for s in splits for n in _IDX_NAMES[s]]
    missing = [n for n in wanted if _idx_file(raw_dir, n) is None]
    what = f"{folder} (split={split})"
    hint = ""
    if missing and system_dir is not None:
        if all(_idx_file(system_dir, n) is not None for n in wanted):
            raw_dir, missing = system_dir, []
        else:
            hint = (f"They are not in {system_dir}/ either, where `apt-get install {package}` (Debian, Ubuntu; "
                    "`make data`) puts them to be found with no setting. ")
    if missing and download:
        also = [n for n in _IDX_NAMES["test"] if split == "train" and _idx_file(raw_dir, n) is None]
        try:
            dl.download_idx(raw_dir, mirror, md5s, missing + also)
        except dl.DownloadError as err:
            raise _missing(root, what, [f"{raw_dir / n}[.gz]" for n in missing], True, f"{err}. ") from err
        missing = [n for n in wanted if _idx_file(raw_dir, n) is None]
    if missing:
        raise _missing(root, what, [f"{raw_dir / n} (or {n}.gz)" for n in missing], True, hint)
    parts = [_idx_split(raw_dir, s, root, what) for s in splits]

    def images(pixels: np.ndarray) -> tuple[torch.Tensor, str]:
        return pad_28(_to_signed_unit(pixels, 255.0).view(-1, 1, 28, 28), name, pad_to)

    data, set_name = images(np.concatenate([p[0] for p in parts]))
    spec = DataSpec(set_name, tuple(data.shape[1:]), "image")
    labels = torch.from_numpy(np.concatenate([p[1] for p in parts])).long()
    heldout = heldout_labels = None
    if split == "train" and all(_idx_file(raw_dir, n) is not None for n in _IDX_NAMES["test"]):
        test_x, test_y = _idx_split(raw_dir, "test", root, what)
        heldout = images(test_x)[0]
        heldout_labels = torch.from_numpy(test_y.astype(np.int64))  # a copy: the file's bytes are read-only
    return TensorSource(data, spec, labels, heldout=heldout, heldout_labels=heldout_labels)


def mnist(data_dir: DataDir = "data", split: Split = "train", download: Download = False,
          pad_to: PadTo = None) -> TensorSource:
    """MNIST (60,000 train / 10,000 test digits), 1×28×28, from ``<data_dir>/MNIST/raw/`` (IDX, optionally .gz).

    ``split``: train | test | all (both, train first). With split=train the test images, when present, are
    the source's ``heldout`` set. ``download``: fetch missing files from torchvision's mirror (MD5-checked).
    ``pad_to`` = P: each image centred on black in P px, the set named ``mnist_P``.
    """
    return _idx_set("mnist", "MNIST", dl.MNIST_MIRROR, dl.MNIST_MD5, data_dir, split, download, pad_to=pad_to)


def fashion_mnist(data_dir: DataDir = "data", split: Split = "train", download: Download = False,
                  pad_to: PadTo = None) -> TensorSource:
    """Fashion-MNIST (60,000 / 10,000 clothing images), 1×28×28, from ``<data_dir>/FashionMNIST/raw/``, else from
    :data:`FASHION_MNIST_SYSTEM_DIR` (Debian's ``dataset-fashion-mnist``).

    Same IDX layout, splits, ``download`` and ``pad_to`` as :func:`mnist`; ``download`` fetches into ``<data_dir>``
    only when neither folder has the files.
    """
    return _idx_set("fashion_mnist", "FashionMNIST", dl.FASHION_MNIST_MIRROR, dl.FASHION_MNIST_MD5,
                    data_dir, split, download, FASHION_MNIST_SYSTEM_DIR, "dataset-fashion-mnist", pad_to)
