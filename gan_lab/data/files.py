"""Real image sets read from disk in torchvision's layout (so its downloads are reused), scaled to [-1, 1].

``<data_dir>`` is ``paths.data_dir`` (``$GAN_LAB_DATA_DIR``, default ``./data``); a relative one is taken
from the current directory and ``~`` is expanded. MNIST and Fashion-MNIST (IDX files) and CIFAR-10
(Python pickles, read by a restricted unpickler that can only rebuild numpy arrays) are loaded whole
into memory. CelebA and any folder of images are decoded with Pillow, either once into memory or a
minibatch at a time (:class:`ImageFilesSource`, which DataLoader workers decode in parallel).
Every problem with the files on disk is a :class:`~gan_lab.errors.ConfigError` naming the key to change.
"""

from __future__ import annotations

import gzip
import math
import os
import pickle
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from gan_lab.data import download as dl
from gan_lab.data.base import DataSpec, Source, TensorSource
from gan_lab.data.images import _to_signed_unit
from gan_lab.errors import ConfigError, check_choice, check_int

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif")
IN_MEMORY_LIMIT = 2 * 1024**3  # in_memory="auto": hold the set as float32 when it fits in this many bytes
RESAMPLE = Image.Resampling.BICUBIC
DATA_DIR_KEY = "paths.data_dir"


def resolve_dir(path: str | os.PathLike) -> Path:
    """``path`` with ``~`` expanded, made absolute from the current directory."""
    return Path(os.path.expanduser(os.fspath(path))).absolute()


def _missing(root: Path, what: str, expected: Sequence[str], fetchable: bool, reason: str = "") -> ConfigError:
    how = "dataset.download=true fetches them where a network exists; or " if fetchable else "Or "
    return ConfigError(DATA_DIR_KEY, str(root), f"a folder holding {what} in torchvision's layout",
                       f"{reason}Expected: {'; '.join(expected)}. {how}point GAN_LAB_DATA_DIR=... or "
                       "paths.data_dir=... at a folder that has them.")


def _bad_file(root: Path, what: str, why: str) -> ConfigError:
    return ConfigError(DATA_DIR_KEY, str(root), f"a folder holding {what} in torchvision's layout", why)


# --------------------------------------------------------------------------------------------
# MNIST and Fashion-MNIST: IDX files

_IDX_NAMES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
              "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
IDX_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
IDX_LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension


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
             split: str, download: bool) -> TensorSource:
    check_choice("dataset.split", split, ("train", "test", "all"))
    root = resolve_dir(data_dir)
    raw_dir = root / folder / "raw"
    splits = ("train", "test") if split == "all" else (split,)
    wanted = [n for s in splits for n in _IDX_NAMES[s]]
    missing = [n for n in wanted if _idx_file(raw_dir, n) is None]
    what = f"{folder} (split={split})"
    if missing and download:
        also = [n for n in _IDX_NAMES["test"] if split == "train" and _idx_file(raw_dir, n) is None]
        try:
            dl.download_idx(raw_dir, mirror, md5s, missing + also)
        except dl.DownloadError as err:
            raise _missing(root, what, [f"{raw_dir / n}[.gz]" for n in missing], True, f"{err}. ") from err
        missing = [n for n in wanted if _idx_file(raw_dir, n) is None]
    if missing:
        raise _missing(root, what, [f"{raw_dir / n} (or {n}.gz)" for n in missing], True)
    parts = [_idx_split(raw_dir, s, root, what) for s in splits]
    spec = DataSpec(name, (1, 28, 28), "image")
    data = _to_signed_unit(np.concatenate([p[0] for p in parts]), 255.0).view(-1, *spec.shape)
    labels = torch.from_numpy(np.concatenate([p[1] for p in parts])).long()
    heldout = None
    if split == "train" and all(_idx_file(raw_dir, n) is not None for n in _IDX_NAMES["test"]):
        heldout = _to_signed_unit(_idx_split(raw_dir, "test", root, what)[0], 255.0).view(-1, *spec.shape)
    return TensorSource(data, spec, labels, heldout=heldout)


