"""Rebuild a finished (or interrupted) run from its folder: config, networks, weights, data.

The checkpoint carries the composed config (``checkpoint["gan_lab"]["config"]``), so the folder
alone is enough; it is read with ``weights_only=True`` (no arbitrary unpickling).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig, OmegaConf

from gan_lab.config import config_dir
from gan_lab.errors import ConfigError
from gan_lab.resume import latest_good

if TYPE_CHECKING:  # the parts are imported when a run is rebuilt: a command's bad argument is said at once
    from gan_lab.data.base import Source
    from gan_lab.rules import Setup
    from gan_lab.systems.gan import GAN


@dataclass
class LoadedRun:
    run_dir: Path
    cfg: DictConfig
    system: GAN
    source: Source
    checkpoint: Path
    setup: Setup  # what the rulebook saw of it


def checkpoint_path(run_dir: Path) -> Path:
    path = Path(run_dir) / "checkpoints" / "last.ckpt"
    if not path.is_file():
        raise ConfigError("run", str(run_dir), "a gan_lab run folder with checkpoints/last.ckpt",
                          "No checkpoint there: is it a run folder, and did the run save one?")
    return path


def with_current_defaults(cfg: DictConfig) -> DictConfig:
    """Top-level blocks a run saved before they existed (e.g. ``tricks``) take today's defaults."""
    from hydra import compose, initialize_config_dir


    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        defaults = compose(config_name="config")
    for key in defaults:
        if key not in cfg:
            cfg[key] = defaults[key]
    return cfg


CHECKPOINTS = ("last", "best")  # the ``checkpoint=`` of the run-folder commands


def load_run(run_dir: str | Path, device: str = "cpu", checkpoint: str = "last") -> LoadedRun:
    """The run in ``run_dir`` rebuilt from a checkpoint: ``last``, its newest (a corrupt last.ckpt falls back to
    prev.ckpt, as resume does), or ``best``, the one ``eval.best`` kept at the run's best in-training
    measurement."""
    run_dir = Path(run_dir)
    if checkpoint not in CHECKPOINTS:
        raise ConfigError("checkpoint", checkpoint, "last (the newest) or best (eval.best's checkpoints/best.ckpt)")
    if checkpoint == "best":
        from gan_lab.callbacks.checkpoint import BestCheckpoint
        from gan_lab.resume import read_checkpoint

        path = run_dir / "checkpoints" / BestCheckpoint.FILE
        if not path.is_file():
            checkpoint_path(run_dir)  # raises when it is no run folder at all
            raise ConfigError("checkpoint", "best", "last for this run", f"{run_dir} kept no checkpoints/"
                              f"{BestCheckpoint.FILE} (a run keeps one with eval.best set and eval.every > 0)")
        try:
            found = read_checkpoint(path), path
        except ValueError as err:
            raise ConfigError("checkpoint", "best", "last for this run", str(err)) from None
    else:
        found = latest_good(run_dir, key="run")
        if found is None:
            checkpoint_path(run_dir)  # raises: no checkpoint there
    ckpt, path = found
    from gan_lab.compose import build_components, build_system

    cfg = with_current_defaults(OmegaConf.create(ckpt["gan_lab"]["config"]))
    components = build_components(cfg)
    system = build_system(cfg, components)
    system.restore(ckpt)
    system.to(device).eval()
    return LoadedRun(run_dir, cfg, system, components.source, path, components.setup)


def count(value: str) -> int:
    """A ``key=value`` argument that counts something (samples, steps, rows): an integer >= 1."""
    n = int(value)
    if n < 1:
        raise ValueError(value)
    return n


WHAT = {int: "an integer", float: "a number", str: "a string", count: "an integer >= 1"}


def parse_args(argv: list[str], allowed: dict[str, type], command: str) -> dict:
    """``key=value`` arguments for the small commands; unknown keys name the allowed ones."""
    out: dict = {}
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep or key not in allowed:
            raise ConfigError(key or arg, value, f"one of {', '.join(f'{k}=…' for k in allowed)}",
                              f"usage: python -m gan_lab.{command} " + " ".join(f"{k}=…" for k in allowed))
        kind = allowed[key]
        if kind is bool:
            if value.lower() not in ("true", "false", "1", "0"):
                raise ConfigError(key, value, "true or false")
            out[key] = value.lower() in ("true", "1")
        else:
            try:
                out[key] = kind(value)
            except ValueError:
                shown = int(value) if value.lstrip("+-").isdigit() else value  # n=-5, not n='-5'
                raise ConfigError(key, shown, WHAT.get(kind, f"a {kind.__name__}")) from None
    return out


def run_command(body: Callable[[dict], str], allowed: dict[str, type], command: str,
                argv: list[str] | None = None) -> None:
    """The frame of the run-folder commands: parse ``key=value`` (``run=`` required), run ``body``,
    print its closing line; a ConfigError is one line on stderr and exit status 2."""
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv, allowed, command)
        if "run" not in args:
            raise ConfigError("run", None, "a run folder", f"usage: python -m gan_lab.{command} run=<run folder> …")
        print(f"gan_lab: {body(args)}")
    except ConfigError as e:
        print(f"gan_lab: error: {e}", file=sys.stderr)
        sys.exit(2)
