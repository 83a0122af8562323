"""The sources ``python -m gan_lab.dataset_tool`` converts, each read as a stream of H×W (gray) or H×W×3 (RGB)
uint8 images with an optional class label, in the order they are written.

- a folder of images (png/jpg/jpeg/bmp/webp/gif, recursive, sorted by path, hidden files skipped): the labels
  come from its ``dataset.json`` when it has one (an unpacked archive in the field's layout, whose numbered
  subfolders are no classes), else from its first-level subfolders when every image sits in one (sorted by
  name: class 0, 1, …, as the lab's ``dataset=folder`` and torchvision's ``ImageFolder``), else there are none;
- CIFAR-10's Python tarball (``cifar-10-python.tar.gz``; its pickles read by the lab's restricted unpickler);
- IDX files (MNIST, Fashion-MNIST, their ``.gz`` or not): a folder holding ``*-images-idx3-ubyte[.gz]`` and the
  matching ``*-labels-idx1-ubyte[.gz]``, or the images file itself;
- a zip of images (the field's layout or any other), labelled by its ``dataset.json`` when present.

Channels: with ``channels`` unset, the first image decides (gray modes → 1, colour → 3) and an image of the
other kind is an error naming it; ``channels=1|3`` converts every image (Pillow's "L": ITU-R 601-2 luma).
Every problem is a :class:`SourceError` whose one-line message names the file.
"""

from __future__ import annotations

import os
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from gan_lab.data.files.cifar import CIFAR10_TEST, CIFAR10_TRAIN, SafeUnpickler, _Refused
from gan_lab.data.files.common import resolve_dir
from gan_lab.data.files.idx import IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, read_idx
from gan_lab.data.files.image_files import IMAGE_EXTENSIONS, _find_images
from gan_lab.data.files.zipped import _why, image_names
from gan_lab.data.layout import LABELS_FILE, parse_labels

KINDS = ("folder", "cifar10", "idx", "zip")
GRAY_MODES = frozenset({"1", "L", "LA", "La"})
# 16-bit and float pixels: Pillow's convert("L") clips them to 0..255 instead of scaling (1000 -> 255, 0.5 -> 0)
WIDE_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
_IMAGE_SUFFIX, _LABEL_SUFFIX = "-images-idx3-ubyte", "-labels-idx1-ubyte"
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, zipfile.BadZipFile, Image.DecompressionBombError)


class SourceError(Exception):
    """A source that cannot be converted; the message is one line naming the file."""


@dataclass
class Opened:
    """A source ready to stream: ``count`` images (after ``max_images``), ``items`` yields (where, image, label)."""

    kind: str
    count: int
    labelled: bool
    items: Iterator[tuple[str, np.ndarray, int | None]]


def _idx_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.removesuffix(".gz").endswith(_IMAGE_SUFFIX))


def detect(path: Path) -> str:
    """The kind of source at ``path`` (one of :data:`KINDS`)."""
    if not path.exists():
        raise SourceError(f"--source {path} does not exist")
    if path.is_dir():
        return "idx" if _idx_images(path) else "folder"
    name = path.name.lower()
    if name.removesuffix(".gz").endswith(_IMAGE_SUFFIX):
        return "idx"
    if name.endswith((".tar.gz", ".tgz", ".tar")):
        return "cifar10"
    if zipfile.is_zipfile(path):
        return "zip"
    raise SourceError(f"--source {path}: unknown kind; expected a folder of images, CIFAR-10's cifar-10-python.tar.gz, "
                      "IDX files (a folder of *-images-idx3-ubyte[.gz] or such a file) or a zip")


def _pixels(im: Image.Image, where: str, channels: int | None, first: list) -> np.ndarray:
    """``im`` as uint8 H×W (gray) or H×W×3; ``first`` holds [channels, where] of the first image once seen."""
    if im.mode in WIDE_MODES:
        raise SourceError(f"{where} has {im.mode} pixels (16-bit or float), which 8-bit PNGs cannot hold unscaled: "
                          "convert it to 8 bits first")
    natural = 1 if im.mode in GRAY_MODES else 3
    if channels is None:
        if first and natural != first[0]:
            kinds = {1: "gray", 3: "colour"}
            raise SourceError(f"{where} is {kinds[natural]} (mode {im.mode}) but {first[1]} is {kinds[first[0]]}: "
                              "pass --channels 1 or --channels 3 to convert every image")
        if not first:
            first += [natural, where]
    mode = "L" if (channels or natural) == 1 else "RGB"
    return np.asarray(im if im.mode == mode else im.convert(mode), dtype=np.uint8)


