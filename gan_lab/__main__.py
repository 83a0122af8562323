"""``python -m gan_lab [overrides]``: the Hydra entrypoint (``-m`` for a multirun sweep)."""

from __future__ import annotations

import logging
import math
import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from gan_lab.config import config_dir
from gan_lab.errors import ConfigError
from gan_lab.watchdog import RANK_FAILURE_STATUS, RankFailure


def _run(cfg: DictConfig):
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from gan_lab.callbacks.checkpoint import CheckpointWriteError
    from gan_lab.outcome import INTERRUPT_STATUS, SIGTERM_STATUS, Stopped
    from gan_lab.train import train

    multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        summary = train(cfg)
    except KeyboardInterrupt as e:  # Ctrl-C stops the whole sweep, with a word (rank 0's)
        if getattr(e, "rank", 0) == 0:
            print(f"gan_lab: error: {e or 'interrupted (Ctrl-C)'}", file=sys.stderr)
        sys.exit(INTERRUPT_STATUS)
    except Stopped as e:  # SIGTERM (a scheduler's time limit, kill) stops the whole sweep too, with a word
        if e.rank == 0:
            print(f"gan_lab: error: {e}", file=sys.stderr)
        sys.exit(SIGTERM_STATUS)
    except BaseException as e:  # noqa: BLE001 - in a sweep, nothing a job raises may end the others
        if multirun:
            return _failed_job(cfg, e)
        if isinstance(e, RankFailure):  # rank 0 says it once; the other ranks leave it in their log
            if e.rank == 0:
                print(f"gan_lab: error: {e}", file=sys.stderr)
            logging.getLogger("gan_lab").error("rank %d stopped: %s", e.rank, e)
            sys.exit(RANK_FAILURE_STATUS)
        if isinstance(e, CheckpointWriteError):  # the disk, not the code: one line, the earlier files intact
            print(f"gan_lab: error: {e}", file=sys.stderr)
            sys.exit(1)
        if isinstance(e, ConfigError) and os.environ.get("HYDRA_FULL_ERROR") != "1":
            text = str(e)
            if "Original Traceback" in text:  # re-raised from a DataLoader worker: keep the error's own line
                text = text.rstrip().splitlines()[-1].removeprefix(f"{ConfigError.__module__}.ConfigError: ")
            print(f"gan_lab: error: {text}", file=sys.stderr)
            sys.exit(2)
        raise
    if summary.get("status") == "diverged":
        if multirun:  # this job failed; the sweep goes on and its summary lists the reason
            return _failed_value(cfg)
        sys.exit(DIVERGED_STATUS)
    return objective(cfg, summary)


def _failed_job(cfg: DictConfig, err: BaseException):
    """Record a sweep job's failure in its run folder (metrics.json, status failed, the reason) and its
    log, and let the sweep go on; the sweep's summary lists it and a re-run retries it."""
    import traceback

    from hydra.core.hydra_config import HydraConfig

    from gan_lab.run_folder import write_summary

    reason = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
    if isinstance(err, SystemExit):
        reason = f"the job exited with status {err.code}"
    if isinstance(err, (RankFailure, ConfigError)):  # the reason says it all; no traceback
        reason = f"{type(err).__name__}: {err}"
        logging.getLogger("gan_lab").error("job failed: %s", reason)
    else:
        logging.getLogger("gan_lab").error("job failed: %s\n%s", reason, "".join(traceback.format_exception(err)))
    run_dir = Path(str(cfg.resume)) if cfg.get("resume") else Path(HydraConfig.get().runtime.output_dir)
    if not (run_dir / "metrics.json").is_file():  # a diverged run already wrote its own
        write_summary(run_dir, {"status": "failed", "reason": reason, "run_dir": str(run_dir)})
    return _failed_value(cfg)


def _failed_value(cfg: DictConfig):
    """What a failed job returns: +inf for an Optuna objective (a trial that lost), else None."""
    return math.inf if (cfg.get("sweep") or {}).get("objective") else None


DIVERGED_STATUS = 3  # exit status of a run stopped by the divergence guard (2: a bad setting)


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
