"""What the report pages read of a folder: whether it is a run or a sweep, a sweep's jobs in order, and one
run's summary, overrides, final metrics and history rows; a file that is missing or does not parse reads as absent.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import yaml


class NotAReportFolder(ValueError):
    """The folder holds neither a run (metrics.json or .hydra/) nor a sweep (multirun.yaml or run subfolders)."""


def is_run(path: Path) -> bool:
    return (path / "metrics.json").is_file() or (path / ".hydra").is_dir()


def _job_order(path: Path) -> tuple:
    m = re.match(r"(\d+)_", path.name)
    return (0, int(m.group(1)), path.name) if m else (1, 0, path.name)


def sweep_jobs(path: Path) -> list[Path]:
    return sorted((p for p in path.iterdir() if p.is_dir() and is_run(p)), key=_job_order)


def is_sweep(path: Path) -> bool:
    return not is_run(path) and ((path / "multirun.yaml").is_file() or bool(sweep_jobs(path)))


def _load(path: Path, parse):
    """``parse(text of path)``, or None when the file is missing or does not parse."""
    try:
        return parse(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):
        return None


def _json_line(line: str):
    try:
        return json.loads(line)
    except ValueError:
        return None


def _read_history(path: Path) -> list[dict]:
    rows = [_json_line(line) for line in _load(path, str.splitlines) or []]
    return [row for row in rows if isinstance(row, dict) and "iteration" in row]


def load_run(path: Path) -> dict:
    """What the pages need of one run folder; a job without metrics.json is 'failed'."""
    summary = _load(path / "metrics.json", json.loads)
    summary = summary if isinstance(summary, dict) else {}
    listed = _load(path / ".hydra" / "overrides.yaml", yaml.safe_load)
    overrides = [tuple(str(s).split("=", 1)) if "=" in str(s) else (str(s), "") for s in listed or []]
    metrics = summary.get("metrics") if isinstance(summary.get("metrics"), dict) else {}
    return {"path": path, "name": path.name, "summary": summary, "overrides": dict(overrides),
            "status": str(summary.get("status", "unknown")) if summary else "failed", "metrics": metrics}


def _num(value) -> float:
    """A float for numbers (bools excluded), NaN for anything else."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan
