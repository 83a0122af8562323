"""An image archive in the field's layout (:mod:`gan_lab.data.layout`: stylegan2-ada-pytorch's ``dataset_tool.py``,
Karras et al. 2020), read as the lab's images in [-1, 1] with their class labels.

Every image keeps its stored size and channels (gray L → 1, RGB → 3); they must all be the same square
C×S×S. Pixels q ∈ {0..255} become q/127.5 − 1, the values every 8-bit source of the lab holds, so a set in
memory goes to the device as uint8 (``GANDataModule``) and is decoded there per minibatch, bit for bit.
``in_memory=auto`` decodes the archive once into memory when it fits in 2 GiB as float32, else each minibatch
is decoded from the zip (each DataLoader worker opens its own handle). Every problem with the archive is a
ConfigError on ``dataset.path`` naming the file inside it.
"""

from __future__ import annotations

import io
import mmap
import os
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from gan_lab.data.base import DataSpec, Source, TensorSource, sample_positions
from gan_lab.data.files.common import InMemory, resolve_dir
from gan_lab.data.files.image_files import IMAGE_EXTENSIONS, IN_MEMORY_LIMIT
from gan_lab.data.images import _to_signed_unit
from gan_lab.data.layout import LABELS_FILE, parse_labels
from gan_lab.errors import ConfigError

KEY = "dataset.path"
ALLOWED = "a zip of images in stylegan2-ada-pytorch's layout (python -m gan_lab.dataset_tool writes one)"
_MODES = {"L": 1, "RGB": 3}
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, zipfile.BadZipFile, Image.DecompressionBombError)


def _refuse(path: str | os.PathLike, why: str) -> ConfigError:
    return ConfigError(KEY, str(path), ALLOWED, why)


def image_names(names: list[str]) -> list[str]:
    """The image members of an archive's name list, sorted (as the reference's reader orders them)."""
    return sorted(n for n in names if not n.endswith("/") and n.lower().endswith(IMAGE_EXTENSIONS))


_PNG = b"\x89PNG\r\n\x1a\n"
_PNG_MODES = {(8, 0): "L", (8, 2): "RGB"}  # (bit depth, colour type) of an IHDR


class _Members:
    """Reads members of a zip by index. A stored (uncompressed) member, as the layout's, is a slice of the
    memory-mapped file, checked against its CRC-32: no per-member ``ZipFile.open``. Other members go through
    :mod:`zipfile`."""

    def __init__(self, path: Path):
        self.path = path
        self.zip = zipfile.ZipFile(path)  # its central directory, parsed once per process
        try:
            with open(path, "rb") as f:
                self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except BaseException:
            self.zip.close()
            raise
        self.infos: list[zipfile.ZipInfo] = []

    def select(self, names: list[str]) -> _Members:
        """Index the members by position in ``names``."""
        self.infos = [self.zip.getinfo(n) for n in names]
        return self

    def _data_start(self, info: zipfile.ZipInfo) -> int | None:
        mm = self._map
        at = info.header_offset
        if mm[at:at + 4] != b"PK\x03\x04":
            return None
        name_len, extra_len = struct.unpack_from("<HH", mm, at + 26)
        return at + 30 + name_len + extra_len

    def _direct(self, info: zipfile.ZipInfo) -> bool:
        return info.compress_type == zipfile.ZIP_STORED and not info.flag_bits & 0x1  # stored, not encrypted

    def close(self) -> None:
        self._map.close()
        self.zip.close()

    def read(self, index: int, head: int | None = None) -> bytes:
        """Member ``index``'s bytes (only the first ``head`` of a stored one, unchecked, when given)."""
        info = self.infos[index]
        start = self._data_start(info) if self._direct(info) else None
        if start is None:
            with self.zip.open(info) as f:
                return f.read(head) if head is not None else f.read()
        if head is not None:
            return self._map[start:start + min(head, info.file_size)]
        data = self._map[start:start + info.file_size]
        if zlib.crc32(data) != info.CRC:
            raise zipfile.BadZipFile(f"bad CRC-32 for {info.filename}")
        return data


