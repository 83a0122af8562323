"""How a typed setting is checked: ``Annotated`` types carry their checks (a range, a validator) and a line of
documentation, and one function checks a value against one (:func:`check_value`), a config section against a
dataclass (:func:`section_of`) and a node naming a class or builder against its signature
(:func:`check_target_node`). Errors name the full key, following interpolations to the key that holds the value.
gan_lab/settings.py declares the lab's sections with it; parts declare their own settings with it.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import inspect
import math
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

from omegaconf import DictConfig, ListConfig, OmegaConf

from gan_lab.errors import ConfigError

__all__ = ["Annotated", "Range", "Validator", "Doc", "at_least", "above", "fraction", "doc_of", "describe",
           "check_value", "section_of", "source_key", "signature_hints", "check_target_node", "plain"]


# ---------------------------------------------------------------- checks, carried in Annotated types


@dataclass(frozen=True)
class Range:
    """A number in [low, high] (either end open, or absent)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def ok(self, value) -> bool:
        if self.low is not None and not (value > self.low if self.low_open else value >= self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def text(self) -> str:
        lo = "(-inf" if self.low is None else f"{'(' if self.low_open else '['}{self.low}"
        hi = "inf)" if self.high is None else f"{self.high}{')' if self.high_open else ']'}"
        return f"{lo}, {hi}"


def at_least(low: float) -> Range:
    return Range(low)


def above(low: float) -> Range:
    return Range(low, low_open=True)


def fraction(low_open: bool = False, high_open: bool = True) -> Range:
    """A number in [0.0, 1.0) (or another choice of open ends)."""
    return Range(0.0, 1.0, low_open, high_open)


@dataclass(frozen=True)
class Validator:
    """A check beyond the type: ``ok(value)`` is whether the value is allowed; ``allowed`` says what is. A named
    module-level function, never a lambda: annotations are evaluated in the class's namespace."""

    ok: typing.Callable[[Any], bool]
    allowed: str
    why: str = ""


@dataclass(frozen=True)
class Doc:
    text: str


def doc_of(annotation) -> str:
    return next((m.text if isinstance(m, Doc) else m for m in getattr(annotation, "__metadata__", ())
                 if isinstance(m, (Doc, str))), "")


# ---------------------------------------------------------------- checking one value against its type


def _split(annotation) -> tuple[Any, list]:
    """(the bare type, its checks) of an annotation."""
    if typing.get_origin(annotation) is Annotated:
        bare, *meta = typing.get_args(annotation)
        return bare, [m for m in meta if isinstance(m, (Range, Validator))]
    return annotation, []


def _options(bare) -> list:
    """The alternatives of a union type (X | None, bool | Literal[...]); a single type otherwise."""
    if typing.get_origin(bare) in (Union, types.UnionType):
        return list(typing.get_args(bare))
    return [bare]


def _matches(kind, value) -> bool:
    if kind is type(None):
        return value is None
    if kind is Any:
        return True
    origin = typing.get_origin(kind)
    if origin is Literal:
        return any(value == c and type(value) is type(c) for c in typing.get_args(kind))
    if origin in (list, tuple, collections.abc.Sequence):
        inner = (typing.get_args(kind) or (Any,))[0]
        return isinstance(value, (list, tuple, ListConfig)) and all(_matches(inner, v) for v in value)
    if origin is not None:  # another generic: its container type decides
        return isinstance(value, origin)
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return isinstance(value, kind)


def _alternatives(annotation) -> list[tuple[Any, list]]:
    """[(bare type, its checks)] of each alternative of an annotation; the checks of an outer ``Annotated`` apply
    to every alternative (``Annotated[int, at_least(1)] | None``: the range is the int's)."""
    bare, outer = _split(annotation)
    return [(kind_bare, outer + kind_checks) for kind_bare, kind_checks in map(_split, _options(bare))]


def describe(annotation) -> str:
    """What an annotation allows, in words (for errors and the generated reference)."""
    words = []
    for kind, checks in _alternatives(annotation):
        validators = [c.allowed for c in checks if isinstance(c, Validator)]
        if validators:  # a validator says in full what its alternative allows
            words += validators
            continue
        if kind is type(None):
            words.append("null")
        elif typing.get_origin(kind) is Literal:
            words += [str(c).lower() if isinstance(c, bool) else str(c) for c in typing.get_args(kind)]
        elif kind is bool:
            words += ["true", "false"]
        elif kind in (int, float):
            words.append(_number_words(kind, [c for c in checks if isinstance(c, Range)]))
        elif typing.get_origin(kind) in (list, tuple, collections.abc.Sequence):
            words.append("a list")
        elif kind is not Any:
            words.append(getattr(kind, "__name__", str(kind)))
    words = list(dict.fromkeys(words))
    if all(typing.get_origin(kind) is Literal for kind, _ in _alternatives(annotation)):
        return "one of " + ", ".join(words)
    return " or ".join(words) if len(words) <= 2 else ", ".join(words[:-1]) + " or " + words[-1]


def _number_words(kind, ranges: list[Range]) -> str:
    """"an integer >= 1", "a number in [0.0, 1.0)", "a number"."""
    noun = "an integer" if kind is int else "a number"
    if not ranges:
        return noun
    r = ranges[0]
    if kind is int and r.high is None and not r.low_open:
        return f"{noun} >= {r.low}"
    return f"{noun} in {r.text()}"


def check_value(key: str, value, annotation) -> None:
    """Raise a ConfigError naming ``key`` unless ``value`` fits ``annotation`` (its type and its checks)."""
    fits = [checks for kind, checks in _alternatives(annotation) if _matches(kind, value)]
    if not fits:
        raise ConfigError(key, plain(value), describe(annotation))
    for checks in fits[:1]:
        for check in checks:
            if isinstance(check, Range) and isinstance(value, (int, float)) and not check.ok(value):
                raise ConfigError(key, value, describe(annotation))
            if isinstance(check, Validator) and not check.ok(value):
                raise ConfigError(key, plain(value), check.allowed, check.why)


def plain(value):
    return OmegaConf.to_container(value) if isinstance(value, (DictConfig, ListConfig)) else value


def section_of(path: str, schema: type, node, open_keys: frozenset[str] = frozenset()) -> Any:
    """The typed section ``schema`` of ``node`` (a config section at ``path``), every key checked; ``open_keys``:
    keys another mechanism checks (the optimisers' own settings)."""
    node = node if node is not None else {}
    known = {f.name: f for f in dataclasses.fields(schema)}
    hints = typing.get_type_hints(schema, include_extras=True)
    values = {}
    for key in node:
        _mandatory(node, key, path)
        if key in open_keys:
            continue
        if key not in known:
            raise ConfigError(f"{path}.{key}", plain(node[key]),
                              "one of " + ", ".join(f"{path}.{k}" for k in known))
        value = node[key]
        if dataclasses.is_dataclass(hints[key]):
            values[key] = section_of(f"{path}.{key}", hints[key], value)
            continue
        check_value(source_key(node, key, f"{path}.{key}"), plain(value), hints[key])
        values[key] = plain(value)
    return schema(**values)


def _mandatory(node, key: str, path: str) -> None:
    """A key the config leaves ``???`` (a value with no default, e.g. ``dataset.path`` of ``dataset=folder``)."""
    if isinstance(node, DictConfig) and OmegaConf.is_missing(node, key):
        raise ConfigError(f"{path}.{key}", "???", "a value: it has no default",
                          f"set it on the command line, e.g. {path}.{key}=…")


def source_key(node, key: str, path: str) -> str:
    """The key that holds ``node[key]``'s value: ``path`` itself, or where its interpolation points
    (``regularizer.r1.weight: ${..weight}`` is set as ``regularizer.weight``)."""
    if not isinstance(node, DictConfig) or not OmegaConf.is_interpolation(node, key):
        return path
    text = str(node._get_node(key)._value())  # "${..weight}"
    inner = text[2:-1] if text.startswith("${") and text.endswith("}") and text.count("${") == 1 else None
    if inner is None or ":" in inner:  # a resolver, not a plain reference
        return path
    if not inner.startswith("."):
        return inner
    ups = len(inner) - len(inner.lstrip("."))
    parent = path.split(".")[:-1]
    return ".".join(parent[: len(parent) - (ups - 1)] + [inner.lstrip(".")])


# ---------------------------------------------------------------- nodes naming a class or a builder


def signature_hints(target) -> dict[str, Any]:
    """{parameter: annotation} of what a ``_target_`` names (a class's ``__init__``, a function)."""
    fn = target.__init__ if inspect.isclass(target) else target
    if fn is object.__init__:
        return {}
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except (NameError, TypeError):
        hints = {}
    params = inspect.signature(fn).parameters
    return {name: hints.get(name, Any) for name, p in params.items()
            if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def check_target_node(path: str, node: DictConfig, target, skip: set[str] = frozenset(),
                      supplied: set[str] = frozenset()) -> None:
    """Every key of ``node`` (a ``_target_`` node at ``path``) is a parameter of ``target`` and fits its
    annotation. ``skip``: keys another mechanism reads (``model.conditional``); ``supplied``: parameters the lab
    passes itself (``spec``), which the config may not set."""
    hints = signature_hints(target)
    fn = target.__init__ if inspect.isclass(target) else target
    takes_more = fn is not object.__init__ and any(p.kind == p.VAR_KEYWORD
                                                  for p in inspect.signature(fn).parameters.values())
    for key in node:
        if key.startswith("_") or key in skip:
            continue
        _mandatory(node, key, path)
        if key in supplied or (key not in hints and not takes_more):
            allowed = [k for k in hints if k not in supplied and k not in skip]
            raise ConfigError(f"{path}.{key}", plain(node[key]),
                              "one of " + ", ".join(f"{path}.{k}" for k in allowed))
        if key in hints and not (hasattr(node[key], "keys") and "_target_" in node[key]):
            check_value(source_key(node, key, f"{path}.{key}"), plain(node[key]), hints[key])
