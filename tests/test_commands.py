"""The commands that work on a finished run folder: sample and evaluate."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gan_lab.evaluate import evaluate
from gan_lab.runs import load_run
from gan_lab.sample import lerp, sample, slerp
from gan_lab.train import train
from tests.conftest import compose_cfg


@pytest.fixture(scope="module")
def ring_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("ring_run")
    train(compose_cfg("debug=tiny", "model=mlp", "dataset=ring", "model.hidden=[16]", "logger=none",
                      "tricks.ema=0.5"), run)
    return run


def test_a_run_folder_rebuilds_the_trained_generator(ring_run):
    loaded = load_run(ring_run)
    saved = np.load(ring_run / "samples.npy")
    g = torch.Generator().manual_seed(0 + 777)  # the seed finalize() draws samples.npy with
    again = loaded.system.generate(loaded.system.sample_z(len(saved), generator=g).cpu())
    np.testing.assert_array_equal(again.numpy(), saved)  # same weights (EMA included), same z
    assert loaded.system.iteration == 4


def test_sample_writes_n_samples_and_latent_walks(ring_run, tmp_path):
    out = sample(str(ring_run), n=300, out=str(tmp_path / "s"), interpolate=True, steps=5, rows=3)
    assert np.load(out / "samples.npy").shape == (300, 2)
    assert {p.name for p in out.iterdir()} == {"samples.npy", "samples.png", "interpolation_lerp.png",
                                                "interpolation_slerp.png"}


def test_interpolations_hit_both_ends_and_slerp_keeps_the_norm():
    z0, z1 = torch.randn(4, 64), torch.randn(4, 64)
    t = torch.linspace(0, 1, 5)
    for fn in (lerp, slerp):
        path = fn(z0, z1, t)
        torch.testing.assert_close(path[:, 0], z0, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(path[:, -1], z1, atol=1e-5, rtol=1e-5)
    same_norm = z1 / z1.norm(dim=1, keepdim=True) * z0.norm(dim=1, keepdim=True)
    norms = slerp(z0, same_norm, t).norm(dim=2)
    torch.testing.assert_close(norms, z0.norm(dim=1, keepdim=True).expand(4, 5), rtol=1e-4, atol=1e-4)


def test_evaluate_adds_every_toy_metric_with_its_protocol(ring_run):
    summary = evaluate(str(ring_run))
    m = summary["metrics"]
    for key in ("toy/modes_captured", "val/precision_2500_raw", "val/recall_2500_raw", "val/density_2500_raw",
                "val/coverage_2500_raw", "val/kde_loglik_2500", "val/kde_loglik_sem_2500"):
        assert key in m
    assert "train/d_loss" in m  # training's numbers are kept
    assert any(k.startswith("val/kde_loglik") for k in summary["protocols"])
    assert json.loads((ring_run / "metrics.json").read_text())["evaluation"]["samples"] == 2500


def test_commands_refuse_a_folder_that_is_not_a_run(tmp_path):
    import subprocess
    import sys
    from concurrent.futures import ThreadPoolExecutor

    calls = [(module, arg) for module in ("gan_lab.sample", "gan_lab.evaluate")
             for arg in (f"run={tmp_path}", "runn=x")]
    with ThreadPoolExecutor(2) as pool:  # two processes at a time (on the test worker's core)
        procs = list(pool.map(lambda c: subprocess.run([sys.executable, "-m", c[0], c[1]], capture_output=True,
                                                       text=True), calls))
    for (module, arg), proc in zip(calls, procs):
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, (module, arg, proc.stderr[-800:])
        assert ("checkpoints/last.ckpt" if arg.startswith("run=") else "run=") in proc.stderr, (module, arg)



def test_evaluate_on_images_writes_the_memorization_pictures(tmp_path):
    train(compose_cfg("debug=tiny", "dataset=digits", "model.width=8", "logger=none"), tmp_path)
    m = evaluate(str(tmp_path), n=500)["metrics"]
    assert (tmp_path / "memorization.png").is_file() and (tmp_path / "duplicates.png").is_file()
    assert m["memorization/nn_l2_median"] > 0
    assert 0 <= m["memorization/duplicate_rate_400"] <= 1 and m["memorization/real_duplicate_rate_400"] <= 0.05
    for key in ("fid", "kid", "kid_std", "is", "classes_covered", "class_kl", "precision", "recall", "density",
                "coverage"):
        assert f"val/{key}_500_digits_classifier" in m
    assert m["val/fid_500_digits_classifier"] > 0 and 1 <= m["val/classes_covered_500_digits_classifier"] <= 10
    protocol = json.loads((tmp_path / "metrics.json").read_text())["protocols"]["val/*_500_digits_classifier"]
    assert "validation accuracy 0.9" in protocol  # the extractor's quality is stated beside its numbers


def test_metrics_are_measured_during_training(tiny, tmp_path):
    cfg = tiny("model=mlp", "dataset=ring", "model.hidden=[16]", "logger=csv", "train.iterations=6",
               "eval.every=3", "eval.every_samples=200")
    train(cfg, tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    measured = [r["iteration"] for r in rows if "toy/modes_captured" in r]
    assert measured == [3, 6]
    assert "toy/modes_captured" in (tmp_path / "logs" / "csv" / "metrics.csv").read_text()  # reached the logger
    final = json.loads((tmp_path / "metrics.json").read_text())["metrics"]
    assert "train/d_loss" in final and "toy/modes_captured" in final  # both kinds of row end in the summary


def test_image_metrics_during_training_use_the_domain_classifier(tiny, tmp_path):
    cfg = tiny("dataset=digits", "model.width=8", "logger=none", "train.iterations=2", "eval.every=2",
               "eval.every_samples=100")
    train(cfg, tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert any("val/fid_100_digits_classifier" in r for r in rows)


def test_measuring_during_training_does_not_change_the_run(tiny, tmp_path):
    """Same seed, with and without in-training evaluation: the same weights, bit for bit."""
    digests = []
    for every in (0, 2):
        run = tmp_path / f"every{every}"
        train(tiny("dataset=digits", "model.width=8", "logger=none", "train.iterations=6", f"eval.every={every}",
                   "eval.every_samples=100"), run)
        state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
        digests.append({k: v for k, v in state.items() if k.startswith("generator.")})
    for key, value in digests[0].items():
        assert torch.equal(value, digests[1][key]), key


@pytest.mark.parametrize(("command", "arg", "words"), [
    ("sample", "n=-5", "n=-5 is not allowed: an integer >= 1"),
    ("sample", "n=0", "n=0 is not allowed: an integer >= 1"),
    ("sample", "steps=0", "steps=0 is not allowed: an integer >= 1"),
    ("sample", "seed=x", "seed='x' is not allowed: an integer"),
    ("evaluate", "n=-1", "n=-1 is not allowed: an integer >= 1"),
])
def test_commands_refuse_counts_below_one_in_one_line(ring_run, command, arg, words, capsys):
    """Before any work: no empty samples.npy, no traceback, exit status 2."""
    import importlib

    main = importlib.import_module(f"gan_lab.{command}").main
    with pytest.raises(SystemExit) as info:
        main([f"run={ring_run}", arg])
    err = capsys.readouterr().err
    assert info.value.code == 2 and words in err and len(err.strip().splitlines()) == 1, err


def test_sample_refuses_an_out_that_is_a_file_in_one_line(ring_run, tmp_path, capsys):
    from gan_lab.sample import main

    (tmp_path / "taken").write_text("a file, not a folder")
    with pytest.raises(SystemExit) as info:
        main([f"run={ring_run}", "n=10", f"out={tmp_path / 'taken'}"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.startswith("gan_lab: error: out=") and "a folder it can write to" in err


def test_evaluate_rebuilds_a_deleted_summary_from_the_checkpoint(tmp_path):
    """metrics.json deleted after a finished run: evaluate writes it again with the status and iteration count the
    checkpoint holds (not an unknown status), then adds its measurements."""
    run = tmp_path / "run"
    first = train(compose_cfg("debug=tiny", "model=mlp", "dataset=ring", "model.hidden=[16]", "logger=none"), run)
    (run / "metrics.json").unlink()
    summary = evaluate(str(run), n=200)
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["status"] == "finished" and saved["iterations"] == 4 and "rebuilt from last.ckpt" in saved["reason"]
    # the training seconds come from the checkpoint, written at the last iteration, before the final evaluation
    assert 0 < saved["wall_time_s"] <= first["wall_time_s"]
    assert "toy/modes_captured" in summary["metrics"] and "train/d_loss" in saved["metrics"]
