"""Hydra callbacks: a multirun ends by writing its sweep report (leaderboard of every job) and a
summary of the jobs that did not finish, with the reason each one gives."""

from __future__ import annotations

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
