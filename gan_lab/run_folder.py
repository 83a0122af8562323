"""Writing the run folder's summary: ``metrics.json``, never half-written. A leaf module: training,
evaluation and the entrypoint all write through it."""

from __future__ import annotations

import json
from pathlib import Path


def write_summary(run_dir: Path, summary: dict) -> None:
    """``metrics.json``, written to a temporary file and renamed: it is never half-written."""
    path = Path(run_dir) / "metrics.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary, indent=2, allow_nan=True))
    tmp.replace(path)
