"""The metric registry (gan_lab/metrics/registry.py) is the one list of metric names: every key a short real run
stores belongs to exactly one family, and the reports, the progress output and the reproduced tables read their
choices (headline order, sweep metrics, curve panels, directions) from it."""

from __future__ import annotations

import dataclasses
import importlib
import json
from pathlib import Path

import pytest

from gan_lab.metrics import registry
from gan_lab.metrics.registry import Direction, Family, Report, Stage
from gan_lab.train import train
from tests.conftest import compose_cfg

EVAL_ON = ["eval.at_end=true", "eval.every=2", "eval.every_samples=40", "eval.samples=60"]
# Short runs that between them emit every kind of key: images (a class-conditional run on mnist5k: FID/KID/IS,
# class coverage, k-NN, Parzen, memorization, class accuracy, intra-FID, CAS), Stacked MNIST's modes, a 2-D toy
# run through the post-hoc samplers, and the classics' 1-D runs with their analyses, a schedule and noise.
RUNS = {
    "acgan": ["debug=tiny", *EVAL_ON, "model.conditional=acgan", "model.width=8"],
    "stacked": ["debug=tiny", *EVAL_ON, "dataset=stacked_mnist", "dataset.size=1000", "model.width=8"],
    "ring": ["model=mlp", "dataset=ring", "model.hidden=[32,32]", "train.iterations=40", *EVAL_ON,
             "train.sample_every=20", "train.checkpoint_every=20", "eval.jbt.enabled=true", "eval.drs.enabled=true",
             "eval.drs.calibration_steps=30", "eval.drs.burn_in=2000"],
    "lines": ["debug=tiny", *EVAL_ON, "experiment=parallel_lines", "optimizer.lr_decay=linear"],
    "js_pi": ["debug=tiny", *EVAL_ON, "experiment=js_pi"],
    "optimal_d": ["debug=tiny", *EVAL_ON, "experiment=optimal_d", "tricks.instance_noise=0.1"],
}
# Keys of families the short runs above do not reach (other systems and tricks), as their code builds them.
ELSEWHERE = ["train/ada_p", "train/ada_rt", "train/pl_penalty", "train/pl_mean", "train/resolution", "train/alpha",
             "train/mixture/d_entropy", "train/mixture/g_entropy", "train/level0/d_loss", "train/level1/grad_norm_g",
             "val/fid_5k_inception",
             "schedule/regularizer.weight"]  # tests/test_schedules.py runs it


def stored_keys(run_dir: Path) -> set[str]:
    """Every metric key a run folder holds: metrics.json's metrics and per-class values, history.jsonl's series."""
    summary = json.loads((run_dir / "metrics.json").read_text())
    keys = set(summary["metrics"]) | set(summary.get("per_class") or {})
    for line in (run_dir / "history.jsonl").read_text().splitlines():
        keys |= set(json.loads(line)) - {"iteration"}
    return keys


@pytest.fixture(scope="module")
def emitted(tmp_path_factory) -> dict[str, str]:
    """key → the run that stored it, over the short runs of RUNS."""
    out: dict[str, str] = {}
    for name, overrides in RUNS.items():
        run_dir = tmp_path_factory.mktemp(name)
        assert train(compose_cfg(*overrides), run_dir)["status"] == "finished"
        out.update({key: name for key in stored_keys(run_dir)})
    return out


def test_every_key_a_short_run_stores_belongs_to_exactly_one_family(emitted):
    assert {"drs/toy/modes_captured", "val/cas_real_mnist5k_heldout500", "g/final_theta"} <= set(emitted)
    for key, run in sorted(emitted.items()):
        sampler = registry.sampler_of(key)
        own = key.partition("/")[2] if sampler else key
        found = [f.pattern for f in registry.matching(own)]
        assert len(found) == 1, f"{key} (run {run}) matches {found or 'no family'}"


