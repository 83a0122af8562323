"""``python -m gan_lab.reproduce <table>``: a published table, run by the lab and set beside the paper's.

A table (:mod:`gan_lab.reproduce.tables`) is a list of rows, each a setup written as command-line
overrides, with the paper's figures. The whole table runs as **one Hydra multirun** — any launcher
(joblib, submitit, SLURM) — over ``experiment=<row>`` × ``seed=0..N−1``: each row becomes a generated
experiment preset (``<sweep>/presets/experiment/repro_<row>.yaml``, on Hydra's search path), so every
job is an ordinary run folder whose saved config is complete. When the jobs end the lab reads their
metrics.json and writes, into the sweep folder:

* ``table.md``: per row and metric the paper's value (± its standard error when published), the lab's
  mean ± standard error over seeds, n, and whether they agree: |lab − paper| ≤ 2·√(s.e.²_lab + s.e.²_paper)
  (a closed form, or a paper without errors, uses the lab's s.e. alone; a row may also state a tolerance
  that counts as agreement). Rows of the lab's own best configuration show their target instead.
* ``reproduction.json``: the same numbers, which the sweep's report.html shows as its first section.

``--quick`` adds the table's shortening overrides (a CPU-sized run) and says so in the title.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path

import yaml
from omegaconf import OmegaConf

from gan_lab.metrics import registry
from gan_lab.metrics.registry import Direction
from gan_lab.reproduce.spec import Row, Table

PRESET_PREFIX = "repro_"


@dataclass
class Cell:
    """One (row, metric) of a reproduced table."""

    row: str
    label: str
    key: str
    metric: str
    values: list[float]
    paper: tuple[float, float | None] | None
    target: tuple[str, float] | None
    tolerance: float | None
    digits: int = 3

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values) if self.values else math.nan

    @property
    def se(self) -> float:
        """Standard error of the mean over seeds (sample std / √n); NaN with fewer than two runs."""
        if self.n < 2 or not all(math.isfinite(v) for v in self.values):
            return math.nan
        return statistics.stdev(self.values) / math.sqrt(self.n)

    @property
    def verdict(self) -> str:
        if not self.values:
            return "no runs"
        if self.target is not None:
            op, bar = self.target
            return "meets" if (self.mean >= bar if op == ">=" else self.mean <= bar) else "short"
        if self.paper is None:
            return ""
        value, paper_se = self.paper
        if not math.isfinite(self.mean):
            return "differs"
        gap = abs(self.mean - value)
        if self.tolerance is not None and gap <= self.tolerance:
            return "agrees"
        if math.isnan(self.se):
            return "n < 2"
        return "agrees" if gap <= 2 * math.hypot(self.se, paper_se or 0.0) else "differs"

    @property
    def paper_text(self) -> str:
        """The paper column as table.md and the report show it: a target, or the value ± its s.e."""
        if self.target is not None:
            return f"target {self.target[0]} {self.target[1]:g}"
        if self.paper is None:
            return "—"
        value, se = self.paper
        text = _num(value, self.digits) + (f" ± {_num(se, self.digits)}" if se is not None else "")
        return text + (f" (tolerance {self.tolerance:g})" if self.tolerance is not None else "")

    @property
    def lab_text(self) -> str:
        return f"{_num(self.mean, self.digits)} ± {_num(self.se, self.digits)}" if self.n else "—"

    def as_dict(self) -> dict:
        return {"row": self.row, "label": self.label, "key": self.key, "metric": self.metric, "values": self.values,
                "n": self.n, "mean": self.mean, "se": self.se, "paper": list(self.paper) if self.paper else None,
                "target": list(self.target) if self.target else None, "tolerance": self.tolerance,
                "verdict": self.verdict, "paper_text": self.paper_text, "lab_text": self.lab_text}


# ---------------------------------------------------------------------------- the multirun
def _is_group(key: str, conf_dir: Path) -> bool:
    return "." not in key and (conf_dir / key).is_dir()


def preset_yaml(overrides: tuple[str, ...], conf_dir: Path) -> str:
    """A ``# @package _global_`` experiment preset applying ``overrides`` as the command line would:
    ``experiment=X`` as a parent preset, ``group=option`` as ``override /group: option``, the rest as values."""
    parents, groups, values = [], [], []
    for item in overrides:
        key, _, value = item.partition("=")
        if key == "experiment":
            parents.append(value)
        elif _is_group(key, conf_dir):
            groups.append(f"  - override /{key}: {value}")
        else:
            values.append(item)
    lines = ["# @package _global_", "# generated by python -m gan_lab.reproduce", "defaults:",
             *(f"  - {p}" for p in parents), *groups, "  - _self_"]
    body = OmegaConf.to_container(OmegaConf.from_dotlist(values)) if values else {}
    text = "\n".join(lines) + "\n"
    if body:
        text += yaml.safe_dump(body, sort_keys=False)
    return text


def write_presets(table: Table, rows: tuple[Row, ...], sweep_dir: Path, conf_dir: Path,
                  quick: bool = False) -> Path:
    """One preset per row under ``<sweep_dir>/presets/experiment``, with ``--quick``'s overrides last (in the
    preset: they may name keys only the row's data set or model has); returns the search-path root."""
    root = sweep_dir / "presets"
    (root / "experiment").mkdir(parents=True, exist_ok=True)
    for row in rows:
        (root / "experiment" / f"{PRESET_PREFIX}{row.name}.yaml").write_text(
            preset_yaml((*table.base, *row.overrides, *(table.quick if quick else ())), conf_dir), encoding="utf-8")
    return root


