"""Hydra callbacks: a multirun ends by writing its sweep report (leaderboard of every job) and a
summary of the jobs that did not finish, with the reason each one gives."""

from __future__ import annotations

import json
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


def job_outcomes(sweep_dir: Path) -> list[tuple[str, str, str]]:
    """(job folder, status, reason) of every job folder of a sweep: finished, diverged (with the
    guard's reason), failed (with the error), or — no metrics.json at all, e.g. a killed process —
    the last line of its log."""
    out = []
    for job in sorted(p for p in Path(sweep_dir).iterdir() if p.is_dir() and (p / ".hydra").is_dir()):
        try:
            summary = json.loads((job / "metrics.json").read_text())
        except (OSError, ValueError):
            lines = [ln for ln in (job / "gan_lab.log").read_text().splitlines() if ln.strip()] \
                if (job / "gan_lab.log").is_file() else []
            out.append((job.name, "failed", lines[-1][-300:] if lines else "no metrics.json and no log"))
            continue
        out.append((job.name, summary.get("status", "unknown"), summary.get("reason", "")))
    return out


class SweepReport(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        from gan_lab.report import write_report

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