def mnist(data_dir: str | os.PathLike = "data", split: str = "train", download: bool = False) -> TensorSource:
    """MNIST (60,000 train / 10,000 test digits), 1×28×28, from ``<data_dir>/MNIST/raw/`` (IDX, optionally .gz).

    ``split``: train | test | all (both, train first). With split=train the test images, when present, are
    the source's ``heldout`` set. ``download``: fetch missing files from torchvision's mirror (MD5-checked).
    """
    return _idx_set("mnist", "MNIST", dl.MNIST_MIRROR, dl.MNIST_MD5, data_dir, split, download)


def fashion_mnist(data_dir: str | os.PathLike = "data", split: str = "train", download: bool = False) -> TensorSource:
    """Fashion-MNIST (60,000 / 10,000 clothing images), 1×28×28, from ``<data_dir>/FashionMNIST/raw/``.

    Same IDX layout, splits and ``download`` as :func:`mnist`.
    """
    return _idx_set("fashion_mnist", "FashionMNIST", dl.FASHION_MNIST_MIRROR, dl.FASHION_MNIST_MD5,
                    data_dir, split, download)


# --------------------------------------------------------------------------------------------
# CIFAR-10: Python pickles, read without letting them run code


class _Refused(pickle.UnpicklingError):
    def __init__(self, module: str, name: str):
        super().__init__(f"{module}.{name}")
        self.what = f"{module}.{name}"


def _reconstruct_fn():
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


