"""Hydra callbacks: a multirun ends by writing its sweep report (leaderboard of every job)."""

from __future__ import annotations

from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


class SweepReport(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        from gan_lab.report import write_report

        sweep_dir = Path(config.hydra.sweep.dir)
        if sweep_dir.is_dir():
            print(f"gan_lab: sweep report {write_report(sweep_dir)}")
