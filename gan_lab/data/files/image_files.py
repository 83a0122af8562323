"""CelebA and any folder of images, decoded with Pillow (:func:`decode_image`: centre crop, bicubic resize)
either once into memory or a minibatch at a time (:class:`ImageFilesSource`, which DataLoader workers decode
in parallel).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import torch
from PIL import Image

from gan_lab.checks import at_least
from gan_lab.data.base import DataSpec, Source, TensorSource, sample_positions
from gan_lab.data.files.common import DATA_DIR_KEY, DataDir, InMemory, _bad_file, _missing, resolve_dir
from gan_lab.data.images import _to_signed_unit
from gan_lab.errors import ConfigError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif")
IN_MEMORY_LIMIT = 2 * 1024**3  # in_memory="auto": hold the set as float32 when it fits in this many bytes
RESAMPLE = Image.Resampling.BICUBIC


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
        return self.__getitems__(sample_positions(self.size, n, generator).tolist())

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


Size = Annotated[int, at_least(1), "output side: channels × size × size"]
Crop = Annotated[Annotated[int, at_least(1)] | None, "side of the centre square taken before resizing (bicubic); "
                                                     "null: the shorter side"]


def _finish(source: ImageFilesSource, in_memory: bool | str) -> Source:
    source.decode(0)  # one file now: a wrong crop or unreadable data show at once, not mid-run
    if in_memory == "auto":
        in_memory = source.size * source.spec.numel * 4 <= IN_MEMORY_LIMIT
    return source.load() if in_memory else source


CELEBA_SPLITS = {"train": 0, "valid": 1, "test": 2}
CELEBA_URL = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"


def celeba(data_dir: DataDir = "data",
           split: Annotated[Literal[(*CELEBA_SPLITS, "all")], "train | valid | test | all (all works without the "
                                                              "partition file)"] = "train",
           size: Size = 64, crop: Crop = 140, in_memory: InMemory = "auto",
           download: Annotated[bool, "CelebA is on Google Drive behind a confirmation page: true only explains "
                                     "where to get it"] = False) -> Source:
    """CelebA aligned faces (178×218 JPEGs), centre-cropped to ``crop``² and resized (bicubic) to 3×size×size.

    Files: ``<data_dir>/celeba/img_align_celeba/*.jpg`` and ``<data_dir>/celeba/list_eval_partition.txt``
    (``000001.jpg 0``: 0 train, 1 valid, 2 test), as torchvision lays them out. ``split``: train | valid |
    test | all (every jpg in the folder; the only one allowed without the partition file). ``in_memory``:
    true, false (stream from disk) or auto (in memory when it fits in 2 GiB). No labels. CelebA sits
    behind Google Drive's confirmation page, so ``download=true`` cannot fetch it: fetch it by hand.
    """
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


def folder(path: Annotated[str | os.PathLike, "the folder, e.g. dataset.path=~/pictures/faces (relative to the "
                                              "current directory)"],
           size: Size = 64, crop: Crop = None,
           channels: Annotated[Literal[1, 3], "3 (RGB) | 1 (grayscale)"] = 3, in_memory: InMemory = "auto") -> Source:
    """Every image under ``path`` (png, jpg, jpeg, bmp, webp, gif, any case; recursive), as channels×size×size.

    When every image lies inside a first-level subfolder, those folders (sorted by name) are the class
    labels, as torchvision's ``ImageFolder``; otherwise there are none. Hidden files and folders are
    skipped. ``crop``: side of the centre square taken before resizing (None: the shorter side).
    ``channels``: 1 (grayscale) or 3 (RGB). ``in_memory``: true | false (stream) | auto (≤ 2 GiB).
    An unreadable image is an error naming it, never silently skipped.
    """
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
