"""How a run ends: training, then the final samples and the evaluation, or — when it stops early — a
metrics.json that says why (diverged, a rank that died or stalled, SIGTERM) beside intact checkpoints.

Every stop is recorded the same way (:func:`record_stop`): ``status``, ``reason``, the history so far and
the last good checkpoint, which ``resume=<run folder>`` continues exactly.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig

from gan_lab import filters as sample_filters
from gan_lab import watchdog
from gan_lab.callbacks.checkpoint import CheckpointWriteError
from gan_lab.data import GANDataModule, Source
from gan_lab.distributed import Ranks, is_collective_error
from gan_lab.launch import Callbacks
from gan_lab.measure import Drawn, default_samples, draw, evaluate_system
from gan_lab.metrics.registry import curve_groups
from gan_lab.report import write_report
from gan_lab.resume import latest_good
from gan_lab.run_folder import write_summary
from gan_lab.settings import Settings
from gan_lab.systems.gan import GAN, Diverged, StopRequested
from gan_lab.threads import ThreadBudget
from gan_lab.viz import curves_picture, points_picture, save_png
from gan_lab.watchdog import PeerFailed, RankFailure

log = logging.getLogger("gan_lab")

CURVES = curve_groups()  # losses.png's panels: the registry's curve groups, as the run page draws them
SIGTERM_STATUS = 128 + signal.SIGTERM  # what a shell reports for a process ended by SIGTERM
INTERRUPT_STATUS = 128 + signal.SIGINT  # ... and by Ctrl-C


class Stopped(RuntimeError):
    """The run was asked to stop (SIGTERM: a scheduler's time limit or preemption, ``kill``)."""

    def __init__(self, reason: str, rank: int = 0):
        self.reason, self.rank = reason, rank
        super().__init__(reason)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C: the run stopped where it was; metrics.json says so, and the checkpoints on disk are untouched. A
    KeyboardInterrupt still, so that it stops a whole sweep."""

    def __init__(self, reason: str, rank: int = 0):
        self.reason, self.rank = reason, rank
        super().__init__(reason)


@dataclass
class Run:
    """One run as it trains and ends: its config and typed settings, folder, system, data, trainer, callbacks and
    loggers."""

    cfg: DictConfig
    settings: Settings
    run_dir: Path
    system: GAN
    source: Source
    data: GANDataModule
    trainer: L.Trainer
    callbacks: Callbacks
    loggers: list
    threads: ThreadBudget | None = None  # CPU threads per process (gan_lab/threads.py), recorded in metrics.json

    @property
    def inception(self) -> dict[str, Any]:
        return inception_options(self.cfg)


def fit(run: Run) -> dict[str, Any]:
    """Train, then finish the run; a run that stops early is recorded as what stopped it (:func:`stopped_early`)."""
    multi = run.trainer.world_size > 1
    with watchdog.monitored(run.run_dir, run.trainer.global_rank) if multi else nullcontext():
        try:
            run.trainer.fit(run.system, datamodule=run.data)
            # the training seconds of every session of the run (a resumed run's earlier ones from its checkpoint)
            summary = finish(run, run.system.clock.seconds(), Ranks.current())
        except BaseException as err:
            _finish_loggers(run.loggers, "failed")
            return stopped_early(run, err)
    _finish_loggers(run.loggers, "success")
    return summary


def finish(run: Run, wall: float, ranks: Ranks) -> dict[str, Any]:
    """After training, on every rank together: the final samples and the end-of-run evaluation (each rank
    draws its share with rank 0's weights and buffers, which the checkpoint holds); rank 0 writes the run
    folder and returns the summary, the other ranks an empty dict."""
    with watchdog.phase("writing the final samples and evaluating"):
        ranks.broadcast_state(run.system, "buffers")
        summary, fake = finalize(run.cfg, run.run_dir, run.system, run.source, wall, run.callbacks.sync_check.result,
                                 run.callbacks.extra, ranks, run.threads, run.callbacks.best.record())
        if run.settings.eval.at_end:
            summary = _evaluate_at_end(run, fake, summary, ranks)
        filters = sample_filters.Filters.of(run.settings.eval)
        if filters.chosen and ranks.world == 1:
            summary = _measure_filters(run, filters) or summary
        elif filters.chosen and ranks.is_main:  # a device count only known at run time: refused too late
            for name in filters.chosen:
                summary = _not_measured(name, run.run_dir, f"not measured with {ranks.world} processes; run python "
                                                           f"-m gan_lab.evaluate run={run.run_dir} {filters.flags}")
    if watchdog.current() is not None:
        watchdog.current().quiet = True  # the ranks are done meeting; a child exiting now is no failure
    return summary if ranks.is_main else {}


def stopped_early(run: Run, err: BaseException) -> dict:
    """Record why the run stopped before its end: the divergence guard (returns the diverged summary; exit
    3), SIGTERM (raises :class:`Stopped`; exit 143), a dead or stalled rank (raises :class:`RankFailure`;
    exit 4). Anything else is re-raised once this rank's status file says so."""
    monitor = watchdog.current()
    if monitor is not None:  # this rank handles its stop: a child exiting now is expected, no interrupt
        monitor.quiet = True
    run_dir, system, trainer = run.run_dir, run.system, run.trainer
    if isinstance(err, Diverged):
        return record_divergence(run_dir, system, err) if trainer.is_global_zero else {}
    if isinstance(err, (StopRequested, SIGTERMException)):
        raise record_sigterm(run_dir, system, trainer) from None
    if isinstance(err, CheckpointWriteError):  # a full disk, a read-only folder: say so, keep what is on disk
        if trainer.is_global_zero:
            try:
                record_stop(run_dir, system, "failed", str(err))
            except OSError:  # the same disk may refuse metrics.json too
                pass
        raise err
    if isinstance(err, KeyboardInterrupt) or (isinstance(err, SystemExit) and trainer.interrupted):
        # Ctrl-C (Lightning turns it into SystemExit after its own shutdown)
        reason = f"interrupted (Ctrl-C) at iteration {system.iteration}"
        if not trainer.is_global_zero:
            raise Interrupted(reason, trainer.global_rank) from None
        raise Interrupted(f"{reason}; {kept(record_stop(run_dir, system, 'stopped', reason))}") from None
    if monitor is not None and (isinstance(err, PeerFailed) or is_collective_error(err)):
        raise rank_failure(run, err) from None
    if monitor is not None:
        monitor.stop("failed", f"{type(err).__name__}: {str(err).strip()[:300]}")
    raise err


def rank_failure(run: Run, err: BaseException) -> RankFailure:
    """A rank died or stalled: name it and what it was doing, stop the other ranks, and (rank 0) record the
    failure in metrics.json and the report; the checkpoints on disk are untouched and resumable."""
    monitor = watchdog.current()
    run_dir, system, trainer = run.run_dir, run.system, run.trainer
    reason = watchdog.diagnose(run_dir, trainer.world_size, trainer.global_rank,
                               interrupted=isinstance(err, PeerFailed),
                               timeout_minutes=run.settings.trainer.timeout_minutes)
    if not trainer.is_global_zero:  # rank 0 reports; this rank leaves its account in its status file
        monitor.stop("failed", f"{reason} (seen from rank {trainer.global_rank}: {str(err).splitlines()[0][:200]})")
        return RankFailure(reason, system.iteration, rank=trainer.global_rank)
    watchdog.kill_children()
    summary = record_stop(run_dir, system, "failed", reason)
    monitor.stop("failed", reason)
    return RankFailure(f"{reason}; the run stopped at iteration {system.iteration}; {kept(summary)}", system.iteration)


def finalize(cfg: DictConfig, run_dir: Path, system: GAN, source: Source, wall: float,
             ddp: dict | None, callbacks: list = (), ranks: Ranks | None = None,
             threads: ThreadBudget | None = None, best: dict | None = None) -> tuple[dict | None, Drawn]:
    """Final samples (.npy), pictures, history and metrics.json, all in the run folder (rank 0). Every
    rank generates its share of the samples; they are gathered once and written once."""

    ranks = ranks or Ranks()
    spec = source.spec
    n = cfg.output.final_samples or (256 if spec.is_image else 2500)
    g = torch.Generator().manual_seed(cfg.seed + 777)
    local, labels = draw(system, n, g, ranks)
    fake = ranks.gather(local)  # on rank 0; None on the others
    drawn = Drawn(fake, local, labels, n)
    if not ranks.is_main:
        return None, drawn
    np.save(run_dir / "samples.npy", fake.numpy())
    if labels is not None:  # class-conditional: the class each sample was drawn for
        np.save(run_dir / "samples_labels.npy", labels.numpy())

    metrics = write_history(run_dir, system.history)
    if not spec.is_image and spec.shape == (2,):
        real = source.sample(n, g)
        save_png(points_picture(fake, real, f"{spec.name}: {n} real vs generated",
                                getattr(source, "centers", None)), run_dir / "scatter.png")
    for callback in callbacks:  # analysis callbacks contribute their own numbers
        metrics.update(getattr(callback, "summary", None) or {})

    if system.history:
        save_png(curves_picture(system.history, CURVES), run_dir / "losses.png")

    summary = {"status": "finished", "iterations": system.iteration, "d_updates": system.d_updates,
               "k": cfg.train.k, "wall_time_s": round(wall, 2),
               "iterations_per_s": round(system.iteration / max(wall, 1e-9), 3),
               "metrics": metrics, "protocols": {}, "run_dir": str(run_dir)}
    if ddp is not None and ddp["world_size"] > 1:
        summary["ddp"] = ddp
    if threads is not None:
        summary["threads"] = {"per_process": threads.threads, "why": threads.reason}
    if best is not None:  # eval.best: the checkpoint of the best in-training measurement
        summary["best"] = best
    write_summary(run_dir, summary)
    return summary, drawn


def _evaluate_at_end(run: Run, drawn: Drawn, summary: dict | None, ranks: Ranks) -> dict | None:
    """The evaluation metrics of the final generator, into metrics.json and every logger; when the
    sizes agree it measures exactly the samples saved in samples.npy."""

    n = run.settings.eval.samples or default_samples(run.source.spec)
    before = summary["metrics"] if ranks.is_main else {}
    reuse = drawn if drawn.n == n else None
    summary = evaluate_system(run.system, run.source, run.run_dir, n, run.cfg.seed, drawn=reuse, ranks=ranks,
                              **run.inception)
    if not ranks.is_main:
        return None
    new = {k: v for k, v in summary["metrics"].items() if k not in before and isinstance(v, (int, float))}
    for logger in run.loggers:
        logger.log_metrics(new, step=run.system.iteration)
    share = summary["evaluation"]["seconds"] / max(summary["wall_time_s"], 1e-9)
    log.info("evaluation took %.1f s (%.0f%% of training)", summary["evaluation"]["seconds"], 100 * share)
    return summary


def _measure_filters(run: Run, filters: sample_filters.Filters) -> dict | None:
    """The final G through each chosen post-hoc sampler (gan_lab/filters.py), measured apart: <name>/* in
    metrics.json and every logger; a failed one says why in metrics.json and the log."""
    n = run.settings.eval.samples or default_samples(run.source.spec)
    summary, failures = sample_filters.measure_all(run.system, run.source, run.run_dir, filters, n, run.cfg.seed,
                                                   run.inception)
    loggers, system = run.loggers, run.system
    for name, reason in failures.items():
        log.warning("gan_lab: %s: %s", sample_filters.TITLES[name], reason)
    measured = [name for name in filters.chosen if name not in failures]
    new = {k: v for k, v in (summary or {}).get("metrics", {}).items()
           if k.split("/")[0] in measured and isinstance(v, (int, float))}
    for logger in loggers:
        logger.log_metrics(new, step=system.iteration)
    for name in measured:
        log.info("%s: %d samples accepted at rate %.3f in %.1f s", sample_filters.TITLES[name], n,
                 new[f"{name}/acceptance_rate"], summary[name]["seconds"])
    return summary


def _not_measured(name: str, run_dir: Path, reason: str) -> dict:
    log.warning("gan_lab: %s: %s", sample_filters.TITLES[name], reason)
    return sample_filters.not_measured(name, run_dir, reason)


def inception_options(cfg: DictConfig) -> dict[str, Any]:
    """eval.inception settings; ``auto`` measures with Inception only on a GPU run (it is slow on a CPU)."""
    return {"inception": str(cfg.eval.inception).lower(), "inception_weights": cfg.eval.inception_weights,
            "allow_cpu_inception": cfg.trainer.get("accelerator") not in (None, "cpu")}


def write_history(run_dir: Path, history: list[dict]) -> dict[str, float]:
    """history.jsonl (every logged row); returns the last value of every series (training rows and
    in-training measurement rows interleave)."""
    with open(run_dir / "history.jsonl", "w") as f:
        for row in history:
            f.write(json.dumps(row) + "\n")
    return {k: v for row in history for k, v in row.items() if k != "iteration"}


def _finish_loggers(loggers: list, status: str) -> None:
    from lightning.pytorch.loggers import WandbLogger

    for logger in loggers:
        logger.finalize(status)
        if isinstance(logger, WandbLogger):
            import wandb

            wandb.finish()  # else the next sweep job logs into this run


def record_stop(run_dir: Path, system: GAN, status: str, reason: str, iteration: int | None = None) -> dict:
    """A run that stopped before its end: metrics.json says why (``status``, ``reason``) with the history so
    far and the last good checkpoint, and the report shows it; the checkpoints on disk are untouched."""
    last = latest_good(run_dir)
    summary = {"status": status, "reason": reason,
               "iterations": system.iteration if iteration is None else iteration, "k": system.k,
               "wall_time_s": round(system.clock.seconds(), 2), "metrics": write_history(run_dir, system.history),
               "protocols": {}, "run_dir": str(run_dir),
               "last_good_checkpoint": {"path": str(last[1]), "iteration": int(last[0]["gan_lab"]["iteration"])}
               if last else None}
    write_summary(run_dir, summary)
    write_report(run_dir)
    return summary


def kept(summary: dict) -> str:
    """What the user can continue from, in words."""
    good = summary["last_good_checkpoint"]
    if good is None:
        return "no checkpoint was written yet"
    return (f"last good checkpoint: {good['path']} (iteration {good['iteration']}); "
            f"continue with resume={summary['run_dir']}")


def record_divergence(run_dir: Path, system: GAN, err: Diverged) -> dict:
    """The run stopped on non-finite numbers (the divergence guard): no checkpoint was written after them."""
    summary = record_stop(run_dir, system, "diverged", err.reason, err.iteration)
    print(f"gan_lab: report {run_dir / 'report.html'}")
    print(f"gan_lab: error: diverged by iteration {err.iteration}: {err.reason}; {kept(summary)} (the same "
          f"settings may diverge there again: a new run with, e.g., lower optimizer.d.lr/optimizer.g.lr or a "
          f"regularizer changes the outcome); run folder {run_dir}", file=sys.stderr)
    return summary


def record_sigterm(run_dir: Path, system: GAN, trainer: L.Trainer) -> Stopped:
    """SIGTERM: the ranks agreed on an iteration (at a logged row; one process at once), checkpointed it
    and stopped."""
    reason = f"stopped by SIGTERM at iteration {system.iteration}"
    if not trainer.is_global_zero:
        return Stopped(reason, trainer.global_rank)
    summary = record_stop(run_dir, system, "stopped", reason)
    return Stopped(f"{reason}; {kept(summary)}")
