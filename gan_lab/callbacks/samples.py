"""Sample pictures every N generator iterations, from one fixed z so frames are comparable; a class-conditional
run's pictures hold one row per class, each column one z across the classes. At the end, the system's own
pictures too (``GAN.final_pictures``: LAPGAN's sampling chains)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch

from gan_lab.data.base import Source
from gan_lab.reporting import log_image
from gan_lab.viz import class_grid, class_rows, samples_picture, save_png


class SampleGrids(L.Callback):
    def __init__(self, source: Source, run_dir: Path, every: int, seed: int = 0, n: int | None = None):
        self.source, self.every = source, every
        self.dir = Path(run_dir) / "samples"
        spec = source.spec
        self.n = n or (64 if spec.is_image else 2500)
        g = torch.Generator().manual_seed(seed + 12345)
        self.real = source.sample(self.n, g)
        self.z: torch.Tensor | None = None
        self.labels: torch.Tensor | None = None  # a class-conditional run's: one row per class
        self._generator = g

    def picture(self, module, title: str):
        if module.conditional != "none" and self.source.spec.is_image:
            if self.z is None:
                labels = class_rows(module.n_classes)
                rows = int(labels.max()) + 1
                self.z = torch.randn(len(labels) // rows, module.z_dim, generator=self._generator).repeat(rows, 1)
                self.labels = labels
            return class_grid(module.generate(self.z, self.labels), self.source.spec)
        if self.z is None:
            self.z = torch.randn(self.n, module.z_dim, generator=self._generator)
        fake = module.generate(self.z)
        return samples_picture(fake, self.real, self.source.spec, title,
                               getattr(self.source, "centers", None))

    def write(self, trainer: L.Trainer, module, name: str) -> Path:
        image = self.picture(module, f"iteration {module.iteration}")
        log_image(trainer.loggers, "samples", image, module.iteration)
        return save_png(image, self.dir / f"{name}.png")

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if self.every and module.iteration % self.every == 0 and trainer.is_global_zero:
            self.write(trainer, module, f"iter_{module.iteration:06d}")

    def on_train_end(self, trainer, module) -> None:
        if trainer.is_global_zero:
            self.write(trainer, module, "final")
            for name, picture in module.final_pictures().items():
                log_image(trainer.loggers, name, picture, module.iteration)
                save_png(picture, self.dir.parent / f"{name}.png")
