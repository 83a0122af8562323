"""The HTML report: one self-contained page per run and per sweep (leaderboard, curves, samples, config)."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from gan_lab.report import chosen_metrics, curve_panels, main, sample_frames, write_report
from tests.conftest import ROOT, run_cli

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DATA_URI = re.compile(r'src="data:image/png;base64,([^"]*)"')


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("report")
    proc = run_cli("-m", "debug=tiny", "model=mlp", "dataset=ring", "model.hidden=[16]", "train.k=1,2",
                   f"hydra.sweep.dir={tmp}/sweep", "logger=none", cwd=tmp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp / "sweep"


@pytest.fixture(scope="module")
def sweep_page(sweep) -> str:
    out = write_report(sweep)
    assert out == sweep / "report.html"
    return out.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def image_run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("report_img")
    proc = run_cli("debug=tiny", "dataset=digits", "logger=none", f"hydra.run.dir={tmp}/run", cwd=tmp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp / "run"


def _jobs(sweep: Path) -> list[Path]:
    return sorted(p for p in sweep.iterdir() if p.is_dir())


def _leaderboard_rows(page: str) -> list[str]:
    table = re.search(r'<table class="sortable" id="leaderboard">(.*?)</table>', page, re.S)
    assert table, "no leaderboard table"
    return re.findall(r"<tr>(.*?)</tr>", table.group(1), re.S)


def _assert_self_contained(page: str) -> None:
    images = DATA_URI.findall(page)
    assert images, "no embedded image"
    for data in images:
        assert base64.b64decode(data, validate=True).startswith(PNG_SIGNATURE)
    assert not re.search(r'(src|href)\s*=\s*["\']?\s*(https?:)?//', page, re.I), "external reference"
    assert "<link" not in page and "@import" not in page and "<script src" not in page


def test_sweep_leaderboard_lists_every_job_with_swept_key_and_metrics(sweep, sweep_page):
    jobs = _jobs(sweep)
    assert len(jobs) == 2
    rows = _leaderboard_rows(sweep_page)
    header, body = rows[0], rows[1:]
    assert len(body) == len(jobs)
    for job in jobs:
        assert sum(f">{job.name}</a>" in row for row in body) == 1, job.name
        assert f'href="{quote(job.name)}/report.html"' in sweep_page
    headers = re.findall(r"<th[^>]*>(.*?)</th>", header)
    assert "train.k" in headers and "status" in headers and "train/d_loss" in headers
    assert "debug" not in headers  # the same in every job: shown once above the table
    assert "<code>model=mlp</code>" in sweep_page
    k_column = headers.index("train.k")
    values = sorted(re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)[k_column] for row in body)
    assert values == ["1", "2"]
    assert all(">finished</td>" in row for row in body)
    assert all('class="thumb"' in row for row in body)  # each job's final samples, small
    assert "<script>" in sweep_page and "sortBy" in sweep_page


def test_leaderboard_shows_each_jobs_best_in_training_measurement_where_jobs_kept_one(tmp_path):
    """eval.best's entry (metrics.json ``best``) as its own sortable column, value at iteration; empty for a job
    that kept none; no column when no job did."""
    from gan_lab.report.sweep_page import _leaderboard

    fid = "val/fid_1k_mnist5k_classifier"
    runs = [{"path": tmp_path / name, "name": name, "overrides": {"train.k": k}, "status": "finished",
             "metrics": {fid: final}, "summary": {"best": best} if best else {}}
            for name, k, final, best in (("a", "1", 9.0, {"metric": fid, "value": 4.5, "iteration": 1500}),
                                         ("b", "2", 7.0, {"metric": fid, "value": 6.25, "iteration": 2000}),
                                         ("c", "3", 8.0, None))]
    rows = _leaderboard_rows(_leaderboard(runs, ["train.k"], [fid]))
    headers = re.findall(r"<th[^>]*>(.*?)</th>", rows[0])
    assert headers[-1] == f"best {fid} (iteration)"
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)[-1] for row in rows[1:]]
    assert cells == ["4.5 at 1500", "6.25 at 2000", ""]
    assert 'data-v="4.5"' in rows[1] and 'data-v="6.25"' in rows[2]  # sorts by the value
    none_kept = [{**run, "summary": {}} for run in runs]
    assert "best" not in _leaderboard_rows(_leaderboard(none_kept, ["train.k"], [fid]))[0]


def test_sweep_page_plots_a_metric_against_the_swept_key(sweep_page):
    plots = sweep_page.split('id="plots"', 1)[1]
    assert "toy/modes_captured vs train.k" in plots or "train/d_loss vs train.k" in plots
    assert DATA_URI.search(plots)


def test_sweep_page_and_job_pages_are_self_contained(sweep, sweep_page):
    _assert_self_contained(sweep_page)
    for job in _jobs(sweep):
        page = (job / "report.html").read_text(encoding="utf-8")
        _assert_self_contained(page)
        curves = page.split('<section id="curves">', 1)[1].split("</section>", 1)[0]
        assert 'alt="metric curves over training"' in curves
        samples = page.split('<section id="samples">', 1)[1].split("</section>", 1)[0]
        assert "<figcaption>final</figcaption>" in samples and DATA_URI.search(samples)
        assert 'id="config"' in page and "<pre>" in page and "train.k=" in page
        assert "scatter.png" in page  # every top-level picture, titled by file name
        assert 'href="../report.html"' in page


def test_run_report_shows_sample_grids_in_iteration_order(image_run):
    out = write_report(image_run)
    page = out.read_text(encoding="utf-8")
    _assert_self_contained(page)
    samples = page.split('<section id="samples">', 1)[1].split("</section>", 1)[0]
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", samples)
    iterations = sorted(int(p.stem.split("_")[1]) for p in (image_run / "samples").glob("iter_*.png"))
    assert len(iterations) >= 2
    assert captions == [f"iteration {i}" for i in iterations] + ["final"]
    assert "Run: debug=tiny dataset=digits logger=none" in page
    assert "train/d_loss" in page and "wall_time_s" in page


def test_failed_and_diverged_jobs_are_shown(sweep, tmp_path):
    copy = tmp_path / "sweep"
    shutil.copytree(sweep, copy, ignore=shutil.ignore_patterns("checkpoints", "report.html"))
    first, second = _jobs(copy)
    (first / "metrics.json").unlink()
    summary = json.loads((second / "metrics.json").read_text())
    (second / "metrics.json").write_text(json.dumps({**summary, "status": "diverged"}))
    page = write_report(copy).read_text(encoding="utf-8")
    rows = _leaderboard_rows(page)[1:]
    assert len(rows) == 2
    assert 'class="bad">failed</td>' in next(r for r in rows if first.name in r)
    assert 'class="bad">diverged</td>' in next(r for r in rows if second.name in r)
    assert "missing: the run did not finish" in (first / "report.html").read_text(encoding="utf-8")


def test_html_escapes_user_text_and_matches_protocols_by_prefix(tmp_path):
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text("- 'name=<b>x</b>'\n")
    (run / ".hydra" / "config.yaml").write_text("name: <b>x</b>\n")
    summary = {"status": "finished", "metrics": {"toy/modes_captured": 3, "toy/ks": 0.1, "fid_x": 1.0},
               "protocols": {"toy/modes_*": "P<1>", "toy/w1, toy/ks": "KS law", "fid_x": "exact"}}
    (run / "metrics.json").write_text(json.dumps(summary))
    (run / "bogus.png").write_text("not a PNG")  # skipped, never embedded as a broken image
    page = write_report(run).read_text(encoding="utf-8")
    assert "<b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page
    assert "P&lt;1&gt;" in page and "KS law" in page and "exact" in page
    assert "bogus.png" not in page and not DATA_URI.search(page)


def test_sample_frames_are_in_numeric_iteration_order(image_run, tmp_path):
    png = (image_run / "samples" / "final.png").read_bytes()
    (tmp_path / "samples").mkdir()
    for name in ("iter_10.png", "iter_9.png", "iter_100.png", "final.png"):
        (tmp_path / "samples" / name).write_bytes(png)
    frames, total = sample_frames(tmp_path)
    assert [caption for caption, _ in frames] == ["iteration 9", "iteration 10", "iteration 100", "final"]
    assert total == 3


def test_curve_panels_group_known_series_and_give_the_rest_their_own():
    history = [{"iteration": i, "train/d_loss": 1.0, "train/g_loss": 0.5, "train/grad_norm_d": 2.0,
                "train/lr_d": 1e-4, "val/fid": float("nan") if i == 1 else 40.0, "perf/iterations_per_s": 9.0}
               for i in (1, 2)]
    assert curve_panels(history) == [("losses", ["train/d_loss", "train/g_loss"]),
                                     ("gradient norms", ["train/grad_norm_d"]),
                                     ("train/lr_d", ["train/lr_d"]), ("val/fid", ["val/fid"])]


def test_preferred_metrics_come_first():
    runs = [{"metrics": {"train/d_loss": 1.0, "toy/reverse_kl": float("inf"), "toy/modes_captured": 2,
                         "val/fid_5k_x": 30.0, "train/g_loss": 0.5, "toy/w1": 0.1}}]
    assert chosen_metrics(runs) == ["val/fid_5k_x", "toy/modes_captured", "toy/w1", "train/d_loss"]


def test_cli_exits_2_on_a_folder_that_is_neither_run_nor_sweep(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "gan_lab.report", str(empty)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert str(empty) in proc.stderr and "neither a run" in proc.stderr


def test_cli_prints_the_report_path(image_run, capsys):
    main([str(image_run)])
    assert capsys.readouterr().out.strip() == f"gan_lab: report {image_run / 'report.html'}"


# Appended to a copy of a report: once the page has loaded, count the images that failed to decode and click the
# header of each sortable table's most numeric column twice, checking the rows come out ascending, then descending.
PROBE = """<script>
window.addEventListener('load', () => {
  const out = {images: document.images.length, broken: 0, tables: []};
  for (const im of document.images) if (!(im.complete && im.naturalWidth > 0)) out.broken++;
  const value = (row, i) => {
    const c = row.cells[i]; return c.dataset.v !== undefined ? c.dataset.v : c.textContent.trim(); };
  for (const table of document.querySelectorAll('table.sortable')) {
    const heads = [...table.tHead.rows[0].cells], rows = () => [...table.tBodies[0].rows];
    let col = -1, best = 0;
    heads.forEach((h, i) => { const n = rows().filter(r => value(r, i) !== '' && !isNaN(Number(value(r, i)))).length;
                              if (n > best) { best = n; col = i; } });
    if (col < 0 || best < 2) { out.tables.push({id: table.id, sorted: null}); continue; }
    const numbers = () => rows().map(r => value(r, col)).filter(v => v !== '').map(Number);
    heads[col].click(); const up = numbers();
    heads[col].click(); const down = numbers();
    const ordered = (xs, s) => xs.every((x, k) => k === 0 || s * (x - xs[k - 1]) >= 0);
    out.tables.push({id: table.id, column: heads[col].textContent, rows: up.length,
                     sorted: ordered(up, 1) && ordered(down, -1) && new Set(up).size > 1});
  }
  const pre = document.createElement('pre'); pre.id = 'probe'; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""
CHROMIUM = Path("/usr/bin/chromium")


def _in_chromium(page: Path, tmp_path: Path) -> tuple[dict, bytes]:
    """(what PROBE found, a screenshot) of ``page`` rendered by headless Chromium."""
    harness = tmp_path / f"probe_{page.parent.name}_{page.name}"
    harness.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    flags = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--virtual-time-budget=10000",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*flags, "--dump-dom", harness.as_uri()], capture_output=True, text=True, timeout=180)
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom.stdout, re.S)
    assert found, dom.stderr[-3000:]
    shot = tmp_path / f"{harness.stem}.png"
    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1280,2000", harness.as_uri()],
                   capture_output=True, text=True, timeout=180)
    return json.loads(found.group(1).replace("&quot;", '"')), shot.read_bytes() if shot.is_file() else b""


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (/usr/bin/chromium)")
def test_reports_render_load_their_images_and_sort_in_headless_chromium(sweep, sweep_page, image_run, tmp_path):
    """A run page, a sweep page and a comparison page in a real browser: each renders, every embedded image
    decodes, and every sortable table sorts its numeric column both ways on a header click."""
    comparison = tmp_path / "comparison.html"
    main([str(sweep), str(image_run), "--out", str(comparison)])
    write_report(image_run)
    for page in (sweep / "report.html", image_run / "report.html", comparison):
        probe, shot = _in_chromium(page, tmp_path)
        assert probe["images"] > 0 and probe["broken"] == 0, (page, probe)
        assert all(t["sorted"] in (True, None) for t in probe["tables"]), (page, probe)
        assert shot.startswith(PNG_SIGNATURE) and len(shot) > 20_000, page  # a blank 1280x2000 page is a few KB
    assert any(t["sorted"] for t in _in_chromium(sweep / "report.html", tmp_path)[0]["tables"])