def _allowed_globals() -> dict[tuple[str, str], Any]:
    import codecs

    reconstruct = _reconstruct_fn()
    return {("numpy.core.multiarray", "_reconstruct"): reconstruct,
            ("numpy._core.multiarray", "_reconstruct"): reconstruct,
            ("numpy", "ndarray"): np.ndarray,
            ("numpy", "dtype"): np.dtype,
            ("_codecs", "encode"): codecs.encode}  # how protocol-2 pickles written by Python 3 store bytes


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild numpy arrays and nothing else: any other global is refused, never imported.

    Plain ``pickle.load`` on a downloaded file runs whatever callable the file names (``os.system``, ...).
    """

    def find_class(self, module: str, name: str) -> Any:
        allowed = _allowed_globals().get((module, name))
        if allowed is None:
            raise _Refused(module, name)
        return allowed


def load_pickle(path: Path) -> Any:
    """Read ``path`` with :class:`SafeUnpickler` (``encoding="bytes"``: the CIFAR files are Python-2 pickles)."""
    with open(path, "rb") as f:
        return SafeUnpickler(f, encoding="bytes").load()


CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST = ("test_batch",)


def _cifar_batch(path: Path, root: Path) -> tuple[np.ndarray, np.ndarray]:
    what = "CIFAR-10"
    try:
        batch = load_pickle(path)
    except _Refused as err:
        raise _bad_file(root, what, f"{path} is refused: it asks to load {err.what}, which a CIFAR-10 batch never "
                                    "needs (unpickling it could run arbitrary code)") from err
    except Exception as err:  # truncated or not a pickle: EOFError, UnpicklingError, ValueError, ...
        raise _bad_file(root, what, f"{path} is not a readable CIFAR-10 batch ({type(err).__name__}: {err})") from err
    if not isinstance(batch, dict):
        raise _bad_file(root, what, f"{path} holds a {type(batch).__name__}, not a CIFAR-10 batch dict")
    batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    data, labels = batch.get("data"), batch.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise _bad_file(root, what, f"{path}: 'data' should be an N×3072 uint8 array, got {got}")
    try:
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    except (TypeError, ValueError) as err:
        raise _bad_file(root, what, f"{path}: 'labels' is not a list of integers ({err})") from err
    if len(labels) != len(data) or (len(labels) and (labels.min() < 0 or labels.max() > 9)):
        raise _bad_file(root, what, f"{path}: 'labels' should be {len(data)} integers in 0..9")
    return data, labels


def cifar10(data_dir: str | os.PathLike = "data", split: str = "train", download: bool = False) -> TensorSource:
    """CIFAR-10 (50,000 train / 10,000 test), 3×32×32 RGB, from ``<data_dir>/cifar-10-batches-py/``.

    ``split``: train (data_batch_1..5) | test (test_batch) | all; with split=train the test images, when
    present, are the source's ``heldout`` set. ``download``: fetch and unpack torchvision's archive when
    files are missing. The pickles are read by :class:`SafeUnpickler`.
    """
    check_choice("dataset.split", split, ("train", "test", "all"))
    root = resolve_dir(data_dir)
    folder = root / dl.CIFAR10_FOLDER
    names = {"train": CIFAR10_TRAIN, "test": CIFAR10_TEST, "all": CIFAR10_TRAIN + CIFAR10_TEST}[split]
    missing = [n for n in names if not (folder / n).is_file()]
    if missing and download:
        try:
            dl.download_cifar10(root)
        except dl.DownloadError as err:
            raise _missing(root, "CIFAR-10", [str(folder / n) for n in missing], True, f"{err}. ") from err
        missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise _missing(root, "CIFAR-10", [str(folder / n) for n in missing], True)
    batches = [_cifar_batch(folder / n, root) for n in names]
    pixels = np.concatenate([b[0] for b in batches]).reshape(-1, 3, 32, 32)  # rows hold the R, G, B planes
    labels = torch.from_numpy(np.concatenate([b[1] for b in batches]))
    heldout = None
    if split == "train" and all((folder / n).is_file() for n in CIFAR10_TEST):
        held = np.concatenate([_cifar_batch(folder / n, root)[0] for n in CIFAR10_TEST]).reshape(-1, 3, 32, 32)
        heldout = _to_signed_unit(held, 255.0)
    spec = DataSpec("cifar10", (3, 32, 32), "image")
    return TensorSource(_to_signed_unit(pixels, 255.0), spec, labels, heldout=heldout)


# --------------------------------------------------------------------------------------------
# Image files: CelebA and any folder


class CropTooLarge(ValueError):
    """The centre crop asked for does not fit inside an image."""

    def __init__(self, crop: int, width: int, height: int):
        super().__init__(f"it is {width}×{height}, smaller than the {crop}×{crop} centre crop")
        self.crop, self.width, self.height = crop, width, height


def decode_image(path: str | os.PathLike, size: int, crop: int | None = None, channels: int = 3) -> np.ndarray:
    """One image file as uint8 (channels, size, size): centre ``crop``×``crop`` square, resized with bicubic.

    ``crop=None`` takes the largest centre square. The crop is placed like torchvision's ``CenterCrop``
    and then resized with ``Image.Resampling.BICUBIC`` (antialiased by Pillow when shrinking). Grayscale
    is Pillow's "L" (ITU-R 601-2 luma). Raises OSError/ValueError for unreadable files; Pillow's
    decompression-bomb limit stays on.
    """
    mode = "L" if channels == 1 else "RGB"
    with Image.open(path) as im:
        w, h = im.size
        side = min(w, h) if crop is None else crop
        if side > min(w, h):
            raise CropTooLarge(side, w, h)
        left, top = int(round((w - side) / 2.0)), int(round((h - side) / 2.0))
        out = (im if im.mode == mode else im.convert(mode)).crop((left, top, left + side, top + side))
        if side != size:
            out = out.resize((size, size), RESAMPLE)
        pixels = np.asarray(out, dtype=np.uint8)
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


class ImageFilesSource(Source):
    """A sorted list of image files decoded a minibatch at a time (so DataLoader workers decode in parallel).

    Every file becomes ``spec.shape`` = (C, S, S) in [-1, 1] via :func:`decode_image`. ``labels`` is a
    long tensor (one class per file) or None. An unreadable file raises a ConfigError naming it when it
    is fetched; :meth:`load` decodes everything once into a :class:`TensorSource`.
    """

    def __init__(self, files: Sequence[str | os.PathLike], spec: DataSpec, labels: torch.Tensor | None = None,
                 crop: int | None = None, key: str = "dataset.path", root: str | os.PathLike = ""):
        if len(spec.shape) != 3 or spec.shape[0] not in (1, 3) or spec.shape[1] != spec.shape[2]:
            raise ValueError(f"ImageFilesSource needs a spec of shape (1|3, S, S), got {spec.shape}")
        if labels is not None and len(labels) != len(files):
            raise ValueError(f"{len(labels)} labels for {len(files)} files")
        self.files = [os.fspath(f) for f in files]
        self.spec, self.labels, self.crop = spec, labels, crop
        self.key, self.root = key, os.fspath(root)
        self.size = len(self.files)
        self.heldout = None  # as TensorSource: no held-out images

    def decode(self, index: int) -> np.ndarray:
        """File ``index`` as uint8 (C, S, S)."""
        path = self.files[index]
        try:
            return decode_image(path, self.spec.shape[1], self.crop, self.spec.shape[0])
        except CropTooLarge as err:
            raise ConfigError("dataset.crop", self.crop, "a side that fits inside every image (or null: the "
                              "shorter side)", f"{path} is {err.width}×{err.height}") from err
        except _DECODE_ERRORS as err:
            raise ConfigError(self.key, self.root, "a folder of readable images",
                              f"{path} cannot be used as an image: {err}") from err

    def __getitems__(self, positions: list[int]) -> torch.Tensor:
        return _to_signed_unit(np.stack([self.decode(int(i)) for i in positions]), 255.0)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        if n <= self.size:
            idx = torch.randperm(self.size, generator=generator)[:n]
        else:
            idx = torch.randint(self.size, (n,), generator=generator)
        return self.__getitems__(idx.tolist())

    def load(self, threads: int | None = None, progress: bool | None = None) -> TensorSource:
        """Decode every file once (threads: Pillow decodes without the GIL) into a TensorSource."""
        data = torch.empty((self.size, *self.spec.shape), dtype=torch.float32)
        chunk = 512
        starts = range(0, self.size, chunk)
        show = self.size >= 5000 if progress is None else progress
        with ThreadPoolExecutor(max_workers=threads or min(8, os.cpu_count() or 1)) as pool:
            if show:
                from rich.progress import track

                starts = track(starts, description=f"decoding {self.size:,} {self.spec.name} images",
                               transient=True)
            for s in starts:
                stop = min(s + chunk, self.size)
                data[s:stop] = _to_signed_unit(np.stack(list(pool.map(self.decode, range(s, stop)))), 255.0)
        return TensorSource(data, self.spec, self.labels)


def _check_image_settings(size: Any, crop: Any, in_memory: Any) -> None:
    check_int("dataset.size", size, 1)
    if crop is not None:
        check_int("dataset.crop", crop, 1)
    if not (isinstance(in_memory, bool) or in_memory == "auto"):
        raise ConfigError("dataset.in_memory", in_memory, "true, false or auto",
                          "auto holds the set in memory when it takes at most 2 GiB as float32")


def _finish(source: ImageFilesSource, in_memory: bool | str) -> Source:
    source.decode(0)  # one file now: a wrong crop or unreadable data show at once, not mid-run
    if in_memory == "auto":
        in_memory = source.size * source.spec.numel * 4 <= IN_MEMORY_LIMIT
    return source.load() if in_memory else source


CELEBA_SPLITS = {"train": 0, "valid": 1, "test": 2}
CELEBA_URL = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"


def celeba(data_dir: str | os.PathLike = "data", split: str = "train", size: int = 64, crop: int = 140,
           in_memory: bool | str = "auto", download: bool = False) -> Source:
    """CelebA aligned faces (178×218 JPEGs), centre-cropped to ``crop``² and resized (bicubic) to 3×size×size.

    Files: ``<data_dir>/celeba/img_align_celeba/*.jpg`` and ``<data_dir>/celeba/list_eval_partition.txt``
    (``000001.jpg 0``: 0 train, 1 valid, 2 test), as torchvision lays them out. ``split``: train | valid |
    test | all (every jpg in the folder; the only one allowed without the partition file). ``in_memory``:
    true, false (stream from disk) or auto (in memory when it fits in 2 GiB). No labels. CelebA sits
    behind Google Drive's confirmation page, so ``download=true`` cannot fetch it: fetch it by hand.
    """
    check_choice("dataset.split", split, (*CELEBA_SPLITS, "all"))
    _check_image_settings(size, crop, in_memory)
    root = resolve_dir(data_dir)
    base = root / "celeba"
    img_dir, partition = base / "img_align_celeba", base / "list_eval_partition.txt"
    on_disk = sorted(e.name for e in os.scandir(img_dir) if e.name.lower().endswith(".jpg")) \
        if img_dir.is_dir() else []
    manual = (f"CelebA is served from Google Drive behind a confirmation page, so the lab does not download it "
              f"(dataset.download=true cannot help): get img_align_celeba.zip and list_eval_partition.txt "
              f"(\"Align&Cropped Images\", \"Eval\") from {CELEBA_URL} and unzip so that "
              f"{img_dir / '000001.jpg'} exists. ")
    if not on_disk:
        zipped = base / "img_align_celeba.zip"
        hint = f"{zipped} is there: unzip it in place. " if zipped.is_file() else ""
        raise _missing(root, "CelebA", [f"{img_dir}/*.jpg", str(partition)], False, hint + manual)
    if split == "all":
        names = on_disk
    else:
        if not partition.is_file():
            raise ConfigError("dataset.split", split, "all (the only split without the partition file)",
                              f"split={split} needs {partition}, which is missing. " + manual)
        names = _celeba_partition(partition, CELEBA_SPLITS[split], root)
        if not names:
            raise _bad_file(root, "CelebA", f"{partition} lists no file for split={split}")
        absent = sorted(set(names) - set(on_disk))
        if absent:
            raise _bad_file(root, "CelebA", f"{len(absent)} files of {partition.name} (split={split}) are not in "
                                            f"{img_dir}, e.g. {', '.join(absent[:3])}")
    source = ImageFilesSource([img_dir / n for n in names], DataSpec("celeba", (3, size, size), "image"),
                              crop=crop, key=DATA_DIR_KEY, root=root)
    return _finish(source, in_memory)


def _celeba_partition(path: Path, code: int, root: Path) -> list[str]:
    names = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
            raise _bad_file(root, "CelebA", f"{path} line {number} is {line!r}, expected '<file>.jpg <0|1|2>'")
        if int(parts[1]) == code:
            names.append(parts[0])
    return sorted(names)


def _find_images(root: Path) -> list[Path]:
    found = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [Path(folder, n) for n in names
                  if not n.startswith(".") and n.lower().endswith(IMAGE_EXTENSIONS)]
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def folder(path: str | os.PathLike, size: int = 64, crop: int | None = None, channels: int = 3,
           in_memory: bool | str = "auto") -> Source:
    """Every image under ``path`` (png, jpg, jpeg, bmp, webp, gif, any case; recursive), as channels×size×size.

    When every image lies inside a first-level subfolder, those folders (sorted by name) are the class
    labels, as torchvision's ``ImageFolder``; otherwise there are none. Hidden files and folders are
    skipped. ``crop``: side of the centre square taken before resizing (None: the shorter side).
    ``channels``: 1 (grayscale) or 3 (RGB). ``in_memory``: true | false (stream) | auto (≤ 2 GiB).
    An unreadable image is an error naming it, never silently skipped.
    """
    _check_image_settings(size, crop, in_memory)
    if channels not in (1, 3) or isinstance(channels, bool):
        raise ConfigError("dataset.channels", channels, "1 (grayscale) or 3 (RGB)")
    root = resolve_dir(path)
    if not root.is_dir():
        state = "is not a folder" if root.exists() else "does not exist"
        raise ConfigError("dataset.path", str(path), "a folder of images", f"{root} {state}")
    files = _find_images(root)
    if not files:
        raise ConfigError("dataset.path", str(path), "a folder holding images",
                          f"no file ending in {', '.join(IMAGE_EXTENSIONS)} (any case) was found under {root}, "
                          "searched recursively")
    parts = [f.relative_to(root).parts for f in files]
    labels = None
    if all(len(p) >= 2 for p in parts):
        classes = sorted({p[0] for p in parts})
        index = {c: i for i, c in enumerate(classes)}
        labels = torch.tensor([index[p[0]] for p in parts], dtype=torch.long)
    spec = DataSpec("folder", (channels, size, size), "image")
    return _finish(ImageFilesSource(files, spec, labels, crop, key="dataset.path", root=root), in_memory)
