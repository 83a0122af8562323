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
                         "fid_5k": 30.0, "train/g_loss": 0.5, "toy/w1": 0.1}}]
    assert chosen_metrics(runs) == ["fid_5k", "toy/modes_captured", "toy/w1", "train/d_loss"]


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


@pytest.mark.slow
@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs /usr/bin/chromium")
def test_sweep_report_renders_in_headless_chromium(sweep, sweep_page, tmp_path):
    shot = tmp_path / "sweep.png"
    cmd = ["/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
           f"--screenshot={shot}", "--window-size=1280,2000", (sweep / "report.html").as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert shot.is_file(), proc.stderr[-3000:]
    data = shot.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 20_000  # a blank 1280x2000 page is a few KB


def test_comparison_page_of_any_runs(sweep, image_run, tmp_path):
    """Runs from different places (a sweep's jobs and a lone run): overlaid curves, the final metrics and the
    settings that differ in one sortable table, the config differences, the samples side by side."""
    out = tmp_path / "cmp" / "comparison.html"
    main([str(sweep), str(image_run), "--out", str(out)])
    page = out.read_text(encoding="utf-8")
    _assert_self_contained(page)
    jobs = _jobs(sweep)
    assert "Comparison of 3 runs" in page and all(str(p) in page for p in [*jobs, image_run])
    table = re.search(r'<table class="sortable" id="comparison">(.*?)</table>', page, re.S).group(1)
    rows = re.findall(r"<tr>(.*?)</tr>", table, re.S)
    assert len(rows) == 1 + 3  # header + one row per run
    differences = re.search(r'<table id="differences">(.*?)</table>', page, re.S).group(1)
    # the sweep's jobs differ from each other in train.k, and from the lone run in the model and the data set
    assert "train.k" in differences and "model._target_" in differences and "dataset._target_" in differences
    assert "hydra." not in differences
    assert page.count("<figure>") >= 3  # the curves and every run's final samples
    assert 'alt="curves of every run overlaid"' in page


def test_std_series_are_bands_not_curves():
    from gan_lab.report.run_page import band_of, is_band

    assert band_of("val/kid_1k_mnist5k_classifier") == "val/kid_std_1k_mnist5k_classifier"
    assert band_of("val/is_5k_inception") == "val/is_std_5k_inception"
    assert band_of("val/kid_std_1k_x") is None and band_of("val/fid_1k_x") is None
    assert is_band("val/is_std_5k_inception") and not is_band("val/is_5k_inception")
    history = [{"iteration": i, "val/kid_1k_x": 0.1, "val/kid_std_1k_x": 0.01} for i in (1, 2)]
    assert curve_panels(history) == [("val/kid_1k_x", ["val/kid_1k_x"])]


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