def _decoded(opener, where: str, channels: int | None, first: list) -> np.ndarray:
    try:
        with opener() as f, Image.open(f) as im:
            return _pixels(im, where, channels, first)
    except _DECODE_ERRORS as err:
        raise SourceError(f"{where} cannot be decoded as an image ({_why(err)})") from err


def open_folder(root: Path, channels: int | None, max_images: int | None) -> Opened:
    files = _find_images(root)
    if not files:
        raise SourceError(f"--source {root} holds no image (no file ending in {', '.join(IMAGE_EXTENSIONS)}, "
                          "searched recursively)")
    rel = [f.relative_to(root).as_posix() for f in files]
    labels: list[int] | None = None
    if (root / LABELS_FILE).is_file():
        try:
            labels = parse_labels((root / LABELS_FILE).read_bytes(), rel)
        except ValueError as err:
            raise SourceError(f"{root}/{err}") from err
    elif all("/" in r for r in rel):
        index = {c: i for i, c in enumerate(sorted({r.split("/", 1)[0] for r in rel}))}
        labels = [index[r.split("/", 1)[0]] for r in rel]
    n = len(files) if max_images is None else min(max_images, len(files))
    first: list = []

    def items():
        for i in range(n):
            image = _decoded(lambda i=i: open(files[i], "rb"), str(files[i]), channels, first)
            yield str(files[i]), image, None if labels is None else labels[i]

    return Opened("folder", n, labels is not None, items())


def _cifar_batch(obj, where: str) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(obj, dict):
        raise SourceError(f"{where} holds a {type(obj).__name__}, not a CIFAR-10 batch dict")
    obj = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}
    data, labels = obj.get("data"), obj.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise SourceError(f"{where}: 'data' should be an N×3072 uint8 array, got {got}")
    try:
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    except (TypeError, ValueError) as err:
        raise SourceError(f"{where}: 'labels' is not a list of integers ({err})") from err
    if len(labels) != len(data) or (len(labels) and (labels.min() < 0 or labels.max() > 9)):
        raise SourceError(f"{where}: 'labels' should be {len(data)} integers in 0..9")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels  # rows hold the R, G, B planes


def open_cifar10(path: Path, split: str, max_images: int | None) -> Opened:
    names = {"train": CIFAR10_TRAIN, "test": CIFAR10_TEST, "all": CIFAR10_TRAIN + CIFAR10_TEST}[split]
    images, labels = [], []
    try:
        with tarfile.open(path, "r:*") as tar:
            for name in names:
                where = f"{path}:cifar-10-batches-py/{name}"
                try:
                    member = tar.getmember(f"cifar-10-batches-py/{name}")
                except KeyError:
                    raise SourceError(f"{where} is missing: not CIFAR-10's python tarball") from None
                f = tar.extractfile(member)
                if f is None:
                    raise SourceError(f"{where} is not a regular file")
                try:
                    obj = SafeUnpickler(f, encoding="bytes").load()
                except _Refused as err:
                    raise SourceError(f"{where} is refused: it asks to load {err.what}, which a CIFAR-10 batch "
                                      "never needs (unpickling it could run arbitrary code)") from err
                except Exception as err:  # truncated or not a pickle
                    raise SourceError(f"{where} is not a readable CIFAR-10 batch ({type(err).__name__}: {err})") \
                        from err
                x, y = _cifar_batch(obj, where)
                images.append(x)
                labels.append(y)
    except (tarfile.TarError, OSError, EOFError) as err:
        raise SourceError(f"{path} is not a readable tar archive ({type(err).__name__}: {err})") from err
    return _arrays("cifar10", np.concatenate(images), np.concatenate(labels), f"{path}:image ", max_images)