def _fake_run(folder: Path, overrides: list[str], metrics: dict, protocols: dict | None = None) -> Path:
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (folder / "metrics.json").write_text(json.dumps({"status": "finished", "iterations": 10, "wall_time_s": 3.5,
                                                     "metrics": metrics, "protocols": protocols or {}}))
    return folder


def test_sweep_groups_seeds_into_mean_and_standard_error(tmp_path):
    sweep = tmp_path / "sweep"
    for i, (k, seed, fid) in enumerate([(1, 0, 10.0), (1, 1, 12.0), (2, 0, 20.0), (2, 1, 24.0)]):
        _fake_run(sweep / f"{i}_k={k},seed={seed}", [f"train.k={k}", f"seed={seed}"], {"val/fid_5k_x": fid})
    page = write_report(sweep).read_text(encoding="utf-8")
    table = re.search(r'<table class="sortable" id="by-configuration">(.*?)</table>', page, re.S).group(1)
    rows = re.findall(r"<tr>(.*?)</tr>", table, re.S)[1:]
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in rows]
    # s.e. = s/√n: k=1: s = √2, s.e. = 1; k=2: s = 2√2, s.e. = 2
    assert cells == [["1", "2 of 2", "11 ± 1"], ["2", "2 of 2", "22 ± 2"]]
    assert page.index("by-configuration") < page.index('id="leaderboard"')  # before the per-job table


