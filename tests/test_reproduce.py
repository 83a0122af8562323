"""python -m gan_lab.reproduce: presets equal to their overrides, the verdict arithmetic, the closed forms
of the classics, and a real (tiny) table run end to end with evaluation, logging and checkpointing on."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from gan_lab.config import config_dir
from gan_lab.reproduce import Cell, preset_yaml
from gan_lab.reproduce.classics import js_pi_optimum
from gan_lab.reproduce.tables import TABLES
from tests.conftest import run_cli


def _compose(*overrides: str):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return OmegaConf.to_container(compose(config_name="config", overrides=list(overrides)), resolve=False)


@pytest.mark.parametrize("table,row", [("pacgan_toy", "grid_pac3"), ("unrolled_toy", "ring_unrolled5"),
                                       ("classics", "lines_js"), ("stacked_mnist", "pac3")])
def test_a_rows_preset_composes_the_config_its_overrides_give(tmp_path, table, row):
    t = TABLES[table]
    spec = next(r for r in t.all_rows() if r.name == row)
    overrides = (*t.base, *spec.overrides)
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "repro_x.yaml").write_text(preset_yaml(overrides, Path(config_dir())))
    via_preset = _compose("experiment=repro_x", f"hydra.searchpath=[file://{tmp_path}]")
    via_cli = _compose(*overrides)
    assert via_preset == via_cli


@pytest.mark.parametrize("table", ["pacgan_toy", "unrolled_toy"])
def test_the_best_rows_run_their_own_experiment_on_top_of_the_tables_base(tmp_path, table):
    # Two experiments (the table's base, then the row's): the command line cannot say that, the preset can.
    t = TABLES[table]
    (tmp_path / "experiment").mkdir()
    for row in ("ring_best", "grid_best"):
        spec = next(r for r in t.all_rows() if r.name == row)
        (tmp_path / "experiment" / f"repro_{row}.yaml").write_text(
            preset_yaml((*t.base, *spec.overrides), Path(config_dir())))
    ring, grid = (_compose(f"experiment=repro_{row}", f"hydra.searchpath=[file://{tmp_path}]")
                  for row in ("ring_best", "grid_best"))
    # The base lends only its protocol (data set size, evaluation, logging intervals): what trains is exactly
    # the row's own experiment, whatever the base sets (ring_collapse's minimax loss, orthogonal init,
    # simultaneous updates; pacgan_toy's maxout D and batch-norm G).
    protocol = {"sample_every", "checkpoint_every", "log_every", "progress_every"}
    for row, preset in (("ring_best", ring), ("grid_best", grid)):
        direct = _compose(*next(r for r in t.all_rows() if r.name == row).overrides)
        for group in ("model", "loss", "regularizer", "optimizer", "tricks", "mixture"):
            assert preset[group] == direct[group], (row, group)
        assert ({k: v for k, v in preset["train"].items() if k not in protocol}
                == {k: v for k, v in direct["train"].items() if k not in protocol}), row
    assert ring["dataset"]["_target_"].endswith("Ring") and grid["dataset"]["_target_"].endswith("Grid")
    assert ring["train"]["iterations"] == grid["train"]["iterations"] == 50000
    assert ring["model"]["activation"] == grid["model"]["activation"] == "tanh"  # toy_best's nets
    assert ring["model"]["init"] == grid["model"]["init"] == "torch"  # not ring_collapse's orthogonal
    assert not ring["train"]["simultaneous"] and not grid["train"]["simultaneous"]  # nor its simultaneous updates
    assert ring["loss"] == grid["loss"] == _compose("loss=ns")["loss"]  # toy_best's NS, not the base's minimax
    assert ring["tricks"]["instance_noise"] == 0.0
    assert (grid["tricks"]["instance_noise"], grid["tricks"]["instance_noise_until"]) == (0.5, 0.5)
    assert ring["eval"]["drs"]["enabled"] and grid["eval"]["jbt"]["enabled"]


def _cell(values, paper=None, target=None, tolerance=None):
    return Cell("r", "r", "k", "k", values, paper, target, tolerance)


def test_verdicts_follow_the_two_standard_error_rule():
    c = _cell([1.0, 2.0, 3.0], paper=(3.0, None))
    assert c.mean == 2.0 and c.se == pytest.approx(1 / math.sqrt(3), rel=1e-12)
    assert c.verdict == "agrees"  # |2 − 3| = 1 ≤ 2·0.577
    assert _cell([1.0, 2.0, 3.0], paper=(3.2, None)).verdict == "differs"  # 1.2 > 1.155
    assert _cell([1.0, 2.0, 3.0], paper=(3.5, 0.5)).verdict == "agrees"  # 1.5 ≤ 2·√(1/3 + 1/4) = 1.528
    assert _cell([1.0, 2.0, 3.0], paper=(3.6, 0.5)).verdict == "differs"
    assert _cell([1.0, 2.0, 3.0], paper=(2.5, None), tolerance=0.6).verdict == "agrees"
    assert _cell([2.0], paper=(9.0, None)).verdict == "n < 2"
    assert _cell([7.0, 8.0], target=(">=", 8.0)).verdict == "short"
    assert _cell([8.0, 8.0], target=(">=", 8.0)).verdict == "meets"
    assert _cell([], paper=(1.0, None)).verdict == "no runs"


def test_js_pi_optimum_tends_to_moment_matching_and_to_one_mode():
    # π → 0: JS_π/π → KL(p‖q), minimised over Gaussians by matching moments: μ = 0, σ² = 0.5² + 2² = 4.25.
    loc, scale = js_pi_optimum(0.01)
    assert abs(loc) < 1e-3 and scale == pytest.approx(math.sqrt(4.25), abs=0.01)
    loc, scale = js_pi_optimum(0.99)  # π → 1: the reverse direction seeks the mode the run starts nearest
    assert loc == pytest.approx(2.0, abs=0.01) and scale == pytest.approx(0.5, abs=0.01)


def test_a_table_runs_as_one_multirun_and_is_written_beside_the_paper(tmp_path):
    out = tmp_path / "sweep"
    proc = run_cli("pacgan_toy", "--rows", "ring_pac2", "--seeds", "2", "--out", str(out), "train.iterations=8",
                   "train.log_every=4", "eval.every=4", "eval.every_samples=200", "eval.samples=500",
                   "train.checkpoint_every=4", "train.sample_every=4", "trainer.enable_progress_bar=false",
                   cwd=tmp_path, module="gan_lab.reproduce")
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((out / "reproduction.json").read_text())
    assert data["jobs"] == {"finished": 2}
    cells = {(c["row"], c["key"]): c for c in data["cells"]}
    assert set(cells) == {("ring_pac2", k) for k in ("toy/modes_captured", "toy/high_quality_pct", "toy/reverse_kl")}
    assert all(c["n"] == 2 for c in cells.values())
    assert cells[("ring_pac2", "toy/modes_captured")]["paper"] == [7.9, 0.1]
    for (row, key), c in cells.items():  # the lab's numbers are the jobs' own metrics.json values
        jobs = sorted(p for p in out.iterdir() if f"repro_{row}," in p.name)
        assert c["values"] == [json.loads((j / "metrics.json").read_text())["metrics"][key] for j in jobs]
        assert all((j / "checkpoints" / "last.ckpt").is_file() for j in jobs)
    table = (out / "table.md").read_text()
    assert "| ring: PacGAN2 | modes | 7.9 ± 0.1 |" in table
    assert "|  | high quality % |" in table  # a row's label once, on its first metric
    report = (out / "report.html").read_text()
    assert "Reproduction: PacGAN Table 1" in report and "<td>modes</td><td>7.9 ± 0.1</td>" in report


@pytest.mark.parametrize("args,words", [
    (["nope"], "table='nope' is not one of: pacgan_toy"),
    (["pacgan_toy", "--rows", "ring_gan,nope"], "--rows 'nope' is not a row of pacgan_toy"),
    (["pacgan_toy", "--sedes", "2"], "'--sedes' is neither an option"),
    (["pacgan_toy", "--quick", "hydra.sweep.dir=elsewhere"], "the table sets hydra.sweep.dir itself; use --out"),
    (["pacgan_toy", "seed=3"], "the table sets seed itself; use --seeds"),
])
def test_bad_input_gets_one_line_and_status_2(tmp_path, args, words):
    proc = run_cli(*args, cwd=tmp_path, module="gan_lab.reproduce")
    assert proc.returncode == 2 and words in proc.stderr and "Traceback" not in proc.stderr


def test_an_infinite_mean_differs_from_a_finite_paper_value():
    assert _cell([math.inf, 0.3], paper=(0.45, 0.09)).verdict == "differs"


def test_a_column_may_name_its_metric_by_a_pattern():
    from gan_lab.reproduce import _metric

    metrics = {"val/stacked_modes_26k_mnist5k_classifier_per_channel": 870, "val/fid_26k_x": 3.0, "flag": True}
    assert _metric(metrics, "val/stacked_modes_*") == 870.0
    assert _metric(metrics, "val/fid_26k_x") == 3.0
    assert _metric(metrics, "val/stacked_reverse_kl_*") is None and _metric(metrics, "flag") is None
    # a full run keeps its last in-training measurement (eval.every_samples) beside the final one (eval.samples)
    both = {"val/stacked_modes_1k_c": 310, "val/stacked_modes_26k_c": 988, "val/stacked_modes_10k_c": 934}
    assert _metric(both, "val/stacked_modes_*", 26000) == 988.0
    assert _metric(both, "val/stacked_modes_*", 2600) == 934.0  # no such count: the first by name


def test_a_sweep_that_cannot_start_says_so_in_one_line(tmp_path):
    proc = run_cli("classics", "--rows", "optimal_d", "--seeds", "1", "--out", str(tmp_path / "s"), "trian.k=2",
                   cwd=tmp_path, module="gan_lab.reproduce")
    assert proc.returncode == 1 and "no job ran" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "s" / "table.md").exists()


def test_quick_overrides_go_into_the_presets_so_they_may_name_a_rows_own_keys(tmp_path):
    from gan_lab.reproduce import write_presets

    table = TABLES["stacked_mnist"]
    root = write_presets(table, table.all_rows()[:1], tmp_path, Path(config_dir()), quick=True)
    cfg = _compose("experiment=repro_dcgan", f"hydra.searchpath=[file://{root}]")
    assert cfg["dataset"]["size"] == 10000 and cfg["train"]["iterations"] == 600  # quick wins over the base


def test_pacgan_presets_follow_the_authors_code():
    """The toy code (on ALI's ali_algorithm) updates both players from one gradient computation; the Stacked MNIST
    DCGAN code steps G's optimiser twice per D step."""
    from gan_lab.reproduce.tables import TABLES
    from tests.conftest import compose_cfg

    assert compose_cfg("experiment=pacgan_toy").train.simultaneous is True
    assert "train.g_steps=2" in TABLES["stacked_mnist"].base