def multirun_args(rows: tuple[Row, ...], seeds: int, sweep_dir: Path, presets: Path,
                  extra: list[str]) -> list[str]:
    """The ``python -m gan_lab -m …`` arguments that run the table (``extra``: the user's overrides, last)."""
    experiments = ",".join(f"{PRESET_PREFIX}{row.name}" for row in rows)
    seed_list = ",".join(str(s) for s in range(seeds))
    return ["-m", f"experiment={experiments}", f"seed={seed_list}", *extra,
            f"hydra.sweep.dir={sweep_dir}", f"hydra.searchpath=[file://{presets.resolve()}]"]


# ---------------------------------------------------------------------------- the table
def collect(table: Table, rows: tuple[Row, ...], sweep_dir: Path) -> tuple[list[Cell], dict[str, int]]:
    """Every (row, metric) cell from the finished jobs of the sweep, and the count of jobs per status."""
    from gan_lab.report.folders import load_run, sweep_jobs

    by_row: dict[str, list[tuple[dict, int | None]]] = {row.name: [] for row in rows}
    statuses: dict[str, int] = {}
    for job in sweep_jobs(sweep_dir):
        run = load_run(job)
        statuses[run["status"]] = statuses.get(run["status"], 0) + 1
        name = str(run["overrides"].get("experiment", "")).removeprefix(PRESET_PREFIX)
        if name in by_row and run["status"] == "finished":
            final = run["summary"].get("evaluation") or {}
            by_row[name].append((run["metrics"], final.get("samples")))
    columns = {c.key: c for c in table.columns}
    cells = []
    for row in rows:
        keys = list(row.paper) or list(row.target) or [c.key for c in table.columns]
        for key in dict.fromkeys([*keys, *row.target]):
            # A non-finite value counts (a reverse KL is infinite when no sample is of high quality). A key
            # with "*" names a metric whose full name carries the sample count and extractor.
            values = [float(v) for v in (_metric(m, key, n) for m, n in by_row[row.name]) if v is not None]
            column = columns.get(key)
            target = (bar_side(key), row.target[key]) if key in row.target else None
            cells.append(Cell(row.name, row.label, key, column.label if column else key, values, row.paper.get(key),
                              target, row.tolerance.get(key), column.digits if column else 3))
    return cells, statuses


def bar_side(key: str) -> str:
    """How a best row's value meets its bar on ``key``: ">=" where higher is better, "<=" where lower is
    (the registry's direction; a metric without one cannot have a bar)."""
    side = {Direction.HIGHER: ">=", Direction.LOWER: "<="}.get(registry.direction(key))
    if side is None:
        raise ValueError(f"{key}: a target needs a metric with a better side, not {registry.direction(key).value!r}")
    return side


def _metric(metrics: dict, key: str, samples: int | None = None) -> float | None:
    """``metrics[key]``, or a metric matching ``key`` as a glob: the one measured on ``samples`` samples (the final
    evaluation's count: a run also keeps its last in-training measurement, on fewer), else the first by name."""
    names = [key] if "*" not in key else sorted(name for name in metrics if registry.matches(key, name))
    if samples is not None:
        from gan_lab.metrics.features import n_tag

        tag = f"_{n_tag(samples)}_"
        names.sort(key=lambda name: tag not in name)  # stable: the final evaluation's first
    for name in names:
        if isinstance(metrics.get(name), (int, float)) and not isinstance(metrics.get(name), bool):
            return float(metrics[name])
    return None


def _num(value: float, digits: int) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:.{digits}f}" if math.isfinite(value) else "∞"


def title(table: Table, quick: bool) -> str:
    return f"{table.title}{' (--quick: shortened CPU training, not the published schedule)' if quick else ''}"


def markdown(table: Table, cells: list[Cell], quick: bool, seeds: int, command: str,
             statuses: dict[str, int]) -> str:
    lines = [f"# {title(table, quick)}", "", f"Source: {table.source}.", "",
             f"Command: `{command}`", "",
             f"Seeds per row: {seeds} (published: {table.seeds}). Jobs: "
             + ", ".join(f"{n} {s}" for s, n in sorted(statuses.items())) + ".", "",
             "| setup | metric | paper | lab mean ± s.e. | n | verdict |",
             "| --- | --- | --- | --- | --- | --- |"]
    previous = None
    for cell in cells:  # a row's label once, on its first metric (the best rows' labels are long)
        label = cell.label if cell.label != previous else ""
        previous = cell.label
        cells_md = (label, cell.metric, cell.paper_text, cell.lab_text, str(cell.n), cell.verdict)
        lines.append("| " + " | ".join(text.replace("|", "\\|") for text in cells_md) + " |")
    lines += ["", "Verdict: *agrees* when |lab − paper| ≤ 2·√(s.e.²_lab + s.e.²_paper) (the paper's s.e. when it "
              "publishes one) or within the row's stated tolerance; *meets*/*short* for the lab's best rows "
              "against their target.", ""]
    if table.notes:
        lines += [f"Notes: {table.notes}", ""]
    lines += [f"Cost of the full table: {table.cost}.", f"Cost of --quick: {table.quick_cost}.", ""]
    return "\n".join(lines)
