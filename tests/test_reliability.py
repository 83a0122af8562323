"""Faults injected on purpose: killed processes, corrupt and malicious checkpoints, NaNs, failing sweep jobs.

Each run is small (8×8 digits, DCGAN of width 8, k=2, EMA and instance noise on, so every kind of
state is exercised); the reference is the same run never interrupted, and resumed runs must end with
its weights bit for bit (CPU).
"""

from __future__ import annotations

import json
import signal

import pytest
import torch

from gan_lab.__main__ import DIVERGED_STATUS
from gan_lab.errors import ConfigError
from gan_lab.resume import latest_good, read_checkpoint
from gan_lab.train import train
from tests.conftest import compose_cfg, interrupted_then_resumed, run_cli

RUN = ["debug=tiny", "dataset=digits", "model.width=8", "logger=none", "train.k=2", "train.iterations=8",
       "train.batch_size=16", "train.checkpoint_every=1", "train.log_every=2", "tricks.ema=0.9",
       "tricks.instance_noise=0.1"]


def _weights(run_dir) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run (in-process), and its weights."""
    run_dir = tmp_path_factory.mktemp("reference")
    summary = train(compose_cfg(*RUN), run_dir)
    assert summary["iterations"] == 8
    return run_dir, _weights(run_dir)


def _assert_same_weights(run_dir, reference) -> None:
    ref = reference[1]
    got = _weights(run_dir)
    assert set(got) == set(ref)
    for key in ref:
        if isinstance(ref[key], torch.Tensor):
            assert torch.equal(got[key], ref[key]), key
        else:  # a module's extra state (e.g. a counter)
            assert got[key] == ref[key], key


def fault(name: str, **where) -> list[str]:
    """Command-line overrides that add the test fault ``tests.faults.<name>`` (a callback) to a run."""
    return [f"+callbacks.fault._target_=tests.faults.{name}", *(f"+callbacks.fault.{k}={v}" for k, v in where.items())]


@pytest.mark.parametrize("injected, last_good", [
    (fault("KillInCheckpoint", at=3), 2),  # SIGKILL while writing the checkpoint of iteration 3, mid-epoch
    (fault("KillInDStep", at=6, step=2), 5),  # SIGKILL in the 2nd of the k=2 D steps of iteration 6
], ids=["kill_in_checkpoint", "kill_in_d_step"])
def test_killed_run_resumes_to_the_same_weights(injected, last_good, reference, tmp_path):
    run_dir = tmp_path / "run"
    killed = run_cli(*RUN, *injected, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    ckpt, path = latest_good(run_dir)  # the previous checkpoint survived the kill, complete
    assert path.name == "last.ckpt" and ckpt["gan_lab"]["iteration"] == last_good
    before = ckpt["gan_lab"]["trained_seconds"]  # the killed session's training time, kept for the summary
    resumed = run_cli(*RUN, f"resume={run_dir}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resuming from {path} at iteration {last_good}" in resumed.stdout
    _assert_same_weights(run_dir, reference)
    summary = json.loads((run_dir / "metrics.json").read_text())
    assert summary["status"] == "finished" and summary["iterations"] == 8 and summary["d_updates"] == 16
    assert 0 < before < summary["wall_time_s"]  # both sessions' training seconds
    ref_history = [json.loads(r) for r in (reference[0] / "history.jsonl").read_text().splitlines()]
    history = [json.loads(r) for r in (run_dir / "history.jsonl").read_text().splitlines()]
    drop = lambda rows: [{k: v for k, v in r.items() if k != "perf/iterations_per_s"} for r in rows]
    assert drop(history) == drop(ref_history)  # the logged rows too, across the interruption


@pytest.mark.parametrize("stop", [1, 4, 7])
def test_resume_in_process_at_several_iterations(stop, reference, tmp_path):
    """Interrupt by an exception after iteration ``stop`` (a crash without a kill), then resume."""
    import gan_lab.systems.gan as gan_mod

    class Crash(Exception):
        pass

    original = gan_mod.GAN.training_step

    def crashing(self, batch, batch_idx):
        if self.iteration == stop:
            raise Crash
        return original(self, batch, batch_idx)

    gan_mod.GAN.training_step = crashing
    try:
        with pytest.raises(Crash):
            train(compose_cfg(*RUN), tmp_path)
    finally:
        gan_mod.GAN.training_step = original
    assert read_checkpoint(tmp_path / "checkpoints" / "last.ckpt")["gan_lab"]["iteration"] == stop
    train(compose_cfg(*RUN, f"resume={tmp_path}"), None)
    _assert_same_weights(tmp_path, reference)


def test_corrupt_last_checkpoint_falls_back_to_the_previous_one(reference, tmp_path):
    train(compose_cfg(*RUN, "train.checkpoint_every=3"), tmp_path)  # checkpoints at 3, 6 and the end (8)
    (tmp_path / "metrics.json").unlink()  # as if killed before the end
    last = tmp_path / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:4000])  # cut short, as by a full disk
    ckpt, path = latest_good(tmp_path)
    assert path.name == "prev.ckpt" and ckpt["gan_lab"]["iteration"] == 6
    from gan_lab.runs import load_run

    loaded = load_run(tmp_path)  # sample and evaluate fall back as resume does
    assert loaded.checkpoint.name == "prev.ckpt" and loaded.system.iteration == 6
    train(compose_cfg(*RUN, f"resume={tmp_path}"), None)
    _assert_same_weights(tmp_path, reference)


class _Exploit:
    def __reduce__(self):
        import os

        return (os.system, ("touch EXPLOITED",))


def test_checkpoint_carrying_a_malicious_pickle_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "run" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save({"state_dict": {}, "gan_lab": {"iteration": 1}, "payload": _Exploit()}, folder / "last.ckpt")
    with pytest.raises(ValueError, match="cannot be read safely") as info:
        read_checkpoint(folder / "last.ckpt")
    assert "weights_only" not in str(info.value) and "\x1b[" not in str(info.value)  # no unsafe advice, no colour
    with pytest.raises(ConfigError, match="resume.*readable checkpoint"):
        latest_good(tmp_path / "run")
    from gan_lab.runs import load_run

    with pytest.raises(ConfigError, match="run=.*no checkpoint could be loaded safely"):
        load_run(tmp_path / "run")
    assert not (tmp_path / "EXPLOITED").exists()  # no load ran the payload


def test_resume_refuses_a_different_run_and_a_folder_without_one(reference, tmp_path):
    with pytest.raises(ConfigError, match=r"train.k=1 is not allowed: 2, the value the run in"):
        train(compose_cfg(*RUN, "train.k=1", f"resume={reference[0]}"), None)
    with pytest.raises(ConfigError, match="resume.*holds no run"):
        train(compose_cfg(*RUN, f"resume={tmp_path}"), None)
    with pytest.raises(ConfigError) as info:  # another model: named as the command line names it, briefly
        train(compose_cfg(*[a for a in RUN if not a.startswith("model.")], "model=mlp", f"resume={reference[0]}"),
              None)
    assert str(info.value).startswith("model='mlp' is not allowed: dcgan, the choice the run in")
    assert "_target_" not in str(info.value) and len(str(info.value)) < 400


def test_keys_added_since_a_run_began_take_the_value_it_trained_with(tmp_path):
    """A run saved before train.simultaneous existed trained alternately: resuming it with a preset that now
    sets the key (experiment=ring_collapse) is a different run, refused; with the old value it resumes."""
    from omegaconf import OmegaConf

    from gan_lab.resume import check_same_run

    saved = OmegaConf.to_container(compose_cfg(*RUN), resolve=True)
    del saved["train"]["simultaneous"], saved["tricks"]["instance_noise_until"]
    with pytest.raises(ConfigError, match=r"train.simultaneous=True is not allowed: False, the value the run"):
        check_same_run(compose_cfg(*RUN, "train.simultaneous=true"), saved, tmp_path)
    check_same_run(compose_cfg(*RUN), saved, tmp_path)


def test_nan_stops_the_run_keeps_the_checkpoint_and_exits_3(tmp_path):
    run_dir = tmp_path / "run"
    # a NaN weight in D after iteration 4 (its checkpoint written): D's loss is NaN in iteration 5
    proc = run_cli(*RUN, "train.checkpoint_every=2", *fault("PoisonRank", at=4), f"hydra.run.dir={run_dir}",
                   cwd=tmp_path)
    assert proc.returncode == DIVERGED_STATUS, proc.stderr[-2000:]
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("gan_lab: error:")]
    assert len(errors) == 1 and "diverged by iteration 6" in errors[0]  # found at the next logged row (log_every=2)
    assert "optimizer.d.lr" in errors[0]  # what to change, not only how to repeat it
    summary = json.loads((run_dir / "metrics.json").read_text())
    assert summary["status"] == "diverged" and "non-finite" in summary["reason"]
    assert summary["last_good_checkpoint"]["iteration"] == 4
    ckpt = read_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert ckpt["gan_lab"]["iteration"] == 4
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())
    assert "diverged" in (run_dir / "report.html").read_text()


def test_sweep_with_a_diverging_job_finishes_the_others_and_skips_them_on_rerun(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", *RUN[:5], "train.iterations=4,8", "train.log_every=2", "train.checkpoint_every=2",
            *fault("PoisonRank", at=5), f"hydra.sweep.dir={sweep}"]
    proc = run_cli(*args, cwd=tmp_path)  # the 8-iteration job gets a NaN weight after iteration 5
    assert proc.returncode != 0  # Hydra reports the failed job at the end …
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    status = {j.name.split("_")[0]: json.loads((j / "metrics.json").read_text())["status"] for j in jobs}
    assert status == {"0": "finished", "1": "diverged"}  # … after the other job finished
    assert "1 of 2 jobs finished" in proc.stdout and "diverged: 1_" in proc.stdout
    again = run_cli(*args, cwd=tmp_path)  # the fault fired once: the finished job is skipped, the other resumes
    assert again.returncode == 0, again.stderr[-2000:]
    assert "already finished (4 iterations)" in again.stderr and "already finished" not in again.stdout
    assert "resuming from" in again.stdout and "at iteration 4" in again.stdout
    assert "2 of 2 jobs finished" in again.stdout


def test_same_seed_same_weights_and_the_deterministic_flag(tmp_path):
    a = train(compose_cfg(*RUN[:5], "train.iterations=3", "trainer.deterministic=true"), tmp_path / "a")
    b = train(compose_cfg(*RUN[:5], "train.iterations=3"), tmp_path / "b")
    assert a["status"] == b["status"] == "finished"
    _assert_same_weights(tmp_path / "a", (tmp_path / "b", _weights(tmp_path / "b")))


def _bad_inputs(root):
    """(arguments, the key the message names, words it must contain) for faults in files on disk."""
    from tests.test_data_files import solid, write_idx_set

    (root / "empty").mkdir()
    solid(root / "pics" / "a.png", (255, 0, 0))
    (root / "pics" / "b.png").write_bytes(b"not an image")
    write_idx_set(root / "cut")
    images = root / "cut" / "MNIST" / "raw" / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-100])
    return [
        (["dataset=mnist", f"paths.data_dir={root}/nothing"], "paths.data_dir",
         ["train-images-idx3-ubyte", "download"]),
        (["dataset=mnist", f"paths.data_dir={root}/cut"], "paths.data_dir", ["truncated"]),
        (["dataset=folder", f"dataset.path={root}/empty"], "dataset.path", ["no file ending in", ".png"]),
        (["dataset=folder", f"dataset.path={root}/pics", "dataset.size=8"], "dataset.path", ["b.png"]),
        (["dataset=ring"], "model", ["dcgan", "model=mlp"]),  # a model that cannot fit the data's shape
        (["regularizer=clip", "regularizer.clip_value=-0.01"], "regularizer.clip_value", ["(0"]),
        (["loss.label_smoothing=1.5"], "loss.label_smoothing", ["[0.0, 1.0)"]),
        (["model=mlp", "dataset=ring", "regularizer=r1", "tricks.unroll_steps=2"], "tricks.unroll_steps", ["r1"]),
        ([f"resume={root}/empty"], "resume", ["holds no run"]),
        (["optimizer.d.lr=-1"], "optimizer.d.lr", ["Invalid learning rate"]),  # more in tests/test_train.py's BAD
        (["regularizer=gp", "loss=wasserstein", "trainer.precision=16-mixed"], "trainer.precision", ["bf16-mixed"]),
    ] + ([] if torch.cuda.is_available() else [  # what the machine lacks, said as one line
        (["accelerator=gpu"], "trainer.accelerator", ["no CUDA device", "accelerator=cpu"]),
    ])


def test_bad_inputs_get_one_line_naming_the_key_and_exit_2(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    cases = _bad_inputs(tmp_path)
    for i in range(len(cases)):
        (tmp_path / f"cwd{i}").mkdir()
    with ThreadPoolExecutor(2) as pool:  # two at a time (on the test worker's core)
        procs = list(pool.map(lambda i: run_cli(*cases[i][0], "debug=tiny", "logger=none", cwd=tmp_path / f"cwd{i}"),
                              range(len(cases))))
    for (args, key, words), proc in zip(cases, procs):
        assert proc.returncode == 2, (args, proc.stderr[-1500:])
        assert f"gan_lab: error: {key}=" in proc.stderr and "Traceback" not in proc.stderr, (args, proc.stderr)
        for word in words:
            assert word in proc.stderr, (args, word, proc.stderr)


@pytest.mark.parametrize("model", [["model=progressive"], ["model=lapgan"],
                                   ["mixture.generators=2", "mixture.discriminators=2"],
                                   ["mixture.generators=2", "mixture.discriminators=2", "train.simultaneous=true"]],
                         ids=["progressive", "lapgan", "mixture", "mixture+simultaneous"])
def test_every_system_resumes_exactly(model, tmp_path):
    """The same resume mechanism for the systems with their own steps, phases and optimisers."""
    args = [*RUN[:4], *model, "train.iterations=6", "train.checkpoint_every=1", "train.log_every=2"]
    train(compose_cfg(*args), tmp_path / "ref")
    interrupted_then_resumed(args, tmp_path / "run", at=3)
    _assert_same_weights(tmp_path / "run", (tmp_path / "ref", _weights(tmp_path / "ref")))


@pytest.mark.parametrize("parts", [
    ["tricks.diffaug=[translation,cutout]", "tricks.ada_target=0.6", "tricks.ada_kimg=0.05", "tricks.ada_interval=1"],
    ["regularizer=[sn,lecam]", "loss=hinge"],
    ["regularizer=[sn,cr]", "loss=hinge", "tricks.historical_averaging=0.01"],
    ["tricks.pack=2", "regularizer=gp", "loss=wasserstein", "optimizer.lr_decay=linear"],
    ["model.conditional=projection", "regularizer=r1", "tricks.ema=0.9", "model.label_prior=data"],
    ["tricks.ada_target=0.6", "tricks.ada_kimg=0.05", "tricks.ada_interval=1", "train.mirror=true",
     "tricks.ada_strengths={brightness:0.5,cutout:1}"],
], ids=["ada", "lecam", "cr+historical_averaging", "pack+gp+lr_decay", "conditional+r1+ema", "bgc+cutout+mirror"])
def test_stateful_parts_resume_exactly_with_evaluation_and_logging_on(parts, tmp_path):
    """ADA's p, LeCam's anchors and the historical averages live in the checkpoint (and packing's rebuilt D
    resumes like any other): a run stopped by Ctrl-C
    at iteration 3 and resumed ends with the uninterrupted run's weights and buffers; the default logger,
    the in-training and the final evaluation run as a user's run has them."""
    args = ["debug=tiny", "dataset=digits", "model.width=8", "train.iterations=6", "train.checkpoint_every=1",
            "train.log_every=2", "eval.at_end=true", "eval.every=3", "eval.every_samples=40", "eval.samples=60",
            *parts]
    reference = train(compose_cfg(*args), tmp_path / "ref")
    resumed = interrupted_then_resumed(args, tmp_path / "run", at=3)
    _assert_same_weights(tmp_path / "run", (tmp_path / "ref", _weights(tmp_path / "ref")))
    assert resumed["metrics"]["train/d_loss"] == reference["metrics"]["train/d_loss"]
    assert (tmp_path / "run" / "logs").is_dir() and resumed["evaluation"]["samples"] == 60


