"""The one error type the lab raises for bad settings, and the helpers that raise it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

_WHOLE = object()


class ConfigError(ValueError):
    """A setting the lab cannot use. The message names the key, the value and what is allowed.

    The entrypoint prints it without a traceback and exits with status 2
    (``HYDRA_FULL_ERROR=1`` shows the traceback).
    """

    def __init__(self, key: str, value: Any = _WHOLE, allowed: str = "", why: str = ""):
        if value is _WHOLE:  # one finished message: how DataLoader workers re-raise in the main process
            self.key, self.value, self.allowed = "", None, ""
            return super().__init__(key)
        self.key, self.value, self.allowed = key, value, allowed
        text = f"{key}={value!r} is not allowed: {allowed}"
        super().__init__(f"{text}. {why}".strip() if why else text)


def check_range(key: str, value: float, low: float | None = None, high: float | None = None,
                low_open: bool = False, high_open: bool = False) -> float:
    """Return ``value`` if it lies in the stated interval, else raise a ConfigError naming it."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        lo = "-inf" if low is None else f"{'(' if low_open else '['}{low}"
        hi = "inf" if high is None else f"{high}{')' if high_open else ']'}"
        lo = lo if low is not None else "(-inf"
        hi = hi if high is not None else "inf)"
        raise ConfigError(key, value, f"a number in {lo}, {hi}")
    return value


def check_int(key: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(key, value, f"an integer >= {minimum}")
    return value


def known_keys(prefix: str, node: Any, settings: type) -> dict:
    """``node`` as a dict, after refusing any key that ``settings`` (a dataclass) lacks, naming the allowed ones
    (``prefix`` is the node's path: ``eval.drs``)."""
    node = dict(node or {})
    unknown = sorted(set(node) - set(settings.__dataclass_fields__))
    if unknown:
        raise ConfigError(f"{prefix}.{unknown[0]}", node[unknown[0]],
                          "one of " + ", ".join(f"{prefix}.{k}" for k in settings.__dataclass_fields__))
    return node


def check_choice(key: str, value: Any, choices: Iterable[str]) -> str:
    choices = list(choices)
    if value not in choices:
        raise ConfigError(key, value, "one of " + ", ".join(map(str, choices)))
    return value
