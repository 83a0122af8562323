"""docs/configuration.md, generated from the typed settings (gan_lab/settings.py): every key of the plain
sections, every trick setting, and, per option of each group, the settings of the class or builder it names.
``python -m gan_lab.reference > docs/configuration.md`` writes it; tests/test_reference.py keeps it in sync.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

from hydra.utils import get_class, get_method
from omegaconf import OmegaConf

from gan_lab.checks import describe, doc_of, signature_hints
from gan_lab.config import config_dir
from gan_lab.losses.base import AuxWeight
from gan_lab.settings import SECTIONS, SEED, Model

HEADER = """# Configuration reference

Every key of gan_lab's config tree: its default, what it allows, and what it means. Generated from the typed
settings (`python -m gan_lab.reference > docs/configuration.md`; a test keeps this page in sync), so it is what
the lab checks: a value outside what a key allows is refused before anything runs, with one line naming the key.
Set any key on the command line (`python -m gan_lab train.k=5`); choose a group's option with `group=option`.

"""
GROUPS = ("model", "loss", "regularizer", "dataset", "optimizer")
SKIP_PARAMS = {"spec", "seed"}  # supplied by the lab (the data's shape; the run's seed)


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _default(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if value == "":
        return '""'
    return str(value)


def _table(rows: list[tuple[str, object, str, str]]) -> list[str]:
    out = ["| key | default | allowed | meaning |", "| --- | --- | --- | --- |"]
    out += [f"| `{key}` | `{_cell(_default(default))}` | {_cell(allowed)} | {_cell(doc)} |"
            for key, default, allowed, doc in rows]
    return out + [""]


def _section_rows(path: str, schema) -> list[tuple]:
    hints = typing.get_type_hints(schema, include_extras=True)
    rows = []
    for f in dataclasses.fields(schema):
        if dataclasses.is_dataclass(hints[f.name]):
            rows += _section_rows(f"{path}.{f.name}", hints[f.name])
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        rows.append((f"{path}.{f.name}", default, describe(hints[f.name]), doc_of(hints[f.name])))
    return rows


def _option_rows(group: str, node) -> list[tuple]:
    """The settings of one group file: what its ``_target_`` takes, with the file's defaults."""
    parts = [(group, node)] if "_target_" in node else \
        [(f"{group}.{k}", v) for k, v in node.items() if hasattr(v, "keys") and "_target_" in v]
    if "system" in node:  # a model with its own training step: that system's settings
        parts.append((f"{group}.system", node.system))
    rows = []
    for path, part in parts:
        target = part._target_
        hints = signature_hints(get_method(target) if group in ("model", "dataset") and path == group
                                else get_class(target))
        for key in part:
            if key.startswith("_") or key in SKIP_PARAMS or key == "system":
                continue
            value = OmegaConf.to_container(part, resolve=False)[key]
            shared = isinstance(value, str) and value.startswith("${..")
            name = f"{group}.{value[4:-1]}" if shared else f"{path}.{key}"
            default = node[value[4:-1]] if shared else value
            kind = hints.get(key)
            if name not in {r[0] for r in rows}:
                rows.append((name, default, describe(kind) if kind is not None else "", doc_of(kind) if kind else ""))
    return rows


def _group(group: str) -> list[str]:
    out = [f"## `{group}=`", ""]
    for path in sorted(Path(config_dir(), group).glob("*.yaml")):
        node = OmegaConf.load(path)
        first = (path.read_text().splitlines() or [""])[0].lstrip("# ").strip()
        out += [f"### `{group}={path.stem}`", "", first, ""]
        if group == "optimizer":
            out += _table([(f"optimizer.{p}.{k}", v, "what torch.optim accepts", "")
                           for p in ("d", "g") for k, v in OmegaConf.to_container(node[p]).items()
                           if not k.startswith("_")])
            continue
        rows = _option_rows(group, node)
        out += _table(rows) if rows else ["No settings.", ""]
    return out


def render() -> str:
    from gan_lab.tricks import part_classes

    lines = [HEADER, "## Top-level keys", ""]
    lines += _table([("seed", 0, describe(SEED), doc_of(SEED)),
                     ("resume", None, "a run folder", "continue that run from its newest good checkpoint, in that "
                                                      "folder (bit for bit)")])
    for name, schema in SECTIONS.items():
        lines += [f"## `{name}.*`", ""] + _table(_section_rows(name, schema))
    lines += ["## `model.*` keys every model has", ""] + _table(_section_rows("model", Model))
    lines += ["## `loss.*` keys every loss has", ""] + _table([("loss.aux_weight", None, describe(AuxWeight),
                                                                doc_of(AuxWeight))])
    lines += ["## `tricks.*`", "", "All off by default and composable; the first key of each trick switches it on "
              "(`tricks.ada_target` also does, alone: ADA on its own bgc pipeline).", ""]
    for cls in part_classes():
        kinds = cls.annotations()
        rows = [(f"tricks.{k}", cls.settings[k], describe(kinds[k]), doc_of(kinds[k])) for k in cls.settings]
        lines += [f"### {cls.name}", ""] + _table(rows)
    for group in GROUPS:
        lines += _group(group)
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    print(render(), end="")