def test_run_page_opens_on_samples_and_headline_metrics_and_states_each_protocol_once(tmp_path):
    from gan_lab.viz import image_grid, save_png

    run = _fake_run(tmp_path / "run", [], {
        "val/fid_1k_x": 9.0, "val/fid_5k_x": 8.0, "val/kid_5k_x": 0.5, "val/kid_std_5k_x": 0.1,
        "val/is_5k_x": 3.0, "val/is_std_5k_x": 0.2, "train/d_loss": 1.0},
        {"val/*_5k_x": "FID/KID/IS on x, 5,000 samples", "val/fid_1k_x": "FID on x, 1,000 samples"})
    import torch

    save_png(image_grid(torch.zeros(4, 1, 8, 8)), run / "samples" / "final.png")
    page = write_report(run).read_text(encoding="utf-8")
    first = page[page.index('<div class="first">'): page.index('id="summary"')]
    assert "<img" in first and "wall time (s)" in first and "3.5" in first
    assert "val/fid_5k_x" in first and "val/fid_1k_x" not in first  # the larger sample of the same metric
    assert "0.5 ± 0.1" in first and "3 ± 0.2" in first and "val/kid_std_5k_x" not in first
    assert page.count("FID/KID/IS on x, 5,000 samples") == 1  # one protocol line for its four metrics


