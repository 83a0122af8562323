"""Checkpoints every N generator iterations and at the end, written atomically (temp file + rename).

``checkpoints/last.ckpt`` is always a complete file: a kill mid-write leaves the previous one.
"""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L


class IterationCheckpoint(L.Callback):
    def __init__(self, run_dir: Path, every: int):
        self.dir = Path(run_dir) / "checkpoints"
        self.every = every
        self.saved_at: int | None = None  # iteration of the newest checkpoint on disk

    @property
    def last(self) -> Path:
        return self.dir / "last.ckpt"

    def save(self, trainer: L.Trainer, iteration: int) -> None:
        tmp = self.dir / f".last.ckpt.tmp{os.getpid()}"
        if trainer.is_global_zero:
            self.dir.mkdir(parents=True, exist_ok=True)
        trainer.save_checkpoint(tmp, weights_only=False)  # every rank calls it; rank 0 writes
        if trainer.is_global_zero:
            os.replace(tmp, self.last)
        self.saved_at = iteration

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if self.every and module.iteration % self.every == 0:
            self.save(trainer, module.iteration)

    def on_train_end(self, trainer, module) -> None:
        if self.saved_at != module.iteration:
            self.save(trainer, module.iteration)
