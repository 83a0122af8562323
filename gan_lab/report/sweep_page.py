"""The page of a sweep: a sortable leaderboard of its jobs (swept overrides, status, final metrics, final
samples) and plots of the chosen metrics against each swept key, written as ``<sweep folder>/report.html``
after each job's own page.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from urllib.parse import quote

import yaml
from matplotlib.figure import Figure

from gan_lab.metrics import registry
from gan_lab.report.folders import _load, _num, load_run, sweep_jobs
from gan_lab.report.markup import (
    _fig_png,
    _fmt,
    _gallery,
    _img,
    _note,
    _num_cell,
    _page,
    _section,
    _sortable,
    _thumbnail,
    esc,
)
from gan_lab.report.run_page import _largest_n, write_run_report

MAX_METRIC_PLOTS = 4


def chosen_metrics(runs: list[dict]) -> list[str]:
    """The metrics present (finite in some job) whose registry family heads the sweep page, in the registry's
    order, up to MAX_METRIC_PLOTS of them."""
    names = _largest_n(list(dict.fromkeys(k for r in runs for k, v in r["metrics"].items()
                                          if math.isfinite(_num(v)))))
    return registry.headline(names, registry.Report.SWEEP)[:MAX_METRIC_PLOTS]


def _as_float(text: str) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def _metric_vs_key(runs: list[dict], key: str, metric: str) -> bytes | None:
    levels = list(dict.fromkeys(r["overrides"][key] for r in runs if key in r["overrides"]))
    pts = [(r["overrides"][key], _num(r["metrics"].get(metric))) for r in runs if key in r["overrides"]]
    pts = [(x, y) for x, y in pts if math.isfinite(y)]
    if not pts:
        return None
    numeric = all(_as_float(v) is not None for v in levels)
    pos = {v: _as_float(v) for v in levels} if numeric else {v: float(i) for i, v in enumerate(levels)}
    fig = Figure(figsize=(3.8, 2.9), layout="constrained")
    ax = fig.subplots()
    ax.scatter([pos[x] for x, _ in pts], [y for _, y in pts], s=22, alpha=0.8)
    means = sorted((pos[v], sum(ys) / len(ys)) for v in levels if (ys := [y for x, y in pts if x == v]))
    ax.plot([m[0] for m in means], [m[1] for m in means], "-", alpha=0.5, label="mean")
    if numeric and min(pos.values()) > 0 and max(pos.values()) / min(pos.values()) >= 100:
        ax.set_xscale("log")
    if numeric and len(levels) <= 8:
        ax.set_xticks(sorted(pos.values()), [str(v) for v in sorted(levels, key=pos.get)], fontsize=8)
    if not numeric:
        ax.set_xticks(range(len(levels)), [v if len(v) <= 14 else v[:13] + "…" for v in levels],
                      rotation=30 if len(levels) > 3 else 0, fontsize=8)
    ax.set_xlabel(key, fontsize=9)
    ax.set_ylabel(metric, fontsize=9)
    ax.set_title(f"{metric} vs {key}", fontsize=9)
    ax.grid(alpha=0.3)
    return _fig_png(fig)


def _sweep_plots(runs: list[dict], swept: list[str], metrics: list[str]) -> str:
    items = []
    for key in swept:
        if len({r["overrides"][key] for r in runs if key in r["overrides"]}) < 2:
            continue
        for metric in metrics:
            if (png := _metric_vs_key(runs, key, metric)) is not None:
                items.append((f"{metric} vs {key}", png))
    return _gallery(items) if items else _note("No swept key with two or more values and a numeric metric.")


def _leader_row(run: dict, swept: list[str], metrics: list[str], best_column: bool = False) -> str:
    thumb = _thumbnail(run["path"] / "samples" / "final.png")
    cells = [f'<td data-v="">{_img(thumb, "final samples", "thumb") if thumb else ""}</td>',
             f'<td><a href="{esc(quote(run["name"]) + "/report.html")}">{esc(run["name"])}</a></td>']
    cells += [f"<td>{esc(run['overrides'].get(k, ''))}</td>" for k in swept]
    cls = "ok" if run["status"] == "finished" else "bad"
    cells.append(f'<td class="{cls}">{esc(run["status"])}</td>')
    for name in metrics:
        value = run["metrics"].get(name)
        cells.append(_num_cell(_num(value), "" if value is None else _fmt(value)))
    if best_column:
        best = _best(run)
        cells.append(_num_cell(math.nan, "") if best is None else
                     _num_cell(_num(best["value"]), f"{_fmt(best['value'])} at {best['iteration']}"))
    return "<tr>" + "".join(cells) + "</tr>"


def _best(run: dict) -> dict | None:
    """The run's ``eval.best`` entry (metrics.json ``best``), or None."""
    best = run.get("summary", {}).get("best")
    return best if isinstance(best, dict) and isinstance(best.get("value"), (int, float)) else None


def _leaderboard(runs: list[dict], swept: list[str], metrics: list[str]) -> str:
    """One row per job; with a column of each job's best in-training measurement where the jobs kept one
    (``eval.best``), since a GAN's last iteration is often not its best."""
    followed = sorted({b["metric"] for run in runs if (b := _best(run)) is not None})
    head = ["samples", "job", *swept, "status", *metrics]
    if followed:
        head.append(f"best {followed[0]} (iteration)" if len(followed) == 1 else "best in training (iteration)")
    return _sortable("leaderboard", head, [_leader_row(run, swept, metrics, bool(followed)) for run in runs])


