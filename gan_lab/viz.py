"""Pictures of a run: image grids, real-vs-generated scatter and histograms, loss curves.

Every function returns an (H, W, 3) uint8 array, written as PNG and sent to the loggers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from gan_lab.data.base import DataSpec  # noqa: E402
from gan_lab.nets.lapgan import chain_residuals, up  # noqa: E402


def image_grid(images: torch.Tensor, nrow: int | None = None, pad: int = 2, scale: int = 1) -> np.ndarray:
    """Tile images (N, C, H, W) in [-1, 1] into one RGB picture (padding is grey)."""
    n, c, h, w = images.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    ncol = math.ceil(n / nrow)
    pixels = ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    if c == 1:
        pixels = pixels.expand(n, 3, h, w)
    grid = torch.full((3, ncol * (h + pad) + pad, nrow * (w + pad) + pad), 128, dtype=torch.uint8)
    for i in range(n):
        r, q = divmod(i, nrow)
        top, left = pad + r * (h + pad), pad + q * (w + pad)
        grid[:, top : top + h, left : left + w] = pixels[i, :3]
    grid = grid.permute(1, 2, 0).numpy()
    if scale > 1:
        grid = grid.repeat(scale, axis=0).repeat(scale, axis=1)
    return np.ascontiguousarray(grid)


def _figure_to_array(fig) -> np.ndarray:
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    plt.close(fig)
    return np.ascontiguousarray(rgba[..., :3])


def points_picture(fake: torch.Tensor, real: torch.Tensor, title: str = "",
                   centers: torch.Tensor | None = None) -> np.ndarray:
    """2-D: scatter of real vs generated points. 1-D: overlaid histograms."""
    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    fake, real = fake.float().numpy(), real.float().numpy()
    if fake.shape[1] == 1:
        lo = min(real.min(), fake.min())
        hi = max(real.max(), fake.max())
        bins = np.linspace(lo, hi, 60)
        ax.hist(real[:, 0], bins=bins, alpha=0.5, density=True, label="real")
        ax.hist(fake[:, 0], bins=bins, alpha=0.5, density=True, label="generated")
    else:
        ax.scatter(real[:, 0], real[:, 1], s=4, alpha=0.4, c="tab:blue", label="real")
        ax.scatter(fake[:, 0], fake[:, 1], s=4, alpha=0.4, c="tab:red", label="generated")
        if centers is not None:
            ax.scatter(centers[:, 0], centers[:, 1], s=60, marker="x", c="k", label="modes")
        ax.set_aspect("equal", adjustable="datalim")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(title)
    fig.subplots_adjust(left=0.11, right=0.97, bottom=0.07, top=0.93)  # fixed margins: a layout pass costs a draw
    return _figure_to_array(fig)


def samples_picture(fake: torch.Tensor, real: torch.Tensor, spec: DataSpec, title: str = "",
                    centers: torch.Tensor | None = None) -> np.ndarray:
    if spec.is_image:
        side = spec.shape[-1]
        return image_grid(fake[:64], nrow=8, scale=max(1, 96 // side))
    return points_picture(fake, real, title, centers)


def class_rows(n_classes: int, per_row: int = 10, max_rows: int = 20) -> torch.Tensor:
    """The labels of a picture with one row per class (the first ``max_rows`` classes), ``per_row`` each."""
    return torch.arange(min(n_classes, max_rows)).repeat_interleave(per_row)


def class_grid(fake: torch.Tensor, spec: DataSpec, per_row: int = 10) -> np.ndarray:
    """Samples drawn in :func:`class_rows` order as a grid: row c holds class c."""
    return image_grid(fake, nrow=per_row, scale=max(1, 96 // spec.shape[-1]))


def series(history: Sequence[dict[str, float]], name: str) -> tuple[list[float], list[float]]:
    """(iterations, values) of ``name`` over the rows that carry it: a series drawn through them has no gap where
    another kind of row (an evaluation's) sits between two of its own."""
    points = [(row["iteration"], row[name]) for row in history if name in row]
    return [x for x, _ in points], [y for _, y in points]


def curves_picture(history: Sequence[dict[str, float]], groups: dict[str, Sequence[str]]) -> np.ndarray:
    """One panel per group of metric names, x = generator iteration. Each series is drawn through the rows that
    carry it (an evaluation row between two training rows has no training values: no gap there)."""
    fig, axes = plt.subplots(len(groups), 1, figsize=(7, 2.6 * len(groups)), dpi=100, squeeze=False)
    for ax, (title, names) in zip(axes[:, 0], groups.items()):
        for name in names:
            xs, ys = series(history, name)
            if any(not math.isnan(y) for y in ys):
                ax.plot(xs, ys, label=name.split("/")[-1])
        ax.set_title(title)
        ax.set_xlabel("generator iteration")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    height = 2.6 * len(groups)  # fixed margins in inches: a layout pass costs a draw
    fig.subplots_adjust(left=0.1, right=0.97, bottom=0.5 / height, top=1 - 0.35 / height, hspace=0.65)
    return _figure_to_array(fig)


def _to_full_size(x: torch.Tensor, side: int) -> torch.Tensor:
    while x.shape[-1] < side:
        x = up(x)
    return x


def _chain_pixels(x: torch.Tensor) -> np.ndarray:
    """(C, H, W) in [-1, 1] -> an array imshow draws in [0, 1]."""
    x = ((x.clamp(-1, 1) + 1) / 2).numpy()
    return x[0] if x.shape[0] == 1 else np.transpose(x[:3], (1, 2, 0))


def chain_picture(images: list[torch.Tensor], title: str = "") -> np.ndarray:
    """LAPGAN's sampling procedure (Denton 2015, Fig. 1), ``images`` = [I_K (N, C, s, s), …, I_0 (N, C, S, S)]: one row
    per sample, coarse to fine: Ĩ_K, then for each finer level the residual h̃_k the level's generator added and the
    image Ĩ_k = up(Ĩ_{k+1}) + h̃_k, every panel upsampled (nearest) to the full size. Residuals are shown on a
    grey = 0 scale, stretched to ±(the column's largest |h|), printed in the title."""
    residuals = chain_residuals(images)  # [h_{K−1}, …, h_0]
    levels, side, n = len(residuals), images[-1].shape[-1], images[0].shape[0]
    columns: list[tuple[str, torch.Tensor]] = [(f"I{levels} ({images[0].shape[-1]} px)", images[0])]
    for j, (h, image) in enumerate(zip(residuals, images[1:])):
        k = levels - 1 - j
        scale = float(h.abs().max().clamp_min(1e-8))
        columns += [(f"h{k} (±{scale:.2f})", h / scale), (f"I{k} ({image.shape[-1]} px)", image)]
    fig, axes = plt.subplots(n, len(columns), figsize=(1.3 * len(columns), 1.3 * n + 0.4), dpi=100,
                             squeeze=False)
    for c, (name, stack) in enumerate(columns):
        stack = _to_full_size(stack, side)
        for r in range(n):
            ax = axes[r, c]
            ax.imshow(_chain_pixels(stack[r]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[0, c].set_title(name, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _figure_to_array(fig)


def save_png(image: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    plt.imsave(path, image)
    return path
