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
    def __init__(self, rank: int = 1, at: int = 3, seed: int | None = None):
        self.rank, self.at, self.seed = rank, at, seed

    def due(self, trainer, module) -> bool:
        if trainer.global_rank != self.rank or module.iteration != self.at:
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

    def __init__(self, rank: int = 1, at: int = 3, seed: int | None = None, seconds: float = 600):
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
