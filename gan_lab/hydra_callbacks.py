"""Hydra callbacks: a multirun ends by writing its sweep report (leaderboard of every job) and a
summary of the jobs that did not finish, with the reason each one gives; every run first checks that its folder
can be created and written."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from gan_lab.report import load_run, sweep_jobs, write_report


def job_outcomes(sweep_dir: Path) -> list[tuple[str, str, str]]:
    """(job folder, status, reason) of every job of a sweep, in job order: finished, diverged (with the
    guard's reason), failed (with the error), or — no metrics.json at all, e.g. a killed process —
    failed with the last line of its log."""
    out = []
    for job in sweep_jobs(Path(sweep_dir)):
        run = load_run(job)
        reason = run["summary"].get("reason", "")
        if not run["summary"]:
            log = job / "gan_lab.log"
            lines = [ln for ln in log.read_text().splitlines() if ln.strip()] if log.is_file() else []
            reason = lines[-1][-300:] if lines else "no metrics.json and no log"
        out.append((job.name, run["status"], reason))
    return out


class SweepReport(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        print(f"gan_lab: sweep report {write_report(sweep_dir)}")
        outcomes = job_outcomes(sweep_dir)
        bad = [o for o in outcomes if o[1] != "finished"]
        print(f"gan_lab: sweep summary: {len(outcomes) - len(bad)} of {len(outcomes)} jobs finished")
        for name, status, reason in bad:
            print(f"gan_lab:   {status}: {name}: {reason}")
        if bad:  # the sweep ran to its end; its exit status still says that jobs failed
            raise SystemExit(1)


class RunFolderCheck(Callback):
    """Before Hydra creates the run (or sweep) folder: one line, exit 2, when it cannot be created or written
    (a read-only file system, a path under a file, a path that is a file), instead of Hydra's traceback."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        _check_folder(config, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        _check_folder(config, "hydra.sweep.dir")


def _check_folder(config: DictConfig, key: str) -> None:
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    HydraConfig.instance().set_config(config)  # the ${hydra:…} and ${now:…} of the folder's name resolve (cached)
    folder = Path(str(OmegaConf.select(config, key)))
    problem = folder_problem(folder)
    if problem is not None:
        print(f"gan_lab: error: {key}={folder}: {problem}; choose another folder with {key}=<folder>",
              file=sys.stderr)
        raise SystemExit(2)


def folder_problem(folder: Path) -> str | None:
    """Why ``folder`` cannot serve as a run folder (created if missing, then a file written in it), or None."""
    if folder.exists() and not folder.is_dir():
        return "it is a file, not a folder"
    blocking = next((p for p in folder.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        return f"{blocking} is a file, not a folder"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        return f"the folder cannot be created or written ({err.strerror or err})"
    return None