def test_comparison_page_names_the_differing_settings_and_each_runs_metrics(tmp_path):
    """python -m gan_lab.report A B --out: the settings in which the composed configs differ (where a run ran does
    not count), one table row per run with its tag and final metrics; a run named twice is compared once."""
    from gan_lab.report.__main__ import main

    a = _fake_run(tmp_path / "a", ["train.k=1"], {"val/fid_5k_x": 10.0})
    b = _fake_run(tmp_path / "b", ["train.k=5"], {"val/fid_5k_x": 7.5})
    for run, k in ((a, 1), (b, 5)):
        (run / ".hydra" / "config.yaml").write_text(
            f"train:\n  k: {k}\n  batch_size: 64\nhydra:\n  run:\n    dir: {run}\n")
    out = tmp_path / "cmp.html"
    main([str(a), str(b), str(a), "--out", str(out)])
    page = out.read_text(encoding="utf-8")
    assert "Comparison of 2 runs" in page
    diffs = re.search(r'<table id="differences">(.*?)</table>', page, re.S).group(1)
    rows = [re.findall(r"<td>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", diffs, re.S)[1:]]
    assert rows == [["<code>train.k</code>", "1", "5"]]  # batch_size is the same, hydra.* is where it ran
    table = re.search(r'<table class="sortable" id="comparison">(.*?)</table>', page, re.S).group(1)
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", table, re.S)[1:]]
    assert [(c[0], c[4], c[-1]) for c in cells] == [("A", "1", "10"), ("B", "5", "7.5")]
