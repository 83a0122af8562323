"""``python -m gan_lab.report FOLDER``: one self-contained HTML page for a run folder or a sweep folder.

Everything is inline (CSS, a few lines of vanilla JS that sort the leaderboard, and every picture as a base64
PNG data URI, the plots drawn here with matplotlib), so a page opens offline and travels as one file.
"""

from __future__ import annotations

import argparse
import base64
import fnmatch
import html
import io
import json
import math
import re
import sys
from pathlib import Path
from urllib.parse import quote

import yaml
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

CURVE_GROUPS = {
    "losses": ("train/d_loss", "train/g_loss", "train/d_penalty"),
    "D outputs": ("train/d_real", "train/d_fake", "train/wasserstein_estimate", "train/divergence_estimate"),
    "gradient norms": ("train/grad_norm_d", "train/grad_norm_g"),
}
# The sweep plots show the first present of these (in this order), up to MAX_METRIC_PLOTS of them.
PREFERRED = ("fid_*", "toy/modes_captured", "toy/reverse_kl", "toy/w1", "train/wasserstein_estimate",
             "train/d_loss", "train/g_loss")
MAX_METRIC_PLOTS = 4
MAX_EXTRA_PANELS = 12  # train/* and val/* series outside CURVE_GROUPS, one panel each
MAX_FRAMES = 40  # sample pictures over time; evenly thinned beyond this, first and last kept
THUMB_PX = 128
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.5em 2em;color:#222;background:#fff}
h1{font-size:1.4em;word-break:break-all}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}
.path,.note{color:#666;font-size:.9em}code{background:#f3f3f3;padding:0 .25em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
th,td{border:1px solid #ddd;padding:.25em .5em;text-align:left;vertical-align:middle}
th{background:#f4f6f8}td.num{text-align:right;font-variant-numeric:tabular-nums}
table.sortable th{cursor:pointer;user-select:none;white-space:nowrap}
table.sortable th[data-dir=asc]::after{content:" \\25B2"}table.sortable th[data-dir=desc]::after{content:" \\25BC"}
tbody tr:nth-child(even){background:#fafafa}.scroll{overflow-x:auto}
.ok{color:#1a7f37;font-weight:600}.bad{color:#cf222e;font-weight:600}
.gallery{display:flex;flex-wrap:wrap;gap:12px}.gallery figure{margin:0;text-align:center}
.gallery img{max-width:300px;border:1px solid #ddd;cursor:zoom-in}.gallery img.big{max-width:none;cursor:zoom-out}
figcaption{font-size:.8em;color:#555}img.thumb{width:96px;height:96px;object-fit:contain;border:1px solid #ddd}
img.wide{max-width:100%}pre{background:#f6f8fa;padding:1em;overflow:auto;font-size:.8em;max-height:40em}
"""

SCRIPT = """
function sortBy(th){
  const tr=th.parentNode, i=[...tr.children].indexOf(th), body=th.closest('table').tBodies[0];
  const asc=th.dataset.dir!=='asc'; [...tr.children].forEach(h=>delete h.dataset.dir); th.dataset.dir=asc?'asc':'desc';
  const val=r=>{const c=r.cells[i]; return c.dataset.v!==undefined?c.dataset.v:c.textContent.trim();};
  const rows=[...body.rows].sort((a,b)=>{
    const x=val(a), y=val(b); if(x===''||y==='') return (x==='')-(y==='');
    const nx=Number(x), ny=Number(y);
    const c=(!isNaN(nx)&&!isNaN(ny))?(nx===ny?0:(nx<ny?-1:1)):x.localeCompare(y,undefined,{numeric:true});
    return asc?c:-c;});
  rows.forEach(r=>body.appendChild(r));}
document.querySelectorAll('table.sortable th').forEach(th=>th.addEventListener('click',()=>sortBy(th)));
document.querySelectorAll('.gallery img').forEach(im=>im.addEventListener('click',()=>im.classList.toggle('big')));
"""


class NotAReportFolder(ValueError):
    """The folder holds neither a run (metrics.json or .hydra/) nor a sweep (multirun.yaml or run subfolders)."""


def esc(value) -> str:
    return html.escape(str(value))


def is_run(path: Path) -> bool:
    return (path / "metrics.json").is_file() or (path / ".hydra").is_dir()


def _job_order(path: Path) -> tuple:
    m = re.match(r"(\d+)_", path.name)
    return (0, int(m.group(1)), path.name) if m else (1, 0, path.name)


def sweep_jobs(path: Path) -> list[Path]:
    return sorted((p for p in path.iterdir() if p.is_dir() and is_run(p)), key=_job_order)


def is_sweep(path: Path) -> bool:
    return not is_run(path) and ((path / "multirun.yaml").is_file() or bool(sweep_jobs(path)))


def _load(path: Path, parse):
    """``parse(text of path)``, or None when the file is missing or does not parse."""
    try:
        return parse(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):
        return None


def _json_line(line: str):
    try:
        return json.loads(line)
    except ValueError:
        return None


def _read_history(path: Path) -> list[dict]:
    rows = [_json_line(line) for line in _load(path, str.splitlines) or []]
    return [row for row in rows if isinstance(row, dict) and "iteration" in row]


def load_run(path: Path) -> dict:
    """What the pages need of one run folder; a job without metrics.json is 'failed'."""
    summary = _load(path / "metrics.json", json.loads)
    summary = summary if isinstance(summary, dict) else {}
    listed = _load(path / ".hydra" / "overrides.yaml", yaml.safe_load)
    overrides = [tuple(str(s).split("=", 1)) if "=" in str(s) else (str(s), "") for s in listed or []]
    metrics = summary.get("metrics") if isinstance(summary.get("metrics"), dict) else {}
    return {"path": path, "name": path.name, "summary": summary, "overrides": dict(overrides),
            "status": str(summary.get("status", "unknown")) if summary else "failed", "metrics": metrics}


def _num(value) -> float:
    """A float for numbers (bools excluded), NaN for anything else."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _protocol(name: str, protocols: dict) -> str:
    """The protocol of a metric: an exact key, or a key (or comma-separated part) matching as a glob like toy/*."""
    if name in protocols:
        return str(protocols[name])
    for key, text in protocols.items():
        if any(fnmatch.fnmatchcase(name, part.strip()) for part in str(key).split(",")):
            return str(text)
    return ""


def _fig_png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()


def _png(path: Path) -> bytes | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return data if data.startswith(PNG_SIGNATURE) else None


def _thumbnail(path: Path) -> bytes | None:
    from PIL import Image

    try:
        with Image.open(path) as im:
            small = im.convert("RGB")
            small.thumbnail((THUMB_PX, THUMB_PX))
            buf = io.BytesIO()
            small.save(buf, format="PNG")
            return buf.getvalue()
    except (OSError, ValueError):
        return None


def _img(data: bytes, alt: str, cls: str = "") -> str:
    uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    klass = f' class="{cls}"' if cls else ""
    return f'<img src="{uri}" alt="{esc(alt)}"{klass}>'


def _gallery(items: list[tuple[str, bytes]]) -> str:
    figures = "".join(f"<figure>{_img(data, caption)}<figcaption>{esc(caption)}</figcaption></figure>"
                      for caption, data in items)
    return f'<div class="gallery">{figures}</div>'


def _table(headers, rows) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _section(title: str, content: str, anchor: str) -> str:
    return f'<section id="{anchor}"><h2>{esc(title)}</h2>{content}</section>'


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
            f"<style>{CSS}</style></head><body>\n{body}\n<script>{SCRIPT}</script></body></html>\n")


def _note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


def _summary_table(run: dict) -> str:
    rows = [("status", run["status"])]
    rows += [(k, _fmt(v)) for k, v in run["summary"].items() if k not in ("status", "metrics", "protocols")]
    if not run["summary"]:
        rows.append(("metrics.json", "missing: the run did not finish"))
    return _table(("field", "value"), rows)


def _metrics_table(run: dict) -> str:
    if not run["metrics"]:
        return _note("No final metrics.")
    protocols = run["summary"].get("protocols") or {}
    rows = [(name, _fmt(value), _protocol(name, protocols)) for name, value in run["metrics"].items()]
    return _table(("metric", "value", "protocol"), rows)


def _series(history: list[dict], name: str) -> tuple[list[float], list[float]]:
    pts = [(_num(row["iteration"]), _num(row[name])) for row in history if name in row]
    return [x for x, _ in pts], [y if math.isfinite(y) else math.nan for _, y in pts]


def curve_panels(history: list[dict]) -> list[tuple[str, list[str]]]:
    """One panel per group of CURVE_GROUPS present, then one per remaining train/* or val/* series."""
    keys = [k for k in dict.fromkeys(k for row in history for k in row)
            if any(math.isfinite(y) for y in _series(history, k)[1])]
    panels = [(title, [n for n in names if n in keys]) for title, names in CURVE_GROUPS.items()]
    grouped = {n for names in CURVE_GROUPS.values() for n in names}
    rest = [k for k in keys if k.startswith(("train/", "val/")) and k not in grouped]
    return [(t, names) for t, names in panels if names] + [(k, [k]) for k in rest[:MAX_EXTRA_PANELS]]


def _curves(path: Path) -> str:
    history = _read_history(path / "history.jsonl")
    panels = curve_panels(history)
    if not panels:
        return _note("No history.jsonl rows to plot.")
    cols = 2 if len(panels) > 1 else 1
    rows = math.ceil(len(panels) / cols)
    fig = Figure(figsize=(6 * cols, 3 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (title, names) in zip(axes, panels):
        for name in names:
            xs, ys = _series(history, name)
            ax.plot(xs, ys, marker="." if len(xs) <= 30 else None, label=name)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("generator iteration", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    return _img(_fig_png(fig), "metric curves over training", "wide")


def sample_frames(path: Path) -> tuple[list[tuple[str, Path]], int]:
    """samples/iter_*.png in iteration order (thinned to MAX_FRAMES), then samples/final.png; and the iter count."""
    found = [(int(m.group(1)), p) for p in (path / "samples").glob("iter_*.png")
             if (m := re.fullmatch(r"iter_(\d+)\.png", p.name))]
    found.sort()
    chosen = ([found[round(i * (len(found) - 1) / (MAX_FRAMES - 1))] for i in range(MAX_FRAMES)]
              if len(found) > MAX_FRAMES else found)
    frames = [(f"iteration {i}", p) for i, p in chosen]
    if (path / "samples" / "final.png").is_file():
        frames.append(("final", path / "samples" / "final.png"))
    return frames, len(found)


def _samples(path: Path) -> str:
    frames, total = sample_frames(path)
    items = [(caption, data) for caption, p in frames if (data := _png(p))]
    if not items:
        return _note("No sample pictures in samples/.")
    shown = sum(1 for caption, _ in items if caption != "final")
    thinned = _note(f"Showing {shown} of {total} sample pictures, evenly spaced.") if shown < total else ""
    return thinned + _gallery(items)


def _pictures(path: Path) -> str:
    items = [(p.name, data) for p in sorted(path.glob("*.png")) if (data := _png(p))]
    return _gallery(items) if items else _note("No other pictures.")


def _config(path: Path) -> str:
    text = _load(path / ".hydra" / "config.yaml", str)
    return _note("No .hydra/config.yaml.") if text is None else f"<pre>{esc(text)}</pre>"


def write_run_report(path: Path, back: str | None = None) -> Path:
    run = load_run(path)
    title = " ".join(f"{k}={v}" for k, v in run["overrides"].items()) or path.name
    nav = f'<p><a href="{esc(back)}">&larr; sweep</a></p>' if back else ""
    body = "".join([
        nav, f"<h1>Run: {esc(title)}</h1>", f'<p class="path">{esc(path)}</p>',
        _section("Summary", _summary_table(run), "summary"),
        _section("Final metrics", _metrics_table(run), "metrics"),
        _section("Metric curves", _curves(path), "curves"),
        _section("Samples over training", _samples(path), "samples"),
        _section("Pictures", _pictures(path), "pictures"),
        _section("Composed config (.hydra/config.yaml)", _config(path), "config"),
    ])
    out = path / "report.html"
    out.write_text(_page(f"gan_lab run: {title}", body), encoding="utf-8")
    return out


def chosen_metrics(runs: list[dict]) -> list[str]:
    """The first present (finite in some job) of PREFERRED, up to MAX_METRIC_PLOTS of them."""
    names = list(dict.fromkeys(k for r in runs for k, v in r["metrics"].items() if math.isfinite(_num(v))))
    chosen: list[str] = []
    for pattern in PREFERRED:
        chosen += [n for n in names if fnmatch.fnmatchcase(n, pattern) and n not in chosen]
    return chosen[:MAX_METRIC_PLOTS]


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


def _leader_row(run: dict, swept: list[str], metrics: list[str]) -> str:
    thumb = _thumbnail(run["path"] / "samples" / "final.png")
    cells = [f'<td data-v="">{_img(thumb, "final samples", "thumb") if thumb else ""}</td>',
             f'<td><a href="{esc(quote(run["name"]) + "/report.html")}">{esc(run["name"])}</a></td>']
    cells += [f"<td>{esc(run['overrides'].get(k, ''))}</td>" for k in swept]
    cls = "ok" if run["status"] == "finished" else "bad"
    cells.append(f'<td class="{cls}">{esc(run["status"])}</td>')
    for name in metrics:
        value = run["metrics"].get(name)
        if value is None:
            cells.append('<td data-v=""></td>')
        else:
            v = _num(value)
            sort = "" if math.isnan(v) else repr(v).replace("inf", "Infinity")
            cells.append(f'<td class="num" data-v="{esc(sort)}">{esc(_fmt(value))}</td>')
    return "<tr>" + "".join(cells) + "</tr>"


def _leaderboard(runs: list[dict], swept: list[str], metrics: list[str]) -> str:
    head = ["samples", "job", *swept, "status", *metrics]
    ths = "".join(f'<th title="click to sort">{esc(h)}</th>' for h in head)
    rows = "".join(_leader_row(run, swept, metrics) for run in runs)
    return (f'<div class="scroll"><table class="sortable" id="leaderboard"><thead><tr>{ths}</tr></thead>'
            f"<tbody>{rows}</tbody></table></div>")


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
        _section("Leaderboard", _leaderboard(runs, swept, every) if runs else _note("No jobs."), "leaderboard"),
        _section("Metric against each swept key", _sweep_plots(runs, swept, plotted), "plots"),
    ])
    out = path / "report.html"
    out.write_text(_page(f"gan_lab sweep: {path.name}", body), encoding="utf-8")
    return out


def write_report(path) -> Path:
    """Write ``<path>/report.html`` for a run folder, or for a sweep folder (and each job's own); return it."""
    path = Path(path)
    if path.is_dir() and is_run(path):
        return write_run_report(path)
    if path.is_dir() and is_sweep(path):
        return write_sweep_report(path)
    if not path.exists():
        raise NotAReportFolder(f"{path} does not exist")
    raise NotAReportFolder(f"{path} is neither a run folder (metrics.json or .hydra/) "
                           "nor a sweep folder (multirun.yaml or run subfolders)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gan_lab.report",
                                     description="Write a self-contained report.html for a run or sweep folder.")
    parser.add_argument("folder", type=Path, help="a run folder or a multirun sweep folder")
    args = parser.parse_args(argv)
    try:
        out = write_report(args.folder)
    except NotAReportFolder as e:
        print(f"gan_lab: error: {e}", file=sys.stderr)
        sys.exit(2)
    print(f"gan_lab: report {out}")


if __name__ == "__main__":
    main()
