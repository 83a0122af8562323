"""The page of one run: its summary, final metrics with their protocols, metric curves over training, sample
pictures over time, its other pictures and the composed config, written as ``<run folder>/report.html``.
"""

from __future__ import annotations

import fnmatch
import math
import re
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from gan_lab.filters import TITLES
from gan_lab.metrics import registry
from gan_lab.metrics.registry import band_of, is_band
from gan_lab.report.folders import _load, _num, _read_history, load_run
from gan_lab.report.markup import _fig_png, _fmt, _gallery, _img, _note, _page, _png, _section, _table, esc
from gan_lab.viz import series

MAX_EXTRA_PANELS = 12  # train/* and val/* series outside the registry's curve groups, one panel each
MAX_FRAMES = 40  # sample pictures over time; evenly thinned beyond this, first and last kept
SMOOTH_FROM = 20  # a training series of more points is drawn smoothed, the raw series faint behind


def smoothed(ys: list[float]) -> list[float]:
    """A centred moving average over about a twentieth of the series (at least 3 points); NaNs are skipped."""
    half = max(1, len(ys) // 40)
    out = []
    for i in range(len(ys)):
        window = [y for y in ys[max(0, i - half): i + half + 1] if math.isfinite(y)]
        out.append(sum(window) / len(window) if window else math.nan)
    return out


def plot_with_band(ax, history: list[dict], name: str, label: str) -> None:
    """``name`` over training: a training series of many rows smoothed, with the raw one faint behind; a
    measurement with ±1 std shaded where its std series (:func:`band_of`) has values."""
    xs, ys = _series(history, name)
    if not xs:
        return
    if name.startswith("train/") and len(xs) > SMOOTH_FROM:
        (line,) = ax.plot(xs, smoothed(ys), label=f"{label} (smoothed)")
        ax.plot(xs, ys, color=line.get_color(), alpha=0.25, linewidth=0.8)
        return
    (line,) = ax.plot(xs, ys, marker="." if len(xs) <= 30 else None, label=label)
    band = band_of(name)
    if band is not None:
        std = dict(zip(*_series(history, band)))
        pts = [(x, y, std[x]) for x, y in zip(xs, ys) if x in std and math.isfinite(std[x])]
        if pts:
            ax.fill_between([p[0] for p in pts], [p[1] - p[2] for p in pts], [p[1] + p[2] for p in pts],
                            color=line.get_color(), alpha=0.2, linewidth=0)


def _protocol(name: str, protocols: dict) -> str:
    """The protocol of a metric: an exact key, or a key (or comma-separated part) matching as a glob like toy/*."""
    if name in protocols:
        return str(protocols[name])
    for key, text in protocols.items():
        if any(fnmatch.fnmatchcase(name, part.strip()) for part in str(key).split(",")):
            return str(text)
    return ""


def _summary_table(run: dict) -> str:
    rows = [("status", run["status"])]
    rows += [(k, _fmt(v)) for k, v in run["summary"].items()
             if k not in ("status", "metrics", "protocols", "per_class")]
    if not run["summary"]:
        rows.append(("metrics.json", "missing: the run did not finish"))
    return _table(("field", "value"), rows)


def _metrics_table(run: dict) -> str:
    """Every final metric, grouped by protocol: each protocol stated once, above the metrics measured under it."""
    if not run["metrics"]:
        return _note("No final metrics.")
    protocols = run["summary"].get("protocols") or {}
    groups: dict[str, list[tuple[str, object]]] = {}
    for name, value in run["metrics"].items():
        groups.setdefault(_protocol(name, protocols), []).append((name, value))
    parts = []
    for protocol, items in sorted(groups.items(), key=lambda kv: kv[0] == ""):  # the unexplained last
        head = f'<p class="protocol">{esc(protocol)}</p>' if protocol else ""
        parts.append(head + _table(("metric", "value"), [(name, _fmt(value)) for name, value in items]))
    return "".join(parts)


_SAMPLE_TAG = re.compile(r"^(.+?)_(\d+)(k?)_(.+)$")  # val/fid_5k_mnist5k_classifier: metric, n, extractor


def _largest_n(names: list[str]) -> list[str]:
    """Of the same metric on the same extractor at several sample counts (the last in-training value at 1k, the
    final evaluation at 5k), keep the one with the most samples."""
    best: dict[tuple[str, str], tuple[int, str]] = {}
    for name in names:
        m = _SAMPLE_TAG.match(name)
        if m is None:
            continue
        n = int(m.group(2)) * (1000 if m.group(3) else 1)
        key = (m.group(1), m.group(4))
        if key not in best or n > best[key][0]:
            best[key] = (n, name)
    kept = {name for _, name in best.values()}
    return [n for n in names if _SAMPLE_TAG.match(n) is None or n in kept]


def headline(metrics: dict) -> list[tuple[str, str]]:
    """(name, value with its uncertainty) for the first screen: KID and IS as mean ± std (their std series)."""
    out = []
    for name in registry.headline(_largest_n([n for n in metrics if isinstance(metrics[n], (int, float))])):
        text, band = _fmt(metrics[name]), band_of(name)
        if band is not None and isinstance(metrics.get(band), (int, float)):
            text += f" ± {_fmt(metrics[band])}"
        out.append((name, text))
    return out


def _first_screen(path: Path, run: dict) -> str:
    """What a reader wants first: the final samples (or the toy scatter), status and wall time, the headline
    metrics with their uncertainty."""
    picture = _png(path / "samples" / "final.png") or _png(path / "scatter.png")
    s = run["summary"]
    facts = [("status", run["status"]), ("iterations", _fmt(s.get("iterations", ""))),
             ("wall time (s)", _fmt(s.get("wall_time_s", "")))]
    if isinstance(s.get("best"), dict):  # eval.best: where the run was at its best in-training measurement
        b = s["best"]
        facts.append((f"best {b['metric']}", f"{_fmt(b['value'])} at iteration {b['iteration']} ({b['checkpoint']})"))
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in facts + headline(run["metrics"]))
    image = _img(picture, "final samples") if picture else _note("No final samples.")
    return f'<div class="first">{image}<table class="headline"><tbody>{rows}</tbody></table></div>'



