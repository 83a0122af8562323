"""The rulebook (gan_lab/rulebook.py), row by row: every rule refuses the example it carries, naming its key, through
the same composition a command line goes through; every reason a step stays eager under CUDA graphs is given for
its example. The tables are the rulebook's own, so a rule without a test cannot exist."""

from __future__ import annotations

import pathlib
import re
from types import SimpleNamespace

import pytest

from gan_lab import rulebook, rules  # noqa: F401  (rulebook: the rules register)
from gan_lab.compose import build_components, build_system
from gan_lab.distributed import processes
from gan_lab.errors import ConfigError
from tests.conftest import compose_cfg, refused


class _Reached(Exception):
    pass


def setup_at(overrides: tuple[str, ...], phase: str, monkeypatch) -> rules.Setup:
    """The Setup the rulebook sees at ``phase`` for a command line, the other rules switched off."""
    seen = {}

    def capture(setup, at):
        seen[at] = setup
        if at == phase:
            raise _Reached

    monkeypatch.setattr(rules, "check", capture)
    with pytest.raises(_Reached):
        build_components(compose_cfg(*overrides))
    return seen[phase]


@pytest.mark.parametrize("rule", rules.RULES, ids=[r.name for r in rules.RULES])
def test_every_rule_refuses_its_example_naming_its_key(rule, monkeypatch):
    error = rule.check(setup_at(rule.example, rule.phase, monkeypatch))  # this rule, on its own
    assert isinstance(error, ConfigError) and error.key == rule.key, error
    assert str(error).startswith(f"{rule.key}=") and " is not allowed: " in str(error)
    monkeypatch.undo()
    assert refused(*rule.example).key == rule.key  # and the whole rulebook, in its order, says it


def test_rules_have_unique_names_and_known_phases():
    names = [r.name for r in rules.RULES] + [r.name for r in rules.EAGER]
    assert len(names) == len(set(names))
    assert {r.phase for r in rules.RULES} <= {"parts", "networks"}


@pytest.mark.parametrize("rule", rules.EAGER, ids=[r.name for r in rules.EAGER])
def test_every_reason_to_stay_eager_is_given_for_its_example(rule):
    cfg = compose_cfg(*rule.example, "train.cuda_graphs=stand_in")
    system = build_system(cfg, build_components(cfg))
    system._trainer = SimpleNamespace(world_size=processes(cfg.trainer))  # what the rules read of the trainer
    why = rule.check(system)
    assert why and why in rules.capture_blockers(system)


def test_a_capturable_run_has_no_reason_to_stay_eager():
    cfg = compose_cfg("train.cuda_graphs=stand_in")
    system = build_system(cfg, build_components(cfg))
    system._trainer = SimpleNamespace(world_size=1)
    assert rules.capture_blockers(system) == []


def test_no_dispatch_on_system_types_outside_the_rulebook():
    """Systems are told apart by what they declare (their caps), never by their type."""
    package = pathlib.Path(rules.__file__).parent
    pattern = re.compile(r"isinstance\([^)]*\b(LAPGAN|MixtureGAN|ProgressiveGAN|GAN)\b|type\((system|module|self)\) is")
    files = [path for path in package.rglob("*.py") if path.name not in ("rules.py", "rulebook.py", "rulebook_late.py")]
    offenders = [f"{path.relative_to(package)}:{n}" for path in files
                 for n, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert offenders == []