def test_decompression_bomb_limit_stays_on():
    from PIL import Image

    import gan_lab.data.files  # noqa: F401 - importing the readers must not lift the limit

    assert Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS >= 89_000_000


def test_ctrl_c_during_training_says_so_records_it_and_resumes(tmp_path):
    """Ctrl-C as a user presses it (SIGINT to the process): one line on stderr, exit status 130, metrics.json
    says stopped with the last good checkpoint, and the run's own command with resume= continues it."""
    from tests.conftest import signalled_once_checkpointed

    args = ["model=mlp", "dataset=ring", "model.hidden=[16]", "logger=none", "trainer.enable_progress_bar=false",
            "eval.every=0", "train.checkpoint_every=20", f"hydra.run.dir={tmp_path}/run"]
    proc = signalled_once_checkpointed([*args, "train.iterations=1000000"], tmp_path / "run", signal.SIGINT, tmp_path)
    err = proc.stderr
    assert proc.returncode == 128 + signal.SIGINT, err[-3000:]
    lines = [ln for ln in err.splitlines() if ln.startswith("gan_lab: error:")]
    assert len(lines) == 1 and "interrupted (Ctrl-C) at iteration" in lines[0] and "resume=" in lines[0], err[-2000:]
    assert "Traceback" not in err
    summary = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert summary["status"] == "stopped" and summary["last_good_checkpoint"]["iteration"] >= 20
    more = run_cli(*args, f"train.iterations={summary['last_good_checkpoint']['iteration'] + 5}",
                   f"resume={tmp_path}/run", cwd=tmp_path)
    assert more.returncode == 0, more.stderr[-3000:]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["status"] == "finished"