def _per_class(run: dict) -> str:
    """A class-conditional run's metrics per class (metrics.json ``per_class``): one row per class."""
    per = run["summary"].get("per_class") or {}
    if not per:
        return ""
    names = sorted(per)
    k = max(len(v) for v in per.values())
    rows = [(str(c), *(_fmt(per[n][c]) if c < len(per[n]) else "" for n in names)) for c in range(k)]
    return _section("Per class (samples/final.png: one row per class)", _table(("class", *names), rows), "classes")


def _series(history: list[dict], name: str) -> tuple[list[float], list[float]]:
    xs, ys = series(history, name)  # the rows that carry it: no gaps at evaluation rows
    return [_num(x) for x in xs], [y if math.isfinite(y := _num(v)) else math.nan for v in ys]


def curve_panels(history: list[dict]) -> list[tuple[str, list[str]]]:
    """One panel per curve group of the registry present, then one per remaining train/* or val/* series."""
    keys = [k for k in dict.fromkeys(k for row in history for k in row)
            if any(math.isfinite(y) for y in _series(history, k)[1])]
    groups = registry.curve_groups()
    panels = [(title, [n for n in names if n in keys]) for title, names in groups.items()]
    grouped = {n for names in groups.values() for n in names}
    rest = [k for k in keys if k.startswith(("train/", "val/")) and k not in grouped and not is_band(k)]
    return [(t, names) for t, names in panels if names] + [(k, [k]) for k in rest[:MAX_EXTRA_PANELS]]


def curves_figure(panels: list[tuple[str, list[tuple[list[dict], str, str]]]], alt: str) -> str:
    """One figure, two panels a row: each (title, its lines), a line (history, series name, legend label) drawn by
    :func:`plot_with_band`."""
    if not panels:
        return _note("No history.jsonl rows to plot.")
    cols = 2 if len(panels) > 1 else 1
    rows = math.ceil(len(panels) / cols)
    # fixed margins (inches) instead of a layout engine, which measures every tick label again (~half the drawing)
    width, height = 6 * cols, 3 * rows
    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(left=0.7 / width, right=1 - 0.15 / width, bottom=0.5 / height, top=1 - 0.3 / height,
                        wspace=0.22, hspace=0.55)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (title, lines) in zip(axes, panels):
        for history, name, label in lines:
            plot_with_band(ax, history, name, label)
        ax.set_title(title + (" (± std shaded)" if any(band_of(n) for _, n, _ in lines) else ""), fontsize=10)
        ax.set_xlabel("generator iteration", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    return _img(_fig_png(fig), alt, "wide")


def _curves(path: Path) -> str:
    history = _read_history(path / "history.jsonl")
    panels = [(title, [(history, n, n) for n in names]) for title, names in curve_panels(history)]
    return curves_figure(panels, "metric curves over training")


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


def _filters(run: dict) -> str:
    """The post-hoc samplers beside G's own samples (gan_lab/filters.py): one column each, one row per metric
    measured on both; a sampler that could not measure says why."""
    metrics, summary = run["metrics"], run["summary"]
    shown = [p for p in TITLES if isinstance(summary.get(p), dict)]
    if not shown:
        return ""
    measured = [p for p in shown if summary[p].get("measured")]
    own = [k for k in metrics if registry.is_measurement(k) and any(f"{p}/{k}" in metrics for p in measured)]
    rows = [(k, _fmt(metrics[k]), *(_fmt(metrics.get(f"{p}/{k}", "")) for p in measured)) for k in own]
    rows.append(("acceptance rate", "1", *(_fmt(metrics.get(f"{p}/acceptance_rate", "")) for p in measured)))
    why = "".join(_note(f"{TITLES[p]} did not measure: {summary[p].get('reason', '')}")
                  for p in shown if p not in measured)
    table = _table(("metric", "G", *(TITLES[p] for p in measured)), rows) if measured else ""
    return _section("G's samples through the post-hoc samplers", why + table, "filters")


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
        _first_screen(path, run),
        _section("Summary", _summary_table(run), "summary"),
        _section("Final metrics", _metrics_table(run), "metrics"),
        _filters(run),
        _per_class(run),
        _section("Metric curves", _curves(path), "curves"),
        _section("Samples over training", _samples(path), "samples"),
        _section("Pictures", _pictures(path), "pictures"),
        _section("Composed config (.hydra/config.yaml)", _config(path), "config"),
    ])
    out = path / "report.html"
    out.write_text(_page(f"gan_lab run: {title}", body), encoding="utf-8")
    return out