def _sweep_header(path: Path, runs: list[dict], fixed: dict) -> str:
    multirun = _load(path / "multirun.yaml", yaml.safe_load)
    try:
        task = list(multirun["hydra"]["overrides"]["task"] or [])
    except (TypeError, KeyError):
        task = []
    statuses = list(dict.fromkeys(r["status"] for r in runs))
    counts = ", ".join(f"{sum(r['status'] == s for r in runs)} {s}" for s in statuses)
    parts = [f"<h1>Sweep: {esc(path.name)}</h1>", f'<p class="path">{esc(path)}</p>',
             f"<p>{len(runs)} jobs{': ' + esc(counts) if counts else ''}.</p>"]
    if task:
        parts.append(f"<p>Command: <code>python -m gan_lab -m {esc(' '.join(map(str, task)))}</code></p>")
    if fixed:
        parts.append("<p>Same in every job: " + ", ".join(f"<code>{esc(k)}={esc(v)}</code>"
                                                          for k, v in fixed.items()) + "</p>")
    return "".join(parts)


def _reproduction(path: Path) -> str:
    """The reproduced table (``python -m gan_lab.reproduce``) when the sweep is one: paper beside lab."""
    data = _load(path / "reproduction.json", json.loads)
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        return ""
    rows = []
    for c in data["cells"]:  # the texts table.md shows (gan_lab/reproduce, Cell.paper_text / lab_text)
        paper, lab = c.get("paper_text", "—"), c.get("lab_text", "—")
        rows.append(f'<tr class="{esc(c["verdict"]).replace(" ", "-")}"><td>{esc(c["label"])}</td>'
                    f"<td>{esc(c['metric'])}</td><td>{esc(paper)}</td><td>{esc(lab)}</td>"
                    f"<td>{c.get('n', 0)}</td><td>{esc(c['verdict'])}</td></tr>")
    head = "".join(f"<th>{h}</th>" for h in ("setup", "metric", "paper", "lab mean ± s.e.", "n", "verdict"))
    return _section(f"Reproduction: {data.get('title', '')}",
                    f"<p>{esc(data.get('source', ''))}</p><p>Command: <code>{esc(data.get('command', ''))}</code></p>"
                    f'<div class="scroll"><table id="reproduction"><thead><tr>{head}</tr></thead>'
                    f"<tbody>{''.join(rows)}</tbody></table></div>"
                    + _note("agrees: |lab − paper| ≤ 2·√(s.e.²_lab + s.e.²_paper) or within the row's tolerance; "
                            "meets/short: the lab's best rows against their target. The same table is in table.md."),
                    "reproduction")


def mean_se(values: list[float]) -> tuple[float, float]:
    """(mean, standard error of the mean s/√n, NaN for one value) of the finite values."""
    xs = [v for v in values if math.isfinite(v)]
    if not xs:
        return math.nan, math.nan
    return statistics.fmean(xs), (statistics.stdev(xs) / math.sqrt(len(xs)) if len(xs) > 1 else math.nan)


def seed_groups(runs: list[dict], swept: list[str]) -> list[tuple[dict, list[dict]]]:
    """The jobs grouped by their overrides other than ``seed``: (the configuration, its jobs), in first-seen order."""
    groups: dict[tuple, tuple[dict, list[dict]]] = {}
    for run in runs:
        config = {k: run["overrides"].get(k, "") for k in swept if k != "seed"}
        groups.setdefault(tuple(config.items()), (config, []))[1].append(run)
    return list(groups.values())


def _by_configuration(runs: list[dict], swept: list[str], metrics: list[str]) -> str:
    """Jobs that differ only by seed, as one row: n seeds and each metric's mean ± s.e. over them (finished jobs)."""
    if "seed" not in swept:
        return ""
    groups = seed_groups(runs, swept)
    if all(len(members) < 2 for _, members in groups):
        return ""
    keys = [k for k in swept if k != "seed"]
    rows = []
    for config, members in groups:
        done = [r for r in members if r["status"] == "finished"]
        cells = [f"<td>{esc(config[k])}</td>" for k in keys]
        cells.append(f'<td class="num">{len(done)} of {len(members)}</td>')
        for name in metrics:
            mean, se = mean_se([_num(r["metrics"].get(name)) for r in done])
            text = "" if math.isnan(mean) else _fmt(mean) + ("" if math.isnan(se) else f" ± {_fmt(se)}")
            cells.append(_num_cell(mean, text))
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return _section("By configuration: mean ± s.e. over seeds",
                    _sortable("by-configuration", [*keys, "seeds", *metrics], rows)
                    + _note("s.e. = s/√n over the finished seeds of each configuration."), "by-configuration")


def write_sweep_report(path: Path) -> Path:
    runs = [load_run(p) for p in sweep_jobs(path)]
    for run in runs:
        write_run_report(run["path"], back="../report.html")
    keys = list(dict.fromkeys(k for r in runs for k in r["overrides"]))
    values = {k: [r["overrides"].get(k) for r in runs] for k in keys}
    fixed = {k: v[0] for k, v in values.items() if len(set(v)) == 1 and v[0] is not None and len(runs) > 1}
    swept = [k for k in keys if k not in fixed]
    plotted = chosen_metrics(runs)
    every = list(dict.fromkeys([*plotted, *(k for r in runs for k in r["metrics"])]))
    body = "".join([
        _sweep_header(path, runs, fixed),
        _reproduction(path),
        _by_configuration(runs, swept, plotted),
        _section("Leaderboard", _leaderboard(runs, swept, every) if runs else _note("No jobs."), "leaderboard"),
        _section("Metric against each swept key", _sweep_plots(runs, swept, plotted), "plots"),
    ])
    out = path / "report.html"
    out.write_text(_page(f"gan_lab sweep: {path.name}", body), encoding="utf-8")
    return out
