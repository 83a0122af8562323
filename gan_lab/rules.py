"""The rulebook's machinery: what a rule sees of a composed run (:class:`Setup`), what a rule is, and how the lab
asks the rules. The rules themselves — every "A is not allowed with B" of the lab, as one table — are in
gan_lab/rulebook.py, which registers them here when imported; they are decided from what the parts declare
(gan_lab/capabilities.py) and the typed settings (gan_lab/settings.py), never from names or types.

Each rule is one entry of ``RULES``: a name, an example command line that breaks it (tests/test_rules.py runs
every one, so a rule without a test cannot exist), the phase it needs (``parts``: the settings, the loss,
regularizer, tricks, data and optimiser are known; ``networks``: G and D are built too), and its check, which
returns the refusal or None. A refusal names both keys, the value, and what is allowed with the other setting,
in the lab's one error type (gan_lab/errors.py).

``EAGER`` holds the other kind of rule: what keeps a run's step from being captured as CUDA graphs
(``train.cuda_graphs``); such a run trains eagerly, with one line saying why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from gan_lab.capabilities import SystemCaps
from gan_lab.errors import ConfigError
from gan_lab.settings import Settings


@dataclass
class Setup:
    """A composed run as the rules see it."""

    settings: Settings
    system: SystemCaps
    system_option: str  # the option that chose the system, for refusals: "Algorithm 1", "model=lapgan", …
    model: str  # the model group's name (dcgan, mlp, …)
    own_system: bool  # the model's config names its own training step (model.system)
    loss: Any  # GANLoss
    regularizer: Any  # Regularizer
    tricks: Any  # Tricks
    source: Any  # Source (its spec, its labels)
    optimizer_d: torch.optim.Optimizer  # D's optimiser as configured, on a dummy parameter
    conditional: str = "none"
    d_norm: str = "auto"
    processes: int = 1
    model_fits: Callable[[Any], ConfigError | None] | None = None  # the model's own shape check (its ``fits``)
    generator: nn.Module | None = None  # the networks phase
    discriminator: nn.Module | None = None

    @property
    def spec(self):
        return self.source.spec

    def trick(self, name: str):
        """The trick ``name`` if it is on, else None."""
        return next((p for p in self.tricks.parts if p.name == name), None)


Check = Callable[[Setup], ConfigError | None]


@dataclass(frozen=True)
class Rule:
    name: str
    example: tuple[str, ...]  # a command line (overrides) that breaks it
    key: str  # the key its refusal of ``example`` names
    check: Check
    phase: str = "parts"


RULES: list[Rule] = []


def rule(name: str, example: tuple[str, ...], key: str, phase: str = "parts") -> Callable[[Check], Check]:
    def register(check: Check) -> Check:
        RULES.append(Rule(name, example, key, check, phase))
        return check

    return register


def check(setup: Setup, phase: str) -> None:
    """Raise the first refusal of the rules of ``phase``, in the table's order."""
    _registered()
    for r in RULES:
        if r.phase == phase and (refusal := r.check(setup)) is not None:
            raise refusal


# ---------------------------------------------------------------- what keeps the step from CUDA graphs
EagerCheck = Callable[[Any], str | None]


@dataclass(frozen=True)
class EagerRule:
    name: str
    example: tuple[str, ...]  # overrides (with train.cuda_graphs=stand_in) whose step stays eager
    check: EagerCheck  # the system (on its trainer) -> why its step stays eager, or nothing (None, "", False)


EAGER: list[EagerRule] = []


def eager_rule(name: str, example: tuple[str, ...]) -> Callable[[EagerCheck], EagerCheck]:
    def register(fn: EagerCheck) -> EagerCheck:
        EAGER.append(EagerRule(name, example, fn))
        return fn

    return register


def capture_blockers(system) -> list[str]:
    """Why this run's step cannot be captured (empty: it can)."""
    _registered()
    return [why for r in EAGER if (why := r.check(system))]


def _registered() -> None:
    if not RULES:  # gan_lab/rulebook.py registers them when imported (gan_lab/compose.py imports it)
        raise RuntimeError("no rules registered: import gan_lab.rulebook before asking the rules")
