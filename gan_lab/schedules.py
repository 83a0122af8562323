"""Schedules: numeric settings that change over the run, each a pure function of the iteration (so a resumed run
continues exactly), applied before every iteration by the run's clock (gan_lab/systems/clock.py).

A schedule is a part named by the setting it drives, under ``schedules`` in the config::

    schedules:
      optimizer:
        g: {lr: {kind: cosine, end: 5.0e-5}}        # R3GAN: 2e-4 → 5e-5
        d: {betas: {"1": {kind: cosine, end: 0.99}}} # Adam's β₂: 0.9 → 0.99 (index 1 of betas)
      regularizer:
        weight: {kind: cosine, end: 0.005}           # γ
      tricks:
        augment_p: {kind: cosine, start: 0}          # 0 → the configured p

or on the command line ``+schedules.optimizer.g.lr={kind:cosine,end:5e-5}``. Each leaf has

- ``kind``: ``constant`` (start), ``linear`` start·(1 − f) + end·f, or ``cosine``
  start + (1 − ½(1 + cos πf))·(end − start) (R3GAN's ``cosine_decay_with_warmup`` without warm-up), where
  f = min(t / length, 1) at generator iteration t: the value moves over ``length`` iterations, then holds ``end``;
- ``start`` and ``end``: null takes the setting's configured value (give at least one of them);
- ``length``: iterations (null: ``train.iterations``).

What a schedule may drive: the optimisers' hyperparameters (``optimizer.d.*``, ``optimizer.g.*``: lr, an entry of
betas, eps, momentum, …; every parameter group), the regularizer's settings (``regularizer.weight``, or
``regularizer.<name>.<setting>`` inside a list of regularizers), the tricks' (``tricks.*``) and the loss's
(``loss.*``). The parts read these settings at every use, so the new value acts from the iteration it is set.
``optimizer.lr_decay=linear`` is shorthand for linear schedules of both learning rates to 0 over the run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from gan_lab.errors import ConfigError

KINDS = ("constant", "linear", "cosine")
FIELDS = ("kind", "start", "end", "length")
ROOTS = ("optimizer.d.", "optimizer.g.", "regularizer.", "tricks.", "loss.")
PLAYERS = {"d": 0, "g": 1}  # the order of the system's optimisers


@dataclass(frozen=True)
class Schedule:
    key: str  # the setting it drives, e.g. optimizer.g.lr, optimizer.d.betas.1, regularizer.r1.weight
    kind: str
    start: float
    end: float
    length: int

    def value(self, iteration: int) -> float:
        f = min(iteration / self.length, 1.0)
        if self.kind == "constant":
            return self.start
        if self.kind == "linear":  # start·(1 − f) + 0·f is start·(1 − t/T) bit for bit: lr_decay=linear's factor
            return self.start * (1.0 - f) + self.end * f
        decay = 0.5 * (1.0 + math.cos(math.pi * f))
        return self.start + (1.0 - decay) * (self.end - self.start)


def _leaves(node: Any, path: str = ""):
    """(dotted key, leaf node) of every schedule under ``node``: a leaf is a mapping holding ``kind``."""
    if isinstance(node, DictConfig | dict):
        if "kind" in node:
            yield path, node
            return
        for k, v in node.items():
            yield from _leaves(v, f"{path}.{k}" if path else str(k))
        return
    raise ConfigError(f"schedules.{path}" if path else "schedules", _plain(node),
                      "a mapping {kind: constant|linear|cosine, start:, end:, length:}",
                      "every schedule is named by the setting it drives, e.g. "
                      "+schedules.optimizer.g.lr={kind:cosine,end:5e-5}")


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value) if isinstance(value, DictConfig | ListConfig) else value


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _configured(cfg: DictConfig, key: str) -> Any:
    """The value the config gives ``key`` (list entries by index), or a ConfigError naming the schedule."""
    node: Any = cfg
    for part in key.split("."):
        if isinstance(node, DictConfig) and part in node:
            node = node[part]
        elif isinstance(node, ListConfig) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise ConfigError(f"schedules.{key}", "…", "a numeric setting this run has",
                              f"{key} is not among this run's settings")
    return node


def schedules_of(cfg: DictConfig) -> list[Schedule]:
    """Every schedule the config asks for (``schedules``, and ``optimizer.lr_decay``), checked: errors name the
    schedule's key and the allowed values."""
    iterations = int(cfg.train.iterations)
    found = []
    for key, node in _leaves(cfg.get("schedules") or {}):
        name = f"schedules.{key}"
        extra = sorted(set(node) - set(FIELDS))
        if extra:
            raise ConfigError(f"{name}.{extra[0]}", _plain(node[extra[0]]), ", ".join(FIELDS),
                              "a schedule's fields")
        if node.kind not in KINDS:
            raise ConfigError(f"{name}.kind", node.kind, ", ".join(KINDS))
        if not key.startswith(ROOTS) or key.count(".") < 1:
            raise ConfigError(name, _plain(node), "a schedule of optimizer.d.*, optimizer.g.*, regularizer.*, "
                                                  "tricks.* or loss.*",
                              f"{key} is not a setting a schedule can drive")
        configured = _configured(cfg, key)
        if not _number(configured):
            raise ConfigError(name, _plain(node), "a schedule of a numeric setting",
                              f"{key} is {_plain(configured)!r}")
        start, end, length = node.get("start"), node.get("end"), node.get("length")
        for field, value in (("start", start), ("end", end)):
            if value is not None and not _number(value):
                raise ConfigError(f"{name}.{field}", value, "a finite number, or null (the configured value)")
        if node.kind != "constant" and start is None and end is None:
            raise ConfigError(name, _plain(node), "a start or an end", f"both default to {key}'s configured "
                                                                       f"value {configured}: nothing would change")
        if length is not None and not (isinstance(length, int) and not isinstance(length, bool) and length >= 1):
            raise ConfigError(f"{name}.length", length, "an integer >= 1, or null (train.iterations)")
        found.append(Schedule(key, node.kind, float(configured if start is None else start),
                              float(configured if end is None else end), length or iterations))
    if cfg.optimizer.get("lr_decay", "none") == "linear":
        for player in PLAYERS:
            key = f"optimizer.{player}.lr"
            if any(s.key == key for s in found):
                raise ConfigError(f"schedules.{key}", "…", f"no schedule of {key} with optimizer.lr_decay=linear",
                                  "optimizer.lr_decay=linear already schedules both learning rates")
            found.append(Schedule(key, "linear", float(cfg.optimizer[player].lr), 0.0, iterations))
    return found


