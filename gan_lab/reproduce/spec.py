"""What a reproduced table is: its rows (a setup as overrides, and the published figures) and columns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Column:
    key: str  # the metrics.json key
    label: str
    digits: int = 2
    scale: float = 1.0  # shown value = scale · stored value


@dataclass(frozen=True)
class Row:
    name: str  # a file-name-safe id
    label: str
    overrides: tuple[str, ...] = ()
    paper: dict[str, tuple[float, float | None]] = field(default_factory=dict)
    best: bool = False
    target: dict[str, float] = field(default_factory=dict)  # key -> the bar; its side is the registry's direction
    tolerance: dict[str, float] = field(default_factory=dict)  # closed forms: |mean − value| ≤ tolerance also agrees


@dataclass(frozen=True)
class Table:
    name: str
    title: str
    source: str
    base: tuple[str, ...]  # overrides every row starts from (usually experiment=…)
    columns: tuple[Column, ...]
    rows: tuple[Row, ...] | Callable[[], tuple[Row, ...]]  # a callable when rows are computed (closed forms)
    seeds: int  # the published number of trials
    cost: str  # the full table's cost, stated
    quick: tuple[str, ...]  # what --quick adds (shorter training for a CPU)
    quick_seeds: int
    quick_cost: str
    notes: str = ""
    quick_rows: tuple[str, ...] = ()  # the rows --quick runs when --rows is not given (default: all)

    def all_rows(self) -> tuple[Row, ...]:
        return self.rows() if callable(self.rows) else self.rows
