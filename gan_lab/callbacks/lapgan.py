"""LAPGAN's sampling procedure as a picture (Denton 2015, Fig. 1): ``lapgan_chain.png`` in the run folder.

One row per sample, coarse to fine: Ĩ_K, then for each finer level the residual h̃_k the level's
generator added and the image Ĩ_k = up(Ĩ_{k+1}) + h̃_k, every panel upsampled (nearest) to the full size.
Residuals are shown on a grey = 0 scale, stretched to ±(the column's largest |h|), printed in the title.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import matplotlib.pyplot as plt
import numpy as np
import torch

from gan_lab.nets.lapgan import chain_residuals, up
from gan_lab.reporting import log_image
from gan_lab.viz import _figure_to_array, save_png


def _to_full_size(x: torch.Tensor, side: int) -> torch.Tensor:
    while x.shape[-1] < side:
        x = up(x)
    return x


def _pixels(x: torch.Tensor) -> np.ndarray:
    """(C, H, W) in [-1, 1] -> an array imshow draws in [0, 1]."""
    x = ((x.clamp(-1, 1) + 1) / 2).numpy()
    return x[0] if x.shape[0] == 1 else np.transpose(x[:3], (1, 2, 0))


def chain_picture(images: list[torch.Tensor], title: str = "") -> np.ndarray:
    """Picture of sampling chains ``images`` = [I_K (N, C, s, s), …, I_0 (N, C, S, S)]."""
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
            ax.imshow(_pixels(stack[r]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[0, c].set_title(name, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _figure_to_array(fig)


class LapganChainPlot(L.Callback):
    """At the end of training, draw ``n`` sampling chains from a fixed z into ``lapgan_chain.png``."""

    def __init__(self, n: int = 6, filename: str = "lapgan_chain.png"):
        self.n, self.filename = n, filename

    @torch.no_grad()
    def on_train_end(self, trainer, module) -> None:
        if not trainer.is_global_zero or not hasattr(module, "generate_chain"):
            return
        g = torch.Generator().manual_seed(module.seed + 4321)
        images = module.generate_chain(module.sample_z(self.n, generator=g).cpu())
        picture = chain_picture(images, f"LAPGAN sampling chain, iteration {module.iteration}: "
                                        "coarse to fine, I_k = up(I_k+1) + h_k")
        log_image(trainer.loggers, "lapgan_chain", picture, module.iteration)
        save_png(picture, Path(trainer.default_root_dir) / self.filename)
