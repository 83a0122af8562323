"""The page comparing any runs, not only one sweep's: their training and metric curves overlaid, their final
metrics side by side (a sortable table), the settings in which their configs differ, and their final samples side
by side; written by ``python -m gan_lab.report RUN RUN … [--out FILE]``. A sweep folder among the arguments
stands for its jobs.
"""

from __future__ import annotations

import math
import string
from pathlib import Path

import yaml

from gan_lab.metrics import registry
from gan_lab.metrics.registry import is_band
from gan_lab.report.folders import _load, _num, _read_history, is_sweep, load_run, sweep_jobs
from gan_lab.report.markup import _fmt, _gallery, _note, _num_cell, _page, _png, _section, _sortable, esc
from gan_lab.report.run_page import curves_figure
from gan_lab.report.sweep_page import chosen_metrics

MAX_PANELS = 10  # overlaid series, one panel each
IGNORED = ("hydra.", "paths.", "trainer.enable_progress_bar", "resume")  # where a run ran, not what it ran


def expand(paths: list[Path]) -> list[Path]:
    """The run folders ``paths`` name: a run folder itself, a sweep folder's jobs; in order, once each."""
    out: list[Path] = []
    seen: set[Path] = set()
    for path in paths:
        for run in (sweep_jobs(path) if is_sweep(path) else [path]):
            if run.resolve() not in seen:
                seen.add(run.resolve())
                out.append(run)
    return out


def _flat(node, prefix: str = "") -> dict[str, object]:
    if isinstance(node, dict):
        out: dict[str, object] = {}
        for key, value in node.items():
            out.update(_flat(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: node}


def config_differences(paths: list[Path]) -> list[tuple[str, list[str]]]:
    """(key, each run's value or "—") for every composed setting (.hydra/config.yaml) not the same in all runs."""
    configs = [_flat(_load(p / ".hydra" / "config.yaml", yaml.safe_load) or {}) for p in paths]
    keys = sorted(set().union(*configs)) if configs else []
    out = []
    for key in keys:
        if key.startswith(IGNORED):
            continue
        values = [_fmt(c[key]) if key in c else "—" for c in configs]
        if len(set(values)) > 1:
            out.append((key, values))
    return out


def labels(n: int) -> list[str]:
    """A, B, …, Z, AA, AB, … : short names for the runs in the plots and tables."""
    letters = string.ascii_uppercase
    return [letters[i] if i < 26 else letters[i // 26 - 1] + letters[i % 26] for i in range(n)]


def overlaid_series(histories: list[list[dict]]) -> list[str]:
    """The series to overlay, that some run has (finite somewhere), up to MAX_PANELS: the losses, then the
    measurements (val/*), then D's outputs and the gradient norms, then every other train/* series."""
    present = []
    for history in histories:
        for row in history:
            present += [k for k in row if k not in present and math.isfinite(_num(row[k]))]
    groups = registry.curve_groups()
    order = [*groups[registry.LOSSES], *(k for k in present if k.startswith("val/")),
             *(n for names in groups.values() for n in names), *(k for k in present if k.startswith("train/"))]
    return [k for k in dict.fromkeys(order) if k in present and not is_band(k)][:MAX_PANELS]


def _curves(names: list[str], histories: list[list[dict]], tags: list[str]) -> str:
    panels = [(name, [(history, name, tag) for tag, history in zip(tags, histories)]) for name in names]
    return curves_figure(panels, "curves of every run overlaid")


def _runs_table(runs: list[dict], tags: list[str], diffs: list[tuple[str, list[str]]]) -> str:
    """One row per run: its tag, folder, status, wall time, the settings that differ, every final metric."""
    metrics = list(dict.fromkeys([*chosen_metrics(runs), *(k for r in runs for k in r["metrics"])]))
    head = ["run", "folder", "status", "wall time (s)", *(k for k, _ in diffs), *metrics]
    body = []
    for i, (tag, run) in enumerate(zip(tags, runs)):
        cls = "ok" if run["status"] == "finished" else "bad"
        cells = [f"<td>{esc(tag)}</td>", f"<td>{esc(run['path'])}</td>", f'<td class="{cls}">{esc(run["status"])}</td>',
                 f"<td class=\"num\">{esc(_fmt(run['summary'].get('wall_time_s', '')))}</td>"]
        cells += [f"<td>{esc(values[i])}</td>" for _, values in diffs]
        for name in metrics:
            value = run["metrics"].get(name)
            cells.append(_num_cell(_num(value), "" if value is None else _fmt(value)))
        body.append("<tr>" + "".join(cells) + "</tr>")
    return _sortable("comparison", head, body)


def _samples(runs: list[dict], tags: list[str]) -> str:
    items = [(f"{tag}: {run['name']}", data) for tag, run in zip(tags, runs)
             if (data := _png(run["path"] / "samples" / "final.png")) or (data := _png(run["path"] / "scatter.png"))]
    return _gallery(items) if items else _note("No final samples (samples/final.png) in these runs.")


def write_comparison(paths: list[Path], out: Path) -> Path:
    """One self-contained page comparing the runs in ``paths`` (sweep folders stand for their jobs), at ``out``."""
    folders = expand(paths)
    runs = [load_run(p) for p in folders]
    tags = labels(len(runs))
    histories = [_read_history(p / "history.jsonl") for p in folders]
    diffs = config_differences(folders)
    same = _note("The composed configs are the same (the runs differ only in where or when they ran).")
    body = "".join([
        f"<h1>Comparison of {len(runs)} runs</h1>",
        "<ul>" + "".join(f"<li><b>{esc(t)}</b>: <code>{esc(r['path'])}</code> ({esc(r['status'])})</li>"
                         for t, r in zip(tags, runs)) + "</ul>",
        _section("Final samples, side by side", _samples(runs, tags), "samples"),
        _section("Final metrics and the settings that differ (click a header to sort)",
                 _runs_table(runs, tags, diffs), "metrics"),
        _section("Curves, every run overlaid", _curves(overlaid_series(histories), histories, tags), "curves"),
        _section("Config differences",
                 _table_of_differences(diffs, tags) if diffs else same, "config"),
    ])
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(_page(f"gan_lab comparison of {len(runs)} runs", body), encoding="utf-8")
    return out


def _table_of_differences(diffs: list[tuple[str, list[str]]], tags: list[str]) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in ("setting", *tags))
    rows = "".join("<tr><td><code>" + esc(k) + "</code></td>" + "".join(f"<td>{esc(v)}</td>" for v in values)
                   + "</tr>" for k, values in diffs)
    return (f'<div class="scroll"><table id="differences"><thead><tr>{head}</tr></thead>'
            f"<tbody>{rows}</tbody></table></div>")
