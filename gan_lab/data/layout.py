"""The field's image-archive layout, as stylegan2-ada-pytorch's ``dataset_tool.py`` writes it and its
``training/dataset.py`` (``ImageFolderDataset``) reads it (Karras et al., "Training Generative Adversarial Networks
with Limited Data", 2020; the same layout serves StyleGAN2/3, EDM and R3GAN).

An uncompressed zip (``ZIP_STORED``) holding image ``i`` (counting from 0) as an 8-bit PNG named

    f"{i:08d}"[:5] + "/img" + f"{i:08d}" + ".png"      →  00000/img00000000.png … 00000/img00000999.png,
                                                           00001/img00001000.png …  (1,000 per folder)

(gray as mode L, RGB as RGB, H×W×C rows), and ``dataset.json`` = ``{"labels": [["00000/img00000000.png", 6],
…]}`` with one class index per image, or ``{"labels": null}`` for an unlabelled set. Images are read in the
sorted order of their names; the labels are matched by name, not by position.

The archive written here is reproducible: the entries carry a fixed date (1980-01-01), so the same images and
labels give the same bytes.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

LABELS_FILE = "dataset.json"
PER_FOLDER = 1000
_FIXED_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest a zip entry can carry: no wall clock in the bytes


def archive_name(index: int) -> str:
    """The name of image ``index`` in the archive: ``00000/img00000000.png`` (1,000 per folder)."""
    digits = f"{index:08d}"
    return f"{digits[:5]}/img{digits}.png"


def png_bytes(image: np.ndarray) -> bytes:
    """An H×W (gray) or H×W×3 (RGB) uint8 image as PNG bytes, uncompressed (zlib level 0), as the reference
    writes them: larger files that decode without inflating."""
    if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3))):
        raise ValueError(f"expected an H×W or H×W×3 uint8 image, got {image.dtype} {image.shape}")
    pixels = image[:, :, 0] if image.ndim == 3 and image.shape[2] == 1 else image
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels), "L" if pixels.ndim == 2 else "RGB").save(
        out, format="png", compress_level=0, optimize=False)
    return out.getvalue()


def parse_labels(text: str | bytes, names: Sequence[str]) -> list[int] | None:
    """The class index of each of ``names`` (the archive's images, sorted) from ``dataset.json``'s text, or None
    for ``{"labels": null}``. ValueError names the first problem: not JSON, no ``labels`` key, an entry that is
    not ``[name, class index]``, a name twice, a name the archive lacks, an image without a label."""
    try:
        blob = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{LABELS_FILE} is not JSON ({err})") from err
    if not isinstance(blob, dict) or "labels" not in blob:
        raise ValueError(f'{LABELS_FILE} has no "labels" key (expected {{"labels": [[name, class], ...]}} or '
                         '{"labels": null})')
    entries = blob["labels"]
    if entries is None:
        return None
    if not isinstance(entries, list):
        raise ValueError(f'{LABELS_FILE}: "labels" is a {type(entries).__name__}, expected a list of '
                         "[name, class] pairs or null")
    given: dict[str, int] = {}
    for entry in entries:
        ok = isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)
        if not ok or isinstance(entry[1], bool) or not isinstance(entry[1], int) or entry[1] < 0:
            raise ValueError(f"{LABELS_FILE}: the entry {json.dumps(entry)[:80]} is not [name, class index >= 0] "
                             "(vector labels are not supported: the lab conditions on class indices)")
        if entry[0] in given:
            raise ValueError(f"{LABELS_FILE} labels {entry[0]} twice")
        given[entry[0]] = entry[1]
    wanted = set(names)
    stray = next((n for n in given if n not in wanted), None)
    if stray is not None:
        raise ValueError(f"{LABELS_FILE} names {stray}, which is not an image of the archive")
    unlabelled = [n for n in names if n not in given]
    if unlabelled:
        raise ValueError(f"{LABELS_FILE} labels {len(given)} of the {len(names)} images: {unlabelled[0]} has no "
                         "label")
    return [given[n] for n in names]


class ArchiveWriter:
    """Writes images in order into ``dest`` in the reference layout; :meth:`close` adds ``dataset.json``.

    The archive is written to a temporary name beside ``dest`` and renamed into place by :meth:`close`, so an
    interrupted conversion leaves nothing that looks like a data set; :meth:`discard` removes it. Either every
    image has a class label or none has.
    """

    def __init__(self, dest: str | os.PathLike):
        self.dest = Path(dest)
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.dest.name}.", suffix=".part", dir=self.dest.parent)
        os.close(fd)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # as open() would create it (mkstemp makes it private)
        self._tmp = Path(tmp)
        self._zip = zipfile.ZipFile(self._tmp, "w", compression=zipfile.ZIP_STORED)
        self.labels: list[int | None] = []

    def __len__(self) -> int:
        return len(self.labels)

    def _put(self, name: str, data: bytes) -> None:
        self._zip.writestr(zipfile.ZipInfo(name, date_time=_FIXED_DATE), data, compress_type=zipfile.ZIP_STORED)

    def add(self, image: np.ndarray, label: int | None = None) -> str:
        """Append one H×W or H×W×3 uint8 image; returns its name in the archive."""
        name = archive_name(len(self.labels))
        self._put(name, png_bytes(image))
        self.labels.append(None if label is None else int(label))
        return name

    def close(self) -> Path:
        """Write ``dataset.json`` (labels, or null when any image has none) and move the archive into place."""
        labelled = bool(self.labels) and all(label is not None for label in self.labels)
        entries = [[archive_name(i), label] for i, label in enumerate(self.labels)] if labelled else None
        self._put(LABELS_FILE, json.dumps({"labels": entries}))
        self._zip.close()
        os.replace(self._tmp, self.dest)
        return self.dest

    def discard(self) -> None:
        self._zip.close()
        self._tmp.unlink(missing_ok=True)
