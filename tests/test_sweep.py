"""Hydra multirun: one run folder per job (sweeps of DDP jobs: tests/test_ddp.py)."""

from __future__ import annotations

import json

from tests.conftest import run_cli


def _jobs(sweep_dir):
    return sorted(p for p in sweep_dir.iterdir() if p.is_dir())


def test_sweep_over_clip_value_and_k_makes_one_folder_per_job(tmp_path):
    proc = run_cli("-m", "model=mlp", "dataset=ring", "model.hidden=[32]", "loss=wasserstein",
                   "regularizer=clip", "regularizer.clip_value=0.01,0.05", "train.k=1,5", "debug=tiny",
                   f"hydra.sweep.dir={tmp_path}/sweep", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = _jobs(tmp_path / "sweep")
    assert len(jobs) == 4
    seen = set()
    for job in jobs:
        summary = json.loads((job / "metrics.json").read_text())
        overrides = (job / ".hydra" / "overrides.yaml").read_text()
        clip = 0.01 if "clip_value=0.01" in overrides else 0.05
        k = 5 if "train.k=5" in overrides else 1
        assert summary["k"] == k and summary["d_updates"] == 4 * k
        seen.add((clip, k))
    assert seen == {(0.01, 1), (0.01, 5), (0.05, 1), (0.05, 5)}