def _png_header(head: bytes) -> tuple[str, tuple[int, int]] | None:
    """(mode, (width, height)) from a PNG's first 29 bytes; None when it is no PNG (read it with Pillow)."""
    if len(head) < 29 or head[:8] != _PNG or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack_from(">II", head, 16)
    return _PNG_MODES.get((head[24], head[25]), f"a PNG of bit depth {head[24]}, colour type {head[25]}"), \
        (width, height)


def _why(err: Exception) -> str:
    if isinstance(err, UnidentifiedImageError):
        return "Pillow recognises no image format in it"
    return f"{type(err).__name__}: {err}"


class ZipImagesSource(Source):
    """The images of an archive decoded a minibatch at a time; :meth:`load` decodes them all into memory.

    ``spec.shape`` (C, S, S) is the first image's; an image of another size or mode is a ConfigError naming it
    when it is decoded. The zip is mapped lazily, once per process (DataLoader workers map their own).
    """

    def __init__(self, path: str | os.PathLike, names: list[str], spec: DataSpec, labels: torch.Tensor | None):
        self.path, self.names, self.spec, self.labels = Path(path), list(names), spec, labels
        self.size = len(self.names)
        self.heldout = None
        self._members: _Members | None = None
        self._pid = -1

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_members": None, "_pid": -1}

    def _archive(self) -> _Members:
        if self._members is None or self._pid != os.getpid():
            self._members, self._pid = _Members(self.path).select(self.names), os.getpid()
        return self._members

    def close(self) -> None:
        if self._members is not None and self._pid == os.getpid():
            self._members.close()
        self._members = None

    def _mismatch(self, index: int, mode: str, size: tuple[int, int]) -> ConfigError | None:
        channels, side = self.spec.shape[0], self.spec.shape[1]
        where = f"{self.path}:{self.names[index]}"
        if mode not in _MODES:
            what = mode if " " in mode else f"mode {mode}"
            return _refuse(self.path, f"{where} is not 8-bit gray (L) or RGB, as the layout holds ({what}): "
                                      "re-write the archive with python -m gan_lab.dataset_tool --source <it> "
                                      "--dest <new>.zip")
        if _MODES[mode] != channels or size != (side, side):
            first = f"{self.names[0]} is {side}×{side} with {channels} channel{'s' if channels > 1 else ''}"
            return _refuse(self.path, f"{where} is {size[0]}×{size[1]} with {_MODES[mode]} channel"
                                      f"{'s' if _MODES[mode] > 1 else ''}, but {first}: every image must match")
        return None

    def decode(self, index: int) -> np.ndarray:
        """Image ``index`` as uint8 (C, S, S)."""
        try:
            with Image.open(io.BytesIO(self._archive().read(index))) as im:
                mode, size = im.mode, im.size
                pixels = np.asarray(im, dtype=np.uint8) if mode in _MODES else None
        except _DECODE_ERRORS as err:
            raise _refuse(self.path, f"{self.path}:{self.names[index]} cannot be decoded as an image "
                                     f"({_why(err)})") from err
        wrong = self._mismatch(index, mode, size)
        if wrong is not None:
            raise wrong
        return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)

    def codes(self, positions: list[int]) -> np.ndarray:
        """The images at ``positions`` as uint8 (B, C, S, S)."""
        return np.stack([self.decode(int(i)) for i in positions])

    def __getitems__(self, positions: list[int]) -> torch.Tensor:
        return _to_signed_unit(self.codes(positions), 255.0)

    def sample_indices(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """The positions :meth:`sample` draws (distinct when n ≤ size)."""
        return sample_positions(self.size, n, generator)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self.__getitems__(self.sample_indices(n, generator).tolist())

    def check_headers(self) -> None:
        """Every image's size and mode from its header alone (a PNG's first 29 bytes; Pillow for other
        formats), so a mismatch shows before training rather than mid-run."""
        members = self._archive()
        for index in range(self.size):
            header = _png_header(members.read(index, head=29))
            if header is None:
                self.decode(index)  # not a PNG: Pillow decides (and names it if it is wrong)
            elif (wrong := self._mismatch(index, *header)) is not None:
                raise wrong

    def load(self, progress: bool | None = None) -> TensorSource:
        """Decode every image once into a :class:`TensorSource` (uint8 first, one conversion at the end)."""
        codes = np.empty((self.size, *self.spec.shape), dtype=np.uint8)
        chunk = 1000
        starts = range(0, self.size, chunk)
        if (self.size >= 5000) if progress is None else progress:
            from rich.progress import track

            starts = track(starts, description=f"decoding {self.size:,} images of {self.path.name}", transient=True)
        for s in starts:
            stop = min(s + chunk, self.size)
            codes[s:stop] = self.codes(list(range(s, stop)))
        self.close()
        return TensorSource(_to_signed_unit(codes, 255.0), self.spec, self.labels)


def _open(root: Path, path: str | os.PathLike) -> tuple[_Members, list[str], list[int] | None]:
    if not root.exists():
        raise _refuse(path, f"{root} does not exist")
    if root.is_dir():
        raise _refuse(path, f"{root} is a folder: dataset=folder reads folders (or python -m gan_lab.dataset_tool "
                            f"--source {root} --dest <file>.zip writes one)")
    try:
        members = _Members(root)
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        raise _refuse(path, f"{root} is not a readable zip archive ({type(err).__name__}: {err})") from err
    try:
        listed = members.zip.namelist()
        names = image_names(listed)
        if not names:
            raise _refuse(path, f"{root} holds no image (no member ending in {', '.join(IMAGE_EXTENSIONS)})")
        try:
            text = members.zip.read(LABELS_FILE) if LABELS_FILE in listed else None
            labels = None if text is None else parse_labels(text, names)
        except (zipfile.BadZipFile, OSError, ValueError) as err:
            raise _refuse(path, f"{root}:{err}") from err
    except BaseException:
        members.close()
        raise
    return members.select(names), names, labels


def image_zip(path: Annotated[str | os.PathLike, "the archive, e.g. dataset.path=~/data/ffhq-64.zip (relative to "
                                                 "the current directory)"],
              in_memory: InMemory = "auto") -> Source:
    """The images of a zip in the field's layout, C×S×S as stored, with ``dataset.json``'s class labels.

    ``dataset.json`` absent or ``{"labels": null}``: no labels. ``in_memory``: true | false (decode each
    minibatch from the zip) | auto (in memory when ≤ 2 GiB as float32). Every image must share the first
    one's square size and mode (L or RGB); anything else is a ConfigError naming the file.
    """
    root = resolve_dir(path)
    members, names, labels = _open(root, path)
    try:
        try:
            with Image.open(io.BytesIO(members.read(0))) as im:
                mode, (width, height) = im.mode, im.size
        except _DECODE_ERRORS as err:
            raise _refuse(path, f"{root}:{names[0]} cannot be decoded as an image ({_why(err)})") from err
        if mode not in _MODES or width != height:
            what = f"mode {mode}" if mode not in _MODES else f"{width}×{height}, not square"
            raise _refuse(path, f"{root}:{names[0]} is {what}; the lab trains on square 8-bit gray (L) or RGB "
                                "images: re-write it with python -m gan_lab.dataset_tool --source <it> --resolution "
                                "<side>")
    except BaseException:
        members.close()
        raise
    spec = DataSpec("zip", (_MODES[mode], width, width), "image")
    source = ZipImagesSource(root, names, spec, None if labels is None else torch.tensor(labels, dtype=torch.long))
    source._members, source._pid = members, os.getpid()  # the directory just parsed serves the first reads
    try:
        source.decode(0)
        if in_memory == "auto":
            in_memory = source.size * spec.numel * 4 <= IN_MEMORY_LIMIT
        if in_memory:
            return source.load()
        source.check_headers()
    finally:
        source.close()
    return source
