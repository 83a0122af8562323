"""Faults the tests inject into real runs, as Lightning callbacks given on the command line
(``+callbacks.f._target_=tests.faults.StallRank +callbacks.f.rank=1 …``): the package has no fault hooks.

Each fires once per run folder (a marker file), so re-running or resuming the same command goes through.
"""

from __future__ import annotations

import os
import signal
import time
from datetime import timedelta
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
        marker = self.marker(trainer)
        if marker.exists():
            return False
        marker.touch()
        return True

    def marker(self, trainer) -> Path:
        """The file that says the fault fired in this run folder (touched just before it acts)."""
        return Path(trainer.default_root_dir) / f".fault_{type(self).__name__}_rank{self.rank}"


class StallRank(_Once):
    """Rank ``rank`` stops making progress after iteration ``at``, as a hung rank does: it sleeps until it is
    killed (or interrupted: a signal handler's exception unwinds the sleep).

    ``detect_s``: the other ranks' collectives time out ``detect_s`` seconds into the stall instead of after
    ``trainer.timeout_minutes``. At the end of iteration ``at`` each of them waits for the stalled rank's marker
    (touched just before it stops), then shortens its process group's time-out, before its next collective
    (Lightning's SIGTERM broadcast at the next batch, whose time-out it swallows; then D's gradient all-reduce
    fails at once). The run keeps a time-out long enough for the waits of healthy work on a loaded machine (a
    child rank starting up, rank 0 measuring alone), the stall is found in seconds, and only a time-out ends the
    wait. None: the configured time-out finds it.
    """

    def __init__(self, rank: int = 0, at: int = 3, seed: int | None = None, detect_s: float | None = None):
        super().__init__(rank, at, seed)
        self.detect_s = detect_s
        self._stalls_now = False

    def on_train_start(self, trainer, module) -> None:
        # The fault fires in this run unless an earlier run in this folder fired it (a resumed run goes through).
        self._stalls_now = ((self.seed is None or module.seed == self.seed) and self.detect_s is not None
                            and not self.marker(trainer).exists())

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if trainer.global_rank == self.rank:
            if self.due(trainer, module):
                while True:  # never resumes
                    time.sleep(3600)
        elif self._stalls_now and module.iteration == self.at:
            self._stalls_now = False
            deadline = time.monotonic() + 600
            while not self.marker(trainer).exists():  # the stalled rank finishes the iteration's callbacks before
                if time.monotonic() > deadline:
                    return  # it never stalled: the configured time-out stays
                time.sleep(0.05)
            from torch.distributed.distributed_c10d import _set_pg_timeout

            _set_pg_timeout(timedelta(seconds=self.detect_s))


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
