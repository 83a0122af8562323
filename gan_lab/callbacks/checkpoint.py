"""Checkpoints every N generator iterations and at the end, written atomically (temp file + rename).

``checkpoints/last.ckpt`` is always a complete file: it is written under a temporary name and renamed
over the old one, whose previous content is kept as ``checkpoints/prev.ckpt``. A kill at any moment
therefore leaves at least one complete checkpoint, and a corrupt ``last.ckpt`` (a disk fault, a copy
cut short) falls back to ``prev.ckpt`` on resume (:mod:`gan_lab.resume`). Non-finite weights are never
written: the divergence guard stops the run first, so the last checkpoint on disk is a good one.
"""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L

from gan_lab.systems.statistics import StopRequested


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (a full disk, a read-only folder); the previous one is intact."""


class IterationCheckpoint(L.Callback):
    def __init__(self, run_dir: Path, every: int):
        self.dir = Path(run_dir) / "checkpoints"
        self.every = every
        self.saved_at: int | None = None  # iteration of the newest checkpoint on disk

    @property
    def last(self) -> Path:
        return self.dir / "last.ckpt"

    @property
    def prev(self) -> Path:
        return self.dir / "prev.ckpt"

    def save(self, trainer: L.Trainer, module, iteration: int) -> None:
        module.check_finite()  # never overwrite a good checkpoint with diverged weights
        tmp = self.dir / f".last.ckpt.tmp{os.getpid()}"
        try:
            if trainer.is_global_zero:
                self.dir.mkdir(parents=True, exist_ok=True)
            trainer.save_checkpoint(tmp, weights_only=False)  # every rank calls it; rank 0 writes
            if trainer.is_global_zero:
                if self.last.exists():
                    os.replace(self.last, self.prev)
                os.replace(tmp, self.last)
        except OSError as err:
            tmp.unlink(missing_ok=True)  # no partial file is left behind
            kept = f"the checkpoint of iteration {self.saved_at} is intact" if self.saved_at is not None else \
                "no earlier checkpoint of this run exists"
            raise CheckpointWriteError(f"could not write the checkpoint of iteration {iteration} to {self.dir} "
                                       f"({err.strerror or err}); {kept}") from None
        self.saved_at = iteration

    def on_train_start(self, trainer, module) -> None:
        if trainer.is_global_zero and self.dir.is_dir():  # partial files of a process that died writing
            for stale in self.dir.glob(".last.ckpt.tmp*"):
                stale.unlink(missing_ok=True)
        if self.saved_at is None and module.iteration:
            self.saved_at = module.iteration  # resumed: its checkpoint is on disk

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        stats = module.statistics
        if (self.every and module.iteration % self.every == 0) or stats.stop_now:
            self.save(trainer, module, module.iteration)
        if stats.stop_now:  # SIGTERM: every rank saved this iteration together and stops here
            raise StopRequested(f"stopped by {stats.stop_signal or 'SIGTERM'} at iteration {module.iteration}")

    def on_train_end(self, trainer, module) -> None:
        if self.saved_at != module.iteration:
            self.save(trainer, module, module.iteration)
