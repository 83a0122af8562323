"""Sweeps on existing engines: Hydra's joblib and submitit launchers and its Optuna sweeper; SLURM composes."""

from __future__ import annotations

import json
import math

import optuna
import pytest
import yaml

from tests.conftest import compose_cfg, run_cli

TINY = ["debug=tiny", "model=mlp", "dataset=ring", "model.hidden=[16]", "logger=none"]


def _weights(overrides) -> int:
    from gan_lab.compose import build_components

    c = build_components(compose_cfg(*overrides))
    return sum(p.numel() for net in (c.generator, c.discriminator) for p in net.parameters())


def _finished_jobs(sweep_dir):
    jobs = sorted(p for p in sweep_dir.iterdir() if p.is_dir() and (p / ".hydra").is_dir())
    return {j.name: json.loads((j / "metrics.json").read_text()) for j in jobs}


@pytest.mark.parametrize("launcher, extra", [("joblib", ["hydra.launcher.n_jobs=2"]), ("submitit_local", [])])
def test_two_job_sweep_completes_on_a_launcher(launcher, extra, tmp_path):
    proc = run_cli("-m", f"hydra/launcher={launcher}", *extra, *TINY, "train.k=1,2",
                   f"hydra.sweep.dir={tmp_path}/sweep", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = _finished_jobs(tmp_path / "sweep")
    assert len(jobs) == 2, jobs.keys()
    assert sorted(s["k"] for s in jobs.values()) == [1, 2]
    assert all(s["status"] == "finished" and s["d_updates"] == 4 * s["k"] for s in jobs.values())
    assert (tmp_path / "sweep" / "report.html").is_file()  # the sweep report runs on every launcher
    # each job's CPU threads: the cores shared by the jobs running side by side (joblib's n_jobs=2)
    from gan_lab import threads

    parallel = 2 if launcher == "joblib" else 1
    expected = threads.choose(None, 1, _weights(TINY), jobs=parallel)
    assert all(s["threads"] == {"per_process": expected.threads, "why": expected.reason} for s in jobs.values()), jobs


def test_optuna_search_runs_three_trials_and_reports_the_best(tmp_path):
    storage = f"sqlite:///{tmp_path}/optuna.db"
    proc = run_cli("-m", "hydra/sweeper=search", "hydra.sweeper.n_trials=3", f"hydra.sweeper.storage={storage}",
                   "sweep.objective=train/d_loss", *TINY, f"hydra.sweep.dir={tmp_path}/sweep", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = _finished_jobs(tmp_path / "sweep")
    assert len(jobs) == 3
    values = [s["metrics"]["train/d_loss"] for s in jobs.values()]
    result = yaml.safe_load((tmp_path / "sweep" / "optimization_results.yaml").read_text())
    assert result["best_value"] == pytest.approx(min(values))
    assert set(result["best_params"]) == {"train.k", "optimizer.d.lr", "optimizer.g.lr"}
    assert 1 <= result["best_params"]["train.k"] <= 4 and 1e-5 <= result["best_params"]["optimizer.d.lr"] <= 1e-3
    study = optuna.load_study(study_name="gan_lab", storage=storage)  # SQLite storage keeps every trial
    assert len(study.trials) == 3 and study.best_value == pytest.approx(min(values))


def test_objective_returns_the_named_metric_or_names_the_choices():
    from gan_lab.__main__ import objective
    from gan_lab.errors import ConfigError

    cfg = compose_cfg("sweep.objective=val/fid_5k_mnist5k_classifier")
    assert objective(cfg, {"metrics": {"val/fid_5k_mnist5k_classifier": 12.5}}) == 12.5
    assert objective(cfg, {"metrics": {"val/fid_5k_mnist5k_classifier": float("nan")}}) == math.inf
    assert objective(cfg, {}) == {}  # a non-zero DDP rank returns nothing
    with pytest.raises(ConfigError, match="sweep.objective.*train/g_loss"):
        objective(cfg, {"metrics": {"train/g_loss": 1.0}})
    plain = {"metrics": {"train/g_loss": 1.0}}
    assert objective(compose_cfg(), plain) is plain


def test_slurm_launcher_is_sized_from_the_trainer():
    """No SLURM cluster here: the launcher config must compose to one job per sweep point with
    trainer.devices GPUs and tasks per node on trainer.num_nodes nodes."""
    from hydra import compose, initialize_config_dir

    from tests.conftest import CONF

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=["hydra/launcher=slurm", "accelerator=slurm", "trainer.devices=4",
                                           "trainer.num_nodes=2"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (launcher.nodes, launcher.gpus_per_node, launcher.tasks_per_node) == (2, 4, 4)
    assert cfg.trainer.accelerator == "gpu" and cfg.trainer.strategy == "ddp" and cfg.trainer.num_nodes == 2


def test_wandb_runs_are_grouped_per_sweep_and_named_by_overrides(tmp_path):
    from gan_lab.launch import wandb_identity

    node = compose_cfg("logger=wandb").logger.wandb
    job = {"multirun": True, "sweep_dir": "outputs/multirun/2026-11-22/18-45-20", "overrides": "loss=hinge,train.k=5"}
    assert wandb_identity(node, tmp_path, job) == {"name": "loss=hinge,train.k=5",
                                                   "group": "multirun/2026-11-22/18-45-20"}
    single = {"multirun": False, "sweep_dir": "x", "overrides": ""}
    assert wandb_identity(node, tmp_path / "12-00-00_dcgan-ns-mnist5k", single) == {"name": "12-00-00_dcgan-ns-mnist5k"}
    named = compose_cfg("logger=wandb", "logger.wandb.name=mine", "logger.wandb.group=g").logger.wandb
    assert wandb_identity(named, tmp_path, job) == {}  # explicit settings win


def test_offline_wandb_sweep_job_writes_its_run_under_the_sweep_group(tmp_path):
    proc = run_cli("-m", *TINY[:-1], "logger=wandb", "train.k=1,2", f"hydra.sweep.dir={tmp_path}/sweep", cwd=tmp_path,
                   env={"WANDB_MODE": "offline"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = sorted(p for p in (tmp_path / "sweep").iterdir() if p.is_dir())
    runs = [list((job / "logs" / "wandb").glob("offline-run-*")) for job in jobs]
    assert len(jobs) == 2 and all(len(r) == 1 for r in runs)  # wandb.finish() between jobs: one run each
    group = "/".join((tmp_path / "sweep").parts[-3:]).encode()
    for job, (run,) in zip(jobs, runs):
        record = next(run.glob("*.wandb")).read_bytes()  # the offline run's protobuf records
        assert group in record and f"train.k={1 if job.name.startswith('0_') else 2}".encode() in record