def test_ctrl_c_during_the_final_evaluation_is_finished_by_the_next_run(tmp_path, monkeypatch):
    """Interrupted while measuring the final G: not recorded as finished; the same command measures it."""
    import gan_lab.outcome as outcome_mod
    from gan_lab.outcome import Interrupted

    args = [*RUN, "eval.at_end=true"]
    real = outcome_mod.evaluate_system

    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(outcome_mod, "evaluate_system", interrupted)
    with pytest.raises(Interrupted, match="interrupted .Ctrl-C. at iteration 8"):
        train(compose_cfg(*args), tmp_path)
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "stopped"
    monkeypatch.setattr(outcome_mod, "evaluate_system", real)
    summary = train(compose_cfg(*args), tmp_path)
    assert summary["status"] == "finished" and summary["iterations"] == 8
    assert any(k.startswith("val/fid_") for k in summary["metrics"])


def test_a_full_disk_while_checkpointing_stops_in_one_line_and_leaves_no_partial_file(tmp_path, monkeypatch):
    """The disk fills while iteration 4's checkpoint is written: the run stops saying so, metrics.json records the
    failure, no partial file stays in checkpoints/ (nor one a killed writer left), and the run resumes from
    iteration 2's checkpoint once there is room."""
    import errno
    from pathlib import Path

    from lightning import Trainer

    from gan_lab.callbacks.checkpoint import CheckpointWriteError

    real = Trainer.save_checkpoint

    def full(self, path, weights_only=False, storage_options=None):
        if self.lightning_module.iteration >= 4:
            Path(path).write_bytes(b"half a checkpoint")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, path, weights_only=weights_only)

    monkeypatch.setattr(Trainer, "save_checkpoint", full)
    args = [*RUN, "train.checkpoint_every=2"]
    with pytest.raises(CheckpointWriteError, match="iteration 4 .*No space left on device.*iteration 2 is intact"):
        train(compose_cfg(*args), tmp_path)
    folder = tmp_path / "checkpoints"
    assert not list(folder.glob(".last.ckpt.tmp*"))
    assert read_checkpoint(folder / "last.ckpt")["gan_lab"]["iteration"] == 2
    summary = json.loads((tmp_path / "metrics.json").read_text())
    assert summary["status"] == "failed" and "No space left" in summary["reason"]
    monkeypatch.undo()
    (folder / ".last.ckpt.tmp12345").write_bytes(b"left by a writer that was killed")
    assert train(compose_cfg(*args, f"resume={tmp_path}"), None)["status"] == "finished"
    assert not list(folder.glob(".last.ckpt.tmp*"))


@pytest.mark.parametrize("where", ["under_a_file", "is_a_file"])
def test_a_run_folder_that_cannot_be_made_is_one_line_and_writes_nothing(where, tmp_path):
    """Hydra would make the folder first and fail with its own traceback: the lab checks it before (a read-only
    file system takes the same path: the folder cannot be made or written)."""
    (tmp_path / "taken").write_text("a file")
    folder = tmp_path / "taken" / "run" if where == "under_a_file" else tmp_path / "taken"
    proc = run_cli("debug=tiny", "logger=none", f"hydra.run.dir={folder}", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"gan_lab: error: hydra.run.dir={folder}: ")
    assert "is a file, not a folder" in lines[0] and (tmp_path / "taken").read_text() == "a file"
    sweep = run_cli("-m", "debug=tiny", "logger=none", "seed=1,2", f"hydra.sweep.dir={folder}", cwd=tmp_path)
    assert sweep.returncode == 2 and sweep.stderr.strip().startswith(f"gan_lab: error: hydra.sweep.dir={folder}: ")
