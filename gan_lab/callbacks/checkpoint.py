"""Checkpoints every N generator iterations and at the end, written atomically (temp file + rename); and the
checkpoint of the best in-training measurement (``eval.best``).

``checkpoints/last.ckpt`` is always a complete file: it is written under a temporary name and renamed
over the old one, whose previous content is kept as ``checkpoints/prev.ckpt``. A kill at any moment
therefore leaves at least one complete checkpoint, and a corrupt ``last.ckpt`` (a disk fault, a copy
cut short) falls back to ``prev.ckpt`` on resume (:mod:`gan_lab.resume`). Non-finite weights are never
written: the divergence guard stops the run first, so the last checkpoint on disk is a good one.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

import lightning as L

from gan_lab.metrics import registry
from gan_lab.systems.statistics import StopRequested

log = logging.getLogger("gan_lab")


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (a full disk, a read-only folder); the previous one is intact."""


def write(trainer: L.Trainer, module, path: Path, iteration: int, kept: str, previous: Path | None = None) -> None:
    """The trainer's checkpoint to ``path``, atomically: a temporary file renamed over it (the old file moved to
    ``previous`` first, when given). Every rank calls it; rank 0 writes. Diverged weights are never written."""
    module.check_finite()  # never overwrite a good checkpoint with diverged weights
    tmp = path.parent / f".{path.name}.tmp{os.getpid()}"
    try:
        if trainer.is_global_zero:
            path.parent.mkdir(parents=True, exist_ok=True)
        trainer.save_checkpoint(tmp, weights_only=False)
        if trainer.is_global_zero:
            if previous is not None and path.exists():
                os.replace(path, previous)
            os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)  # no partial file is left behind
        raise CheckpointWriteError(f"could not write the checkpoint of iteration {iteration} to {path.parent} "
                                   f"({err.strerror or err}); {kept}") from None


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
        kept = f"the checkpoint of iteration {self.saved_at} is intact" if self.saved_at is not None else \
            "no earlier checkpoint of this run exists"
        write(trainer, module, self.last, iteration, kept, previous=self.prev)
        self.saved_at = iteration

    def on_train_start(self, trainer, module) -> None:
        if trainer.is_global_zero and self.dir.is_dir():  # partial files of a process that died writing
            for stale in self.dir.glob(".*.ckpt.tmp*"):
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


BETTER = {registry.Direction.LOWER: lambda a, b: a < b, registry.Direction.HIGHER: lambda a, b: a > b}


def best_metric(keys, wanted: str) -> str | None:
    """The metric ``eval.best`` follows among an in-training measurement's ``keys``: ``wanted`` itself, or for
    ``auto`` the first headline measurement with a direction (FID where the run has one); None if there is none."""
    if wanted != "auto":
        return wanted if wanted in keys else None
    return next((k for k in registry.headline(keys) if registry.followable(k)), None)


def measurement_row(history: list[dict]) -> dict | None:
    """The latest row of the history that holds an in-training measurement."""
    return next((r for r in reversed(history) if any(registry.is_measurement(k) for k in r)), None)


def best_so_far(history: list[dict], key: str) -> tuple[float, int] | None:
    """(value, iteration) of the best finite ``key`` in the rows logged so far (a resumed run's included)."""
    better = BETTER[registry.direction(key)]
    best = None
    for row in history:
        value = row.get(key)
        if isinstance(value, (int, float)) and math.isfinite(value) and (best is None or better(value, best[0])):
            best = (float(value), int(row["iteration"]))
    return best


class BestCheckpoint(L.Callback):
    """``eval.best``: after each in-training measurement that improves on every earlier one (strictly), the whole
    checkpoint again as ``checkpoints/best.ckpt`` (atomically; ``python -m gan_lab.sample``/``evaluate`` read it
    with ``checkpoint=best``), then ``best.json`` beside it says which metric, value and iteration it holds (what
    metrics.json's ``best`` reports). It acts after the measurement, on every rank together (they all logged the
    same row). The best so far is read from the run's rows, so a resumed run goes on comparing with its earlier
    ones; a best.ckpt the restored rows do not account for (a different metric followed now, or one written after
    the checkpoint the run resumed from) is dropped at the start."""

    FILE, RECORD = "best.ckpt", "best.json"

    def __init__(self, run_dir: Path, every: int, wanted: str | None):  # wanted: checked in gan_lab/settings.py
        self.path = Path(run_dir) / "checkpoints" / self.FILE
        self.record_path = self.path.with_name(self.RECORD)
        self.every, self.wanted = every, wanted
        self.warned = False

    def key(self, history: list[dict]) -> str | None:
        """The metric followed: ``eval.best``'s, read off the latest in-training measurement."""
        row = measurement_row(history)
        return None if row is None or not self.wanted else best_metric(row, self.wanted)

    def kept(self) -> dict | None:
        """What best.ckpt holds, from best.json (None without both files)."""
        if not (self.path.is_file() and self.record_path.is_file()):
            return None
        try:
            return json.loads(self.record_path.read_text())
        except (OSError, ValueError):
            return None

    def on_train_start(self, trainer, module) -> None:
        if not (self.wanted and trainer.is_global_zero and (self.path.exists() or self.record_path.exists())):
            return
        key = self.key(module.history)
        found = best_so_far(module.history, key) if key else None
        expected = None if found is None else {"metric": key, "value": found[0], "iteration": found[1]}
        kept = self.kept()
        if kept is not None and expected is not None and {k: kept.get(k) for k in expected} == expected:
            return
        self.path.unlink(missing_ok=True)
        self.record_path.unlink(missing_ok=True)
        log.warning("dropped checkpoints/%s (%s): the rows this run resumed with do not make it their best%s",
                    self.FILE, f"iteration {kept.get('iteration')}, {kept.get('metric')}" if kept else "no best.json",
                    "" if expected is None else f" ({expected['metric']} {expected['value']:.4g} at iteration "
                                                f"{expected['iteration']}, whose checkpoint is gone)")

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if not (self.wanted and self.every and module.iteration % self.every == 0):
            return
        row = measurement_row(module.history)
        if row is None or row["iteration"] != module.iteration:
            return
        key = best_metric(row, self.wanted)
        if key is None:
            if not self.warned:
                log.warning("eval.best=%s: the in-training measurement does not report it (it reports %s); no "
                            "best.ckpt is kept", self.wanted, ", ".join(k for k in row if registry.is_measurement(k)))
                self.warned = True
            return
        value = row[key]
        if not (isinstance(value, (int, float)) and math.isfinite(value)):
            return
        earlier = best_so_far([r for r in module.history if r is not row], key)
        if earlier is not None and not BETTER[registry.direction(key)](value, earlier[0]):
            return
        kept = f"the best.ckpt of iteration {earlier[1]} is intact" if earlier else "no best.ckpt was kept before"
        if trainer.is_global_zero:  # the file is about to change: no record may describe the old one meanwhile
            self.record_path.unlink(missing_ok=True)
        write(trainer, module, self.path, module.iteration, kept)
        if trainer.is_global_zero:
            tmp = self.record_path.with_suffix(".json.tmp")
            tmp.write_text(json.dumps({"metric": key, "value": float(value), "iteration": module.iteration}))
            os.replace(tmp, self.record_path)
        log.info("best %s so far: %.4g at iteration %d (%s)", key, value, module.iteration, self.path)

    def record(self) -> dict | None:
        """metrics.json's ``best`` entry: what best.ckpt holds (best.json), with the file's place in the folder."""
        kept = self.kept() if self.wanted else None
        return None if kept is None else {**kept, "checkpoint": f"checkpoints/{self.FILE}"}