def test_every_family_is_reached_by_a_run_or_named_where_its_code_builds_it(emitted):
    keys = [k.partition("/")[2] if registry.sampler_of(k) else k for k in emitted] + ELSEWHERE
    for key in ELSEWHERE:
        assert len(registry.matching(key)) == 1, key
    unreached = [f.pattern for f in registry.FAMILIES if not any(registry.matches(f.pattern, k) for k in keys)]
    assert not unreached, f"families no run emits (remove them, or name a key in ELSEWHERE): {unreached}"


def test_each_family_names_what_computes_it():
    for family in registry.FAMILIES:
        assert family.description and family.computed_by, family.pattern
        path = family.computed_by.split(",")[0].split()[0]  # "a.b.C, read by …": the first reference
        module, attrs = _importable(path)
        target = importlib.import_module(module)
        for attr in attrs:
            target = getattr(target, attr)  # an AttributeError names a reference gone stale


def _importable(path: str) -> tuple[str, list[str]]:
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            importlib.import_module(".".join(parts[:cut]))
            return ".".join(parts[:cut]), parts[cut:]
        except ImportError:
            continue
    raise AssertionError(f"{path}: no module")


def test_the_samplers_are_the_filters_and_bands_and_curves_name_families():
    from gan_lab.filters import TITLES

    assert set(registry.SAMPLERS) == set(TITLES)
    patterns = {f.pattern for f in registry.FAMILIES}
    assert all(f.band in patterns for f in registry.FAMILIES if f.band)
    assert registry.band_of("val/kid_5k_x") == "val/kid_std_5k_x"
    assert registry.band_of("val/is_1k_y") == "val/is_std_1k_y"
    assert registry.is_band("val/kid_std_5k_x") and not registry.is_band("val/kid_5k_x")
    assert registry.band_of("val/fid_5k_x") is None


# ---------------------------------------------------------------------------- consumers read the registry
# The run page's first screen as it was before the registry (run_page.HEADLINE), with its one dead entry
# (toy/high_quality_fraction, a key nothing stores) read as the key the mode metrics store, toy/high_quality_pct.
HEADLINE_BEFORE = ["val/fid_5k_x", "val/kid_5k_x", "val/is_5k_x", "val/class_accuracy_5k_x", "val/intra_fid_5k_x",
                   "val/cas_5k_x_heldout9", "val/cas_real_x_heldout9", "val/stacked_modes_5k_x", "toy/modes_captured",
                   "toy/high_quality_pct", "toy/reverse_kl", "toy/w1", "val/precision_5k_x", "val/recall_5k_x"]


def test_the_run_page_headline_is_the_registry_order():
    from gan_lab.report.run_page import headline

    metrics = {k: 1.0 for k in reversed(HEADLINE_BEFORE)}
    metrics.update({"val/kid_std_5k_x": 0.1, "train/d_loss": 2.0, "val/density_5k_x": 3.0, "drs/toy/w1": 0.2})
    assert [name for name, _ in headline(metrics)] == HEADLINE_BEFORE
    assert dict(headline(metrics))["val/kid_5k_x"] == "1 ± 0.1"


def test_adding_or_removing_a_family_changes_the_headline_and_the_sweep_metrics(monkeypatch):
    from gan_lab.report.run_page import headline
    from gan_lab.report.sweep_page import chosen_metrics

    metrics = {"val/fid_5k_x": 3.0, "val/new_5k_x": 1.0, "train/d_loss": 2.0}
    assert [n for n, _ in headline(metrics)] == ["val/fid_5k_x"]
    assert chosen_metrics([{"metrics": metrics}]) == ["val/fid_5k_x", "train/d_loss"]
    new = Family("val/new_*", "a new measure", Direction.LOWER, "gan_lab.measure", rank=5,
                 heads=Report.RUN | Report.SWEEP)
    without_fid = tuple(f for f in registry.FAMILIES if f.pattern != "val/fid_*")
    monkeypatch.setattr(registry, "FAMILIES", (new, *without_fid))
    assert [n for n, _ in headline(metrics)] == ["val/new_5k_x"]
    assert chosen_metrics([{"metrics": metrics}]) == ["val/new_5k_x", "train/d_loss"]