def _arrays(kind: str, images: np.ndarray, labels: np.ndarray, where: str, max_images: int | None) -> Opened:
    n = len(images) if max_images is None else min(max_images, len(images))
    return Opened(kind, n, True, ((f"{where}{i}", images[i], int(labels[i])) for i in range(n)))


def _idx_pair(images_file: Path) -> tuple[np.ndarray, np.ndarray]:
    stem = images_file.name.removesuffix(".gz").removesuffix(_IMAGE_SUFFIX)
    candidates = [images_file.with_name(stem + _LABEL_SUFFIX + gz) for gz in ("", ".gz")]
    labels_file = next((c for c in candidates if c.is_file()), None)
    if labels_file is None:
        raise SourceError(f"{images_file} has no labels file beside it: expected {candidates[0]} (or .gz)")
    try:
        x, y = read_idx(images_file, IDX_IMAGES_MAGIC), read_idx(labels_file, IDX_LABELS_MAGIC)
    except ValueError as err:
        raise SourceError(str(err)) from err
    if len(x) != len(y):
        raise SourceError(f"{images_file} holds {len(x)} images but {labels_file} {len(y)} labels")
    return x, y


def open_idx(path: Path, split: str, max_images: int | None) -> Opened:
    if path.is_file():
        chosen = [path]
    else:
        found = _idx_images(path)
        train = [p for p in found if "train" in p.name]
        test = [p for p in found if "t10k" in p.name or "test" in p.name]
        chosen = found if len(found) == 1 else {"train": train, "test": test, "all": train + test}[split]
        if not chosen:
            raise SourceError(f"--source {path} holds no {split} IDX images (found: "
                              f"{', '.join(p.name for p in found)}); --split train|test|all picks among them")
        gz = [p for p in chosen if p.suffix == ".gz" and p.with_suffix("") in chosen]
        chosen = [p for p in chosen if p not in gz]  # the same file twice, .gz and not: read the plain one
    pairs = [_idx_pair(p) for p in chosen]
    return _arrays("idx", np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs]),
                   f"{chosen[0]}:image ", max_images)


def open_zip(path: Path, channels: int | None, max_images: int | None) -> Opened:
    try:
        with zipfile.ZipFile(path) as z:
            members = z.namelist()
            names = image_names(members)
            text = z.read(LABELS_FILE) if LABELS_FILE in members else None
    except (zipfile.BadZipFile, OSError) as err:
        raise SourceError(f"{path} is not a readable zip archive ({type(err).__name__}: {err})") from err
    if not names:
        raise SourceError(f"{path} holds no image (no member ending in {', '.join(IMAGE_EXTENSIONS)})")
    try:
        labels = None if text is None else parse_labels(text, names)
    except ValueError as err:
        raise SourceError(f"{path}:{err}") from err
    n = len(names) if max_images is None else min(max_images, len(names))
    first: list = []

    def items():
        with zipfile.ZipFile(path) as z:
            for i in range(n):
                where = f"{path}:{names[i]}"
                yield where, _decoded(lambda i=i: z.open(names[i]), where, channels, first), \
                    None if labels is None else labels[i]

    return Opened("zip", n, labels is not None, items())


def open_source(path: str | os.PathLike, channels: int | None = None, split: str = "train",
                max_images: int | None = None) -> Opened:
    """The images of the source at ``path`` (its kind detected), at most ``max_images`` of them.

    ``split`` (train | test | all) picks CIFAR-10's batches and, in a folder of IDX files, the ``train-*`` or
    ``t10k-*`` pair. ``channels`` (None, 1 or 3) applies to image files; IDX sets are gray, CIFAR-10 is RGB.
    """
    path = resolve_dir(path)
    kind = detect(path)
    if kind == "folder":
        return open_folder(path, channels, max_images)
    if kind == "zip":
        return open_zip(path, channels, max_images)
    opened = open_cifar10(path, split, max_images) if kind == "cifar10" else open_idx(path, split, max_images)
    if channels is None or channels == (3 if kind == "cifar10" else 1):
        return opened
    mode = "L" if channels == 1 else "RGB"
    opened.items = ((w, np.asarray(Image.fromarray(x).convert(mode)), y) for w, x, y in opened.items)
    return opened