class Schedules:
    """The run's schedules, set on the live parts before each iteration (:meth:`apply`) and shown in the log rows.
    Where each setting lives is found once, at the first :meth:`apply` (the optimisers exist by then)."""

    def __init__(self, schedules: list[Schedule] = ()):
        self.schedules = list(schedules)
        self._slots: list[_Slot] | None = None

    def __bool__(self) -> bool:
        return bool(self.schedules)

    def check(self, parts) -> None:
        """Refuse, naming the schedule, one whose setting no part of the run reads (``parts``: the run's
        ``regularizer``, ``tricks`` and ``loss``, e.g. the built components)."""
        for s in self.schedules:
            if not s.key.startswith("optimizer."):
                _holders(parts, s.key)

    def slots(self, system) -> list[_Slot]:
        if self._slots is None:
            self._slots = [_Slot(system, s.key) for s in self.schedules]
        return self._slots

    def apply(self, system, iteration: int) -> None:
        for s, slot in zip(self.schedules, self.slots(system)):
            slot.set(s.value(iteration))

    def row(self, system) -> dict[str, float]:
        """The values the row's last iteration ran with: the learning rates as ``train/lr_d``/``train/lr_g``, every
        other scheduled setting as ``schedule/<key>``."""
        names = {"optimizer.d.lr": "train/lr_d", "optimizer.g.lr": "train/lr_g"}
        slots = self.slots(system)
        return {names.get(s.key, f"schedule/{s.key}"): slot.get() for s, slot in zip(self.schedules, slots)}


def _holders(system, key: str) -> tuple[list[Any], str]:
    """(the live parts holding ``key``'s setting, the attribute's name) for the non-optimiser roots: one part, or
    every member of a list of regularizers that reads ``regularizer.<setting>``; a ConfigError when none does."""
    root, *rest = key.split(".")
    holders: list[Any] = []
    if root == "regularizer":
        members = {p.name: p for p in getattr(system.regularizer, "parts", [])}
        if len(rest) == 2 and rest[0] in members:
            holders, rest = [members[rest[0]]], rest[1:]
        else:  # a single regularizer, or regularizer=[r1,r2] regularizer.weight: the members that read it
            holders = list(members.values()) or [system.regularizer]
    elif root == "tricks":
        holders = [p for p in system.tricks.parts if rest[0] in p.settings][:1]
    else:
        holders = [system.loss]
    holders = [h for h in holders if len(rest) == 1 and hasattr(h, rest[0])]
    if not holders:
        raise ConfigError(f"schedules.{key}", "…", "a setting of a part this run has", f"no part reads {key}")
    return holders, rest[0]


class _Slot:
    """Where one scheduled setting lives: an entry of every parameter group of one player's optimiser (``index``: of
    a tuple such as betas), or an attribute of the parts that read it."""

    def __init__(self, system, key: str):
        if key.startswith("optimizer."):
            _, player, self.name, *index = key.split(".")
            self.optimizer = system.trainer.optimizers[PLAYERS[player]]  # its groups are read at each use: a
            self.index = int(index[0]) if index else None  # resumed optimiser's state replaces the group list
            self.holders = None
        else:
            self.holders, self.name = _holders(system, key)

    def set(self, value: float) -> None:
        if self.holders is not None:
            for holder in self.holders:
                setattr(holder, self.name, value)
            return
        for group in self.optimizer.param_groups:
            if self.index is None:
                group[self.name] = value
            else:
                entries = list(group[self.name])
                entries[self.index] = value
                group[self.name] = tuple(entries)

    def get(self) -> float:
        if self.holders is not None:
            return float(getattr(self.holders[0], self.name))
        value = self.optimizer.param_groups[0][self.name]
        return float(value if self.index is None else value[self.index])
