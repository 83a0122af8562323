"""compose → instantiate → fit → write the run folder. Importable: tests call ``train(cfg, run_dir)``."""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig

from gan_lab import outcome, threads
from gan_lab.compose import build_components, build_system, check_settings
from gan_lab.data import GANDataModule
from gan_lab.distributed import distributed_job, patch_hydra_ddp_launch, processes
from gan_lab.errors import ConfigError
from gan_lab.launch import Callbacks, build_loggers, build_trainer, device_math
from gan_lab.report import write_report
from gan_lab.resume import check_same_run, finished, latest_good

__all__ = ["train", "build_components", "build_system"]
log = logging.getLogger("gan_lab")


def run_folder(cfg: DictConfig, run_dir: str | Path | None) -> Path:
    """Where the run lives: the folder it resumes (``resume=``), the one given, or Hydra's."""
    if cfg.get("resume"):
        run_dir = Path(str(cfg.resume)).expanduser()
        if not (run_dir / "checkpoints").is_dir() and not (run_dir / "metrics.json").is_file():
            raise ConfigError("resume", str(cfg.resume), "a gan_lab run folder (with checkpoints/)",
                              f"{run_dir.resolve()} holds no run to continue")
    if run_dir is None:
        from hydra.core.hydra_config import HydraConfig

        if not HydraConfig.initialized():
            raise ValueError("train() needs run_dir when called outside a Hydra app")
        run_dir = HydraConfig.get().runtime.output_dir
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def quiet() -> None:
    """Lightning's advice that does not apply to this lab's runs, and its hardware banners, once per rank."""
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*`training_step` returns `None`.*")
    warnings.filterwarnings("ignore", ".*isinstance.treespec, LeafSpec.*")
    warnings.filterwarnings("ignore", ".*Total length of .* across ranks is zero.*")  # resuming a run at its end
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda"):
        logging.getLogger(name).setLevel(logging.WARNING)


def train(cfg: DictConfig, run_dir: str | Path | None = None) -> dict[str, Any]:
    """Train one run into ``run_dir`` (default: Hydra's run folder); return its metrics.json content."""
    typed = check_settings(cfg)  # every key, before anything runs or is written
    run_dir = run_folder(cfg, run_dir)
    found = latest_good(run_dir)  # a run already in this folder: it must be this run
    if found is not None:
        check_same_run(cfg, found[0]["gan_lab"].get("config") or {}, run_dir)
    done = finished(run_dir, cfg)
    if done is not None:  # re-running a sweep (or a command) skips what already finished
        print(f"gan_lab: already finished ({done['iterations']} iterations), nothing to do: run folder {run_dir}",
              file=sys.stderr)  # not the run's output: a note, where the errors go
        return done
    quiet()
    L.seed_everything(typed.seed, workers=True, verbose=False)
    c = build_components(cfg, typed)
    system = build_system(cfg, c)
    if found is not None:
        system.restore(found[0])
        if rank_zero_only.rank == 0:  # child ranks restore the same checkpoint silently
            print(f"gan_lab: resuming from {found[1]} at iteration {system.iteration}")
    t = typed.train
    data = GANDataModule(c.source, t.batch_size, system.batches_per_iteration, t.iterations, typed.seed,
                         start_iteration=system.iteration, num_workers=t.num_workers, on_device=t.data_on_device,
                         labelled=c.conditioning.mode != "none", channels_last=t.channels_last, mirror=t.mirror)
    callbacks = Callbacks(cfg, typed, c.source, run_dir, outcome.inception_options(cfg))
    loggers = build_loggers(cfg, run_dir)
    patch_hydra_ddp_launch()
    budget = threads.choose(typed.trainer.threads, processes(cfg.trainer) // typed.trainer.num_nodes,
                            sum(p.numel() for net in (c.generator, c.discriminator) for p in net.parameters()))
    device_math(typed)
    with distributed_job(), threads.applied(budget):
        trainer = build_trainer(typed, run_dir, callbacks.all(), loggers, budget.line())
        if trainer.is_global_zero and (typed.eval.every or typed.eval.at_end):
            callbacks.evaluation.prepare()  # one-time work (classifier, real statistics) before any other rank exists
        run = outcome.Run(cfg, typed, run_dir, system, c.source, data, trainer, callbacks, loggers, budget)
        summary = outcome.fit(run)
    if summary.get("status") != "finished":  # a child rank ({}), or a diverged run (already reported)
        return summary
    if summary.get("best"):
        b = summary["best"]
        print(f"gan_lab: best {b['metric']} {b['value']:.4g} at iteration {b['iteration']}: "
              f"{run_dir / b['checkpoint']} (checkpoint=best in gan_lab.sample and gan_lab.evaluate)")
    print(f"gan_lab: report {write_report(run_dir)}")
    print(f"gan_lab: run folder {run_dir}")
    return summary