def test_the_sweep_metrics_are_the_registry_order_of_the_sweep_families():
    from gan_lab.report.sweep_page import MAX_METRIC_PLOTS, chosen_metrics

    sweep = [f for f in sorted(registry.FAMILIES, key=lambda f: f.rank or 0) if Report.SWEEP & f.heads]
    keys = {f.pattern.replace("*", "5k_x"): 1.0 for f in reversed(sweep)}
    assert chosen_metrics([{"metrics": keys}]) == [f.pattern.replace("*", "5k_x") for f in sweep][:MAX_METRIC_PLOTS]


def test_curve_panels_losses_png_and_the_progress_bar_come_from_the_registry(monkeypatch):
    from gan_lab import outcome, reporting
    from gan_lab.report.compare_page import overlaid_series
    from gan_lab.report.run_page import curve_panels

    assert outcome.CURVES == registry.curve_groups() and reporting.PROGRESS_BAR == registry.progress_bar()
    assert list(registry.curve_groups()) == [registry.LOSSES, registry.D_OUTPUTS, registry.GRAD_NORMS]
    history = [{"iteration": i, "train/d_loss": 1.0, "train/g_aux": 0.3, "train/lr_d": 0.1, "val/fid_1k_x": 5.0}
               for i in (1, 2)]
    assert curve_panels(history)[0] == (registry.LOSSES, ["train/d_loss", "train/g_aux"])
    assert overlaid_series([history]) == ["train/d_loss", "train/g_aux", "val/fid_1k_x", "train/lr_d"]
    lr = Family("train/lr_d", "D's learning rate", Direction.NONE, "gan_lab.systems.gan.GAN._flush",
                Stage.TRAINING, curve="schedule")
    monkeypatch.setattr(registry, "FAMILIES", (*registry.FAMILIES, lr))
    panels = curve_panels(history)
    assert ("schedule", ["train/lr_d"]) in panels and ("train/lr_d", ["train/lr_d"]) not in panels


def test_a_family_heading_a_report_has_a_rank_and_a_curve_is_one_series():
    with pytest.raises(ValueError, match="rank"):
        Family("val/x_*", "x", Direction.LOWER, "gan_lab.measure", heads=Report.RUN)
    with pytest.raises(ValueError, match="one series"):
        Family("train/x_*", "x", Direction.NONE, "gan_lab.measure", Stage.TRAINING, curve="losses")
    assert dataclasses.is_dataclass(Family) and Family.__dataclass_params__.frozen


# ---------------------------------------------------------------------------- directions
def test_every_metric_a_table_or_the_sweep_page_judges_has_a_direction():
    from gan_lab.reproduce import bar_side
    from gan_lab.reproduce.tables import TABLES

    for table in TABLES.values():
        columns = [c.key for c in table.columns if c.key != "value"]  # the classics' column: each row's own keys
        for key in columns + [k for row in table.all_rows() for k in (*row.paper, *row.target)]:
            assert registry.direction(key) is not Direction.NONE, f"{table.name}: {key}"
        for row in table.all_rows():
            assert all(bar_side(key) in (">=", "<=") for key in row.target), row.name
    for family in registry.FAMILIES:
        if Report.SWEEP & family.heads and family.stage is not Stage.TRAINING:
            assert family.direction is not Direction.NONE, family.pattern
    assert bar_side("drs/toy/modes_captured") == ">=" and bar_side("val/stacked_reverse_kl_*") == "<="
    with pytest.raises(ValueError, match="better side"):
        bar_side("train/d_loss")
    with pytest.raises(KeyError, match="no metric family"):
        registry.direction("val/not_a_metric")
