"""``python -m gan_lab [overrides]``: the Hydra entrypoint (``-m`` for a multirun sweep)."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from gan_lab.errors import ConfigError


def config_dir() -> str:
    """conf/ ships inside the wheel as gan_lab/conf; in a source checkout it sits beside gan_lab/."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "conf", here.parent / "conf"):
        if (candidate / "config.yaml").is_file():
            return str(candidate)
    raise FileNotFoundError(f"gan_lab's config tree was not found next to {here}")


def _run(cfg: DictConfig):
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from gan_lab.train import train

    try:
        return objective(cfg, train(cfg))
    except ConfigError as e:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            raise  # an ordinary exception fails this job only; the sweep goes on
        text = str(e)
        if "Original Traceback" in text:  # re-raised from a DataLoader worker: keep the error's own line
            text = text.rstrip().splitlines()[-1].removeprefix(f"{ConfigError.__module__}.ConfigError: ")
        print(f"gan_lab: error: {text}", file=sys.stderr)
        sys.exit(2)


def objective(cfg: DictConfig, summary: dict):
    """The job's return value: the final value of ``sweep.objective`` when set (what an Optuna sweep
    minimises; non-finite or missing values count as +inf, a failed trial), else the summary."""
    name = (cfg.get("sweep") or {}).get("objective")
    if not name or not summary:  # no objective, or a non-zero DDP rank
        return summary
    metrics = summary.get("metrics", {})
    if name not in metrics:
        known = ", ".join(sorted(k for k in metrics if k.startswith(("val/", "toy/", "train/"))))
        raise ConfigError("sweep.objective", name, f"a metric this run reports: {known}")
    value = float(metrics[name])
    return value if math.isfinite(value) else math.inf


def main() -> None:
    hydra.main(version_base="1.3", config_path=config_dir(), config_name="config")(_run)()


if __name__ == "__main__":
    main()
