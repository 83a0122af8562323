"""Shared fixtures: compose the real config tree with overrides, as the command line would."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from gan_lab.__main__ import config_dir

ROOT = Path(__file__).resolve().parents[1]
CONF = Path(config_dir())

os.environ.setdefault("WANDB_SILENT", "true")
# Domain classifiers and real-feature statistics are cached here, not in the user's ~/.cache.
os.environ.setdefault("GAN_LAB_CACHE", os.path.join(tempfile.gettempdir(), "gan_lab_test_cache"))
os.environ.setdefault("WANDB_MODE", "offline")


def compose_cfg(*overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def run_cli(*args: str, cwd: Path, timeout: int = 600,
            env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m gan_lab ARGS`` in a subprocess, the way a user runs it."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "gan_lab", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def tiny():
    """Compose with debug=tiny plus overrides."""
    return lambda *overrides: compose_cfg("debug=tiny", *overrides)
