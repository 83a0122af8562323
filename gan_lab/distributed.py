"""Strategy choice for multi-process runs, and the Hydra child-process fix (Lightning #11300)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import torch.distributed as dist
from lightning.pytorch.strategies import DDPStrategy


def resolve_strategy(strategy: str, accelerator: str, devices, num_nodes: int):
    """"auto"/"ddp" with more than one process -> DDP that tolerates unused parameters.

    Under manual optimisation each backward touches only the player being updated, so the other
    player's parameters are unused in it: plain DDP refuses that (DESIGN.md pitfalls).
    """
    n_devices = devices if isinstance(devices, int) else (len(devices) if isinstance(devices, list) else 0)
    multi = num_nodes > 1 or n_devices > 1 or n_devices == -1
    if strategy in ("auto", "ddp") and (multi or strategy == "ddp"):
        backend = "gloo" if accelerator == "cpu" else None
        return DDPStrategy(find_unused_parameters=True, process_group_backend=backend)
    return strategy


def _hydra_child_command(local_rank: int):
    """Rank ≥ 1 re-runs *this job* (its overrides, its folder), never the whole sweep."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import get_original_cwd

    hc = HydraConfig.get()
    command = [sys.executable, "-m", "gan_lab", *hc.overrides.task,
               f'hydra.run.dir="{hc.runtime.output_dir}"', "hydra.mode=RUN", "hydra.output_subdir=null",
               f"hydra.job.name={hc.job.name}_rank{local_rank}"]
    return command, get_original_cwd()


def patch_hydra_ddp_launch() -> None:
    from lightning.fabric.strategies.launchers import subprocess_script as fabric_launcher
    from lightning.pytorch.strategies.launchers import subprocess_script as pytorch_launcher

    fabric_launcher._hydra_subprocess_cmd = _hydra_child_command
    pytorch_launcher._hydra_subprocess_cmd = _hydra_child_command


@contextmanager
def distributed_job() -> Iterator[None]:
    """Leave no process group or launcher variables behind, so the next sweep job launches afresh."""
    env = dict(os.environ)
    try:
        yield
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        for key in set(os.environ) - set(env):
            del os.environ[key]
        os.environ.update(env)
