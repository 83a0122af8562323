"""Faults the tests inject into real runs, as Lightning callbacks given on the command line
(``+callbacks.f._target_=tests.faults.StallRank +callbacks.f.rank=1 …``): the package has no fault hooks.

Each fires once per run folder (a marker file), so re-running or resuming the same command goes through.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import lightning as L
import torch


class _Once(L.Callback):
    """A fault on rank ``rank`` at iteration ``at`` (in the run whose seed is ``seed``, if given)."""

    def __init__(self, rank: int = 0, at: int = 3, seed: int | None = None):
        self.rank, self.at, self.seed = rank, at, seed

    def due(self, trainer, module, iteration: int | None = None) -> bool:
        if trainer.global_rank != self.rank or (module.iteration if iteration is None else iteration) != self.at:
            return False
        if self.seed is not None and module.seed != self.seed:
            return False
        marker = Path(trainer.default_root_dir) / f".fault_{type(self).__name__}_rank{self.rank}"
        if marker.exists():
            return False
        marker.touch()
        return True


class StallRank(_Once):
    """Rank ``rank`` stops making progress after iteration ``at`` (sleeps ``seconds``), as a hung rank does."""

    def __init__(self, rank: int = 0, at: int = 3, seed: int | None = None, seconds: float = 600):
        super().__init__(rank, at, seed)
        self.seconds = seconds

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if self.due(trainer, module):
            time.sleep(self.seconds)


class KillRank(_Once):
    """Rank ``rank`` dies (SIGKILL, as the OOM killer does) after iteration ``at``."""

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if self.due(trainer, module):
            os.kill(os.getpid(), signal.SIGKILL)


class PoisonRank(_Once):
    """Rank ``rank``'s discriminator gets a NaN weight before iteration ``at`` + 1: its loss is NaN there,
    and the all-reduced gradients carry the NaN to every rank."""

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if self.due(trainer, module):
            with torch.no_grad():
                next(module.discriminator.parameters()).view(-1)[0] = float("nan")


class KillInDStep(_Once):
    """SIGKILL inside D's ``step``-th optimiser step of iteration ``at`` (1-based), as a crash mid-update."""

    def __init__(self, rank: int = 0, at: int = 6, seed: int | None = None, step: int = 2):
        super().__init__(rank, at, seed)
        self.step, self._seen = step, 0

    def on_before_optimizer_step(self, trainer, module, optimizer) -> None:
        d_optimizer = module.optimizers()[0].optimizer
        if module.iteration + 1 != self.at or getattr(optimizer, "optimizer", optimizer) is not d_optimizer:
            return
        self._seen += 1
        if self._seen == self.step and self.due(trainer, module, module.iteration + 1):
            os.kill(os.getpid(), signal.SIGKILL)


class KillInCheckpoint(_Once):
    """SIGKILL while the checkpoint of iteration ``at`` is being written: its temporary file is left half
    written (as the lab names it), and ``last.ckpt`` must still be the previous, complete one."""

    def on_save_checkpoint(self, trainer, module, checkpoint) -> None:
        if self.due(trainer, module):
            folder = Path(trainer.default_root_dir) / "checkpoints"
            last = folder / "last.ckpt"
            half = last.read_bytes()[: last.stat().st_size // 2] if last.exists() else b"\0" * 1024
            (folder / f".last.ckpt.tmp{os.getpid()}").write_bytes(half)
            os.kill(os.getpid(), signal.SIGKILL)
