"""The Lightning side of a run: its loggers, its callbacks on the lab's clock, and the trainer."""

from __future__ import annotations

import sys
from pathlib import Path

import lightning as L
import torch
from omegaconf import DictConfig

from gan_lab.callbacks import IterationCheckpoint, IterationProgressBar, ProgressLines, SampleGrids
from gan_lab.callbacks.checkpoint import BestCheckpoint
from gan_lab.callbacks.ddp_check import WeightSyncCheck
from gan_lab.callbacks.evaluation import PeriodicEvaluation
from gan_lab.compose import build
from gan_lab.distributed import resolve_strategy
from gan_lab.errors import ConfigError
from gan_lab.settings import Settings


def progress_every(t) -> int:
    """Iterations between progress lines: ``train.progress_every``, or (null) about 20 lines a run, on log rows."""
    if t.progress_every is not None:
        return t.progress_every
    return t.log_every * max(1, round(t.iterations / 20 / t.log_every))


def hydra_job() -> dict | None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None
    hc = HydraConfig.get()
    return {"multirun": hc.mode == RunMode.MULTIRUN, "sweep_dir": str(hc.sweep.dir),
            "overrides": hc.job.override_dirname}


def wandb_identity(node: DictConfig, run_dir: Path, job: dict | None) -> dict[str, str]:
    """wandb run name and group when the config leaves them null: one group per sweep (its folder,
    e.g. ``multirun/2026-11-22/18-45-20``), each job named by its overrides (else by its run folder)."""
    out = {}
    if node.get("name") is None:
        out["name"] = (job or {}).get("overrides") or run_dir.name
    if node.get("group") is None and job and job["multirun"]:
        out["group"] = "/".join(Path(job["sweep_dir"]).parts[-3:])
    return out


def build_loggers(cfg: DictConfig, run_dir: Path) -> list:
    loggers = []
    for node in (cfg.logger or {}).values():
        is_wandb = str(node.get("_target_", "")).endswith("WandbLogger")
        extra = wandb_identity(node, run_dir, hydra_job()) if is_wandb else {}
        loggers.append(build(node, save_dir=str(run_dir / "logs"), **extra))
    return loggers


class Callbacks:
    """The run's callbacks, in the order they act after each iteration: sample pictures, the DDP weight check, the
    in-training evaluation, the best checkpoint (after the measurement it follows), the checkpoint (last, so it holds
    everything done at its iteration, the measurement included: a run resumed from it logs the same rows as the run
    that was never stopped), then the user's."""

    def __init__(self, cfg: DictConfig, s: Settings, source, run_dir: Path, inception: dict):
        t = s.train
        self.samples = SampleGrids(source, run_dir, t.sample_every, cfg.seed)
        self.sync_check = WeightSyncCheck()
        self.evaluation = PeriodicEvaluation(source, s.eval.every, s.eval.every_samples, cfg.seed, inception)
        self.best = BestCheckpoint(run_dir, s.eval.every, s.eval.best)
        self.checkpoint = IterationCheckpoint(run_dir, t.checkpoint_every)
        self.extra = [build(node) for node in (cfg.get("callbacks") or {}).values()]

    def all(self) -> list[L.Callback]:
        return [self.samples, self.sync_check, self.evaluation, self.best, self.checkpoint, *self.extra]


def device_math(s: Settings) -> None:
    """On a GPU: TF32 as ``train.tf32`` says (convolutions and matmuls alike; PyTorch's own defaults differ between
    the two), and cuDNN's autotuner on (the lab's networks see one input shape per run) unless
    ``trainer.deterministic``. Feature extraction turns TF32 off for itself (gan_lab/metrics/features.py)."""
    if s.trainer.accelerator not in ("gpu", "cuda") or not torch.cuda.is_available():
        return
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = bool(s.train.tf32)
    torch.backends.cudnn.benchmark = not s.trainer.deterministic


def build_trainer(s: Settings, run_dir: Path, callbacks: list, loggers: list, threads: str = "") -> L.Trainer:
    """``threads``: the process's thread budget in words, for the first progress line (gan_lab/threads.py)."""
    tc = s.trainer
    if tc.accelerator in ("gpu", "cuda") and not torch.cuda.is_available():  # the machine, not the settings
        raise ConfigError("trainer.accelerator", tc.accelerator, "cpu on this machine (no CUDA device is visible)",
                          "Run with accelerator=cpu (or accelerator=ddp_cpu for several processes), or on a "
                          "machine with a GPU.")
    strategy = resolve_strategy(tc.strategy, tc.accelerator, tc.devices, tc.num_nodes, tc.timeout_minutes)
    bar = tc.enable_progress_bar and sys.stdout.isatty()
    if bar:
        callbacks = [*callbacks, IterationProgressBar(threads)]
    elif tc.enable_progress_bar:  # output to a file or a pipe: plain lines, after every other callback's work
        callbacks = [*callbacks, ProgressLines(progress_every(s.train), note=threads)]
    return L.Trainer(accelerator=tc.accelerator, devices=tc.devices, num_nodes=tc.num_nodes,
                     strategy=strategy, precision=tc.precision, max_epochs=1, logger=loggers or False,
                     deterministic=tc.deterministic, callbacks=callbacks, enable_progress_bar=bar,
                     enable_checkpointing=False, enable_model_summary=False,
                     use_distributed_sampler=False, num_sanity_val_steps=0, limit_val_batches=0,
                     log_every_n_steps=1, default_root_dir=str(run_dir))
