"""Resuming a run where it stopped: finding the newest good checkpoint, checking it is the same run,
and recognising a run that already finished (so a re-run sweep skips it).

A run continues bit for bit: weights, optimiser states, EMA and historical averages, the iteration and
D-update counters, the logged rows are restored from the checkpoint, and everything random in an
iteration (its minibatches, z, penalty interpolants, noise, augmentations) is a function of
(seed, rank, iteration) — so nothing else needs restoring, at any iteration, even mid-epoch.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from gan_lab.errors import ConfigError

log = logging.getLogger("gan_lab")

CHECKPOINTS = ("last.ckpt", "prev.ckpt")  # newest first
# Settings a resumed run may change: how long it runs, how it is watched, where things are.
MAY_CHANGE = ("resume", "train.iterations", "train.num_workers", "train.data_on_device", "train.log_every",
              "train.sample_every", "train.checkpoint_every", "trainer.enable_progress_bar", "train.progress_every",
              "trainer.timeout_minutes", "trainer.threads", "eval", "logger", "output", "callbacks", "sweep", "paths",
              "hydra")


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint's content, read with ``weights_only=True`` (no arbitrary unpickling); ValueError if
    it is truncated, corrupt, not a gan_lab checkpoint, or asks to unpickle anything but tensors."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        text = str(err)
        if "Weights only load failed" in text:  # torch's advice (load with weights_only=False) is left out: unsafe
            detail = "it holds objects other than tensors, which the lab never unpickles"
        else:
            detail = f"{type(err).__name__}: {text.splitlines()[0][:200] if text else 'unreadable'}"
        raise ValueError(f"{path} cannot be read safely ({detail})") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "iteration" not in ckpt.get("gan_lab", {}):
        raise ValueError(f"{path} is not a gan_lab checkpoint (no state_dict and iteration counter)")
    return ckpt


def latest_good(run_dir: Path, key: str = "resume") -> tuple[dict[str, Any], Path] | None:
    """The newest readable checkpoint of ``run_dir`` (last.ckpt, else prev.ckpt), or None if it has none.
    Each unusable file is reported; if none is usable, a ConfigError says why."""
    problems = []
    for name in CHECKPOINTS:
        path = Path(run_dir) / "checkpoints" / name
        if not path.is_file():
            continue
        try:
            return read_checkpoint(path), path
        except ValueError as err:
            later = [n for n in CHECKPOINTS[CHECKPOINTS.index(name) + 1:]
                     if (Path(run_dir) / "checkpoints" / n).is_file()]
            log.warning("%s%s", err, "; trying the previous checkpoint" if later else "")
            problems.append(str(err))
    if problems:
        raise ConfigError(key, str(run_dir), "a run folder with a readable checkpoint",
                          "no checkpoint could be loaded safely: " + "; ".join(problems))
    return None


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out = {}
        for k, v in tree.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: tree}


# Keys added since runs began saving their configs, with the value every run from before them trained with
# (a preset may now set another: experiment=ring_collapse has train.simultaneous=true).
ADDED_KEYS = {"train.simultaneous": False, "model.init": "torch", "tricks.instance_noise_until": 1.0,
              "train.tf32": False, "train.g_steps": 1}


def upgrade(saved: dict[str, Any]) -> dict[str, Any]:
    """A saved config in today's layout: a run from before lists of regularizers kept its regularizer
    flat (``{_target_, weight}``); today each sits under its name beside the shared keys."""
    reg = saved.get("regularizer")
    if not isinstance(reg, dict) or "_target_" not in reg:
        return saved
    from hydra.utils import get_class

    name = get_class(reg["_target_"]).name
    return {**saved, "regularizer": {**{k: v for k, v in reg.items() if k != "_target_"}, name: dict(reg)}}


def check_same_run(cfg: DictConfig, saved: dict[str, Any], run_dir: Path) -> None:
    """Refuse to resume with settings that would make it a different run, naming the first one."""
    now = _flat(OmegaConf.to_container(cfg, resolve=True))
    before = _flat(upgrade(saved))
    free = lambda key: any(key == m or key.startswith(m + ".") for m in MAY_CHANGE)
    for key in sorted(set(now) | set(before)):
        if key not in before and key in ADDED_KEYS and key in now:
            before[key] = ADDED_KEYS[key]  # added since the run began: it trained with the value of then
        if free(key) or key not in before:  # other new keys take their defaults
            continue
        if now.get(key) != before[key]:
            why = ("resume continues the same run; start a new run folder to change it (a resume may change "
                   "train.iterations and how the run is watched: logging, evaluation, checkpoints, output)")
            if key.endswith("._target_"):  # another group option (model=mlp), not a class path
                group = key.removesuffix("._target_")
                raise ConfigError(group, _option(now.get(key)), f"{_option(before[key])}, the choice the run in "
                                                                f"{run_dir} was trained with", why)
            raise ConfigError(key, now.get(key), f"{before[key]!r}, the value the run in {run_dir} was trained with",
                              why)


def _option(target: Any) -> str:
    """A group option as the command line names it, from what it builds: gan_lab.nets.mlp.build -> mlp."""
    parts = str(target).split(".")
    return parts[-2] if len(parts) >= 2 and parts[-1][:1].islower() else parts[-1]


def finished(run_dir: Path, cfg: DictConfig) -> dict[str, Any] | None:
    """The summary of a run in ``run_dir`` that already reached ``train.iterations``, else None."""
    path = Path(run_dir) / "metrics.json"
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if summary.get("status") == "finished" and summary.get("iterations", -1) >= cfg.train.iterations:
        return summary
    return None
