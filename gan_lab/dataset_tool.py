"""``python -m gan_lab.dataset_tool --source <folder | cifar-10-python.tar.gz | IDX files | zip> --dest out.zip``

Writes an image set in the field's archive layout (stylegan2-ada-pytorch's ``dataset_tool.py``, Karras et al.,
"Training Generative Adversarial Networks with Limited Data", 2020; :mod:`gan_lab.data.layout`): an uncompressed
zip of PNGs ``00000/img00000000.png`` … (1,000 per folder) and ``dataset.json`` with one class label per image, or
``{"labels": null}``. The lab reads it back with ``dataset=zip dataset.path=out.zip``; so do StyleGAN2-ADA/3,
EDM and R3GAN.

Shapes, in this order:

- ``--resolution R``: centre-crop each image to a square (side = its shorter side, the square centred as
  torchvision's ``CenterCrop`` places it), then resize it to R×R (``--resize-filter``, Lanczos by default as the
  reference tool; images already R×R are left alone). Without it every image must already be square and of one
  size, or the tool stops naming the first one that is not.
- ``--pad-to P``: then pad each image with zeros to P×P, centred (the extra pixel of an odd margin goes right
  and below). ``--pad-to 32`` turns MNIST and Fashion-MNIST's 28×28 into the 32×32 of most GAN papers (2 black
  pixels per side) with no resampling; ``--resolution 32`` would instead resize the 28 px digits (blurring them).

Source kinds and their labels: :mod:`gan_lab.data.convert`. The archive is written to a temporary name beside
``--dest`` and renamed when complete; the same input gives the same bytes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TextIO

import numpy as np
from PIL import Image

from gan_lab.data.convert import SourceError, open_source
from gan_lab.data.files.common import resolve_dir
from gan_lab.data.layout import ArchiveWriter

FILTERS = {"lanczos": Image.Resampling.LANCZOS, "bicubic": Image.Resampling.BICUBIC, "box": Image.Resampling.BOX}


class Shaper:
    """Centre-crop and resize (``resolution``), then zero-pad (``pad_to``); checks that every image comes out
    square and of one size, naming the first that does not."""

    def __init__(self, resolution: int | None = None, pad_to: int | None = None, resize_filter: str = "lanczos"):
        self.resolution, self.pad_to, self.resample = resolution, pad_to, FILTERS[resize_filter]
        self.first: tuple[tuple[int, ...], str] | None = None

    def __call__(self, image: np.ndarray, where: str) -> np.ndarray:
        h, w = image.shape[:2]
        if self.resolution is not None:
            side = min(h, w)
            top, left = int(round((h - side) / 2.0)), int(round((w - side) / 2.0))
            image = image[top:top + side, left:left + side]
            if side != self.resolution:
                image = np.asarray(Image.fromarray(image).resize((self.resolution,) * 2, self.resample))
        if self.pad_to is not None:
            h, w = image.shape[:2]
            if max(h, w) > self.pad_to:
                raise SourceError(f"{where} is {w}×{h}{' after the resize' if self.resolution else ''}, larger than "
                                  f"--pad-to {self.pad_to}")
            top, left = (self.pad_to - h) // 2, (self.pad_to - w) // 2
            canvas = np.zeros((self.pad_to, self.pad_to, *image.shape[2:]), dtype=image.dtype)
            canvas[top:top + h, left:left + w] = image
            image = canvas
        h, w = image.shape[:2]
        if h != w:
            raise SourceError(f"{where} is {w}×{h}, not square: pass --resolution R to centre-crop every image to a "
                              "square and resize it to R×R")
        if self.first is None:
            self.first = (image.shape, where)
        elif image.shape[:2] != self.first[0][:2]:
            size = self.first[0][1]
            raise SourceError(f"{where} is {w}×{h} but {self.first[1]} is {size}×{size}: pass --resolution R to "
                              "resize every image to R×R")
        return image


class Progress:
    """A throttled progress line on ``stream``: rewritten in place on a terminal (5 a second at most), else a new
    line every ``every_s`` seconds."""

    def __init__(self, total: int, stream: TextIO = sys.stderr, every_s: float = 10.0, enabled: bool = True):
        self.total, self.stream, self.enabled = total, stream, enabled
        self.tty = enabled and hasattr(stream, "isatty") and stream.isatty()
        self.every = 0.2 if self.tty else every_s
        self.start = self.last = time.perf_counter()

    def __call__(self, done: int) -> None:
        now = time.perf_counter()
        if not self.enabled or now - self.last < self.every:
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        line = (f"gan_lab: {done:,}/{self.total:,} images ({100 * done / max(self.total, 1):.0f} %), {rate:,.0f}/s, "
                f"{(self.total - done) / max(rate, 1e-9):.0f} s left")
        self.stream.write(f"\r{line}" if self.tty else f"{line}\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self.last > self.start:
            self.stream.write("\n")
            self.stream.flush()


def convert(source: str | Path, dest: str | Path, resolution: int | None = None, pad_to: int | None = None,
            max_images: int | None = None, channels: int | None = None, split: str = "train",
            resize_filter: str = "lanczos", overwrite: bool = False, progress: bool = True) -> dict:
    """Write ``source`` into ``dest`` in the field's layout; returns what was written: count, shape (C, S, S),
    classes (0 for an unlabelled set), seconds. :class:`SourceError` for anything that stops it (nothing is
    left at ``dest`` then)."""
    dest = resolve_dir(dest)
    if dest.suffix.lower() != ".zip":
        raise SourceError(f"--dest {dest} must name a .zip file (the layout is an uncompressed zip)")
    if dest.is_dir():
        raise SourceError(f"--dest {dest} is a folder")
    if dest.exists() and not overwrite:
        raise SourceError(f"--dest {dest} exists: pass --overwrite to replace it")
    opened = open_source(source, channels, split, max_images)
    if opened.count == 0:
        raise SourceError(f"--source {source}: nothing to write (--max-images {max_images})")
    shape = Shaper(resolution, pad_to, resize_filter)
    start = time.perf_counter()
    bar = Progress(opened.count, enabled=progress and opened.count >= 1000)
    writer = ArchiveWriter(dest)
    try:
        for where, image, label in opened.items:
            writer.add(shape(image, where), label)
            bar(len(writer))
        writer.close()
    except BaseException:
        writer.discard()
        raise
    finally:
        bar.close()
    (h, w, *c), labels = shape.first[0], [label for label in writer.labels if label is not None]
    return {"count": len(writer), "shape": (c[0] if c else 1, h, w), "kind": opened.kind,
            "classes": max(labels) + 1 if opened.labelled and labels else 0,
            "seconds": time.perf_counter() - start, "dest": str(dest)}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # the lab's one-line form, status 2 (argparse's own status for usage errors)
        self.print_usage(sys.stderr)
        self.exit(2, f"gan_lab: error: {message}\n")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not >= 1")
    return value


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m gan_lab.dataset_tool",
                description="Write an image set as an uncompressed zip of PNGs with dataset.json labels, the layout "
                            "of stylegan2-ada-pytorch's dataset_tool.py (read back with dataset=zip "
                            "dataset.path=<dest>).",
                epilog="Sources: a folder of images (labels: its dataset.json, else its first-level subfolders when "
                       "every image sits in one), CIFAR-10's cifar-10-python.tar.gz, IDX files (a folder of "
                       "*-images-idx3-ubyte[.gz] + *-labels-idx1-ubyte[.gz], or the images file), a zip of images. "
                       "Example: --source /usr/share/datasets/fashion-mnist --dest fashion-32.zip --pad-to 32")
    p.add_argument("--source", required=True, help="folder | cifar-10-python.tar.gz | IDX folder or file | zip")
    p.add_argument("--dest", required=True, help="the .zip to write (refused if it exists, unless --overwrite)")
    p.add_argument("--resolution", type=_positive, metavar="R",
                   help="centre-crop each image to a square (its shorter side), then resize to R×R; without it "
                        "every image must already be square and of one size")
    p.add_argument("--pad-to", type=_positive, metavar="P",
                   help="then pad with zeros to P×P, centred (e.g. 28 -> 32 px: 2 pixels per side)")
    p.add_argument("--max-images", type=_positive, metavar="N", help="write only the first N images")
    p.add_argument("--channels", type=int, choices=(1, 3),
                   help="convert every image to gray (1) or RGB (3); default: as the first image")
    p.add_argument("--split", choices=("train", "test", "all"), default="train",
                   help="CIFAR-10 batches and IDX pairs to take (default: train)")
    p.add_argument("--resize-filter", choices=tuple(FILTERS), default="lanczos", help="default: lanczos")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --dest")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        done = convert(args.source, args.dest, args.resolution, args.pad_to, args.max_images, args.channels,
                       args.split, args.resize_filter, args.overwrite, progress=not args.quiet)
    except SourceError as err:
        print(f"gan_lab: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gan_lab: error: interrupted (Ctrl-C); nothing was written", file=sys.stderr)
        return 130
    c, h, w = done["shape"]
    labels = f"{done['classes']} classes" if done["classes"] else "no labels"
    rate = done["count"] / max(done["seconds"], 1e-9)
    print(f"gan_lab: wrote {done['count']:,} images ({c}×{h}×{w}, {labels}) to {done['dest']} in "
          f"{done['seconds']:.1f} s ({rate:,.0f} images/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
