"""``eval.best``: checkpoints/best.ckpt holds the run at its best in-training measurement, across a resume, and
``checkpoint=best`` in gan_lab.sample / gan_lab.evaluate reads it."""

from __future__ import annotations

import json
import math

import pytest
import torch

from gan_lab.callbacks.checkpoint import best_metric, best_so_far
from gan_lab.callbacks.evaluation import PeriodicEvaluation
from gan_lab.errors import ConfigError
from gan_lab.resume import read_checkpoint
from gan_lab.train import train
from tests.conftest import compose_cfg

FID = "val/fid_200_mnist5k_classifier"
KID = "val/kid_200_mnist5k_classifier"
RUN = ("model.width=8", "model.z_dim=16", "train.batch_size=16", "train.log_every=5", "train.sample_every=0",
       "eval.every=10", "eval.every_samples=200", "eval.at_end=false", "output.final_samples=16")


def test_the_metric_followed_and_the_best_so_far():
    row = {"iteration": 10, "val/is_1k_x_classifier": 2.0, "val/kid_1k_x_classifier": 0.1,
           "val/fid_1k_x_classifier": 30.0, "train/d_loss": 0.5}
    assert best_metric(row, "auto") == "val/fid_1k_x_classifier"  # the headline: FID before KID and IS
    assert best_metric(row, "val/is_1k_x_classifier") == "val/is_1k_x_classifier"
    assert best_metric(row, "val/fid_5k_x_classifier") is None  # not what this measurement reports
    rows = [{"iteration": i, "val/fid_1k_x_classifier": v, "val/is_1k_x_classifier": s}
            for i, v, s in ((10, 5.0, 1.5), (20, 3.0, 2.5), (30, float("nan"), 9.0), (40, 3.0, 2.0),
                            (50, 4.0, float("inf")))]
    assert best_so_far(rows, "val/fid_1k_x_classifier") == (3.0, 20)  # lower is better; a tie keeps the first
    assert best_so_far(rows, "val/is_1k_x_classifier") == (9.0, 30)  # higher is better; non-finite skipped
    assert best_so_far([], "val/fid_1k_x_classifier") is None


def _scripted(monkeypatch, values: dict[int, float], kid: dict[int, float] | None = None):
    """The in-training measurement replaced by FIDs (and KIDs) fixed per iteration (the real one runs below)."""
    def measure(self, module, ranks=None):
        return {FID: values[module.iteration], **({KID: kid[module.iteration]} if kid else {})}

    monkeypatch.setattr(PeriodicEvaluation, "prepare", lambda self: None)
    monkeypatch.setattr(PeriodicEvaluation, "measure", measure)


def _iteration(path) -> int:
    return read_checkpoint(path)["gan_lab"]["iteration"]


def test_best_checkpoint_follows_the_measurement_across_a_resume(tmp_path, monkeypatch):
    """FID 5, 3 | resume | 4, 3.5, 6: the best stays iteration 20's, because the resumed run compares with the rows
    logged before it stopped (a run that forgot them would take iteration 30's 4.0 as its best)."""
    _scripted(monkeypatch, {10: 5.0, 20: 3.0, 30: 4.0, 40: 3.5, 50: 6.0})
    run = tmp_path / "run"
    first = train(compose_cfg(*RUN, "train.iterations=20"), run)
    assert first["best"] == {"metric": FID, "value": 3.0, "iteration": 20, "checkpoint": "checkpoints/best.ckpt"}
    assert _iteration(run / "checkpoints" / "best.ckpt") == 20
    best_weights = read_checkpoint(run / "checkpoints" / "best.ckpt")["state_dict"]
    summary = train(compose_cfg(*RUN, "train.iterations=50", f"resume={run}"), None)
    assert summary["status"] == "finished" and summary["iterations"] == 50
    assert summary["best"]["iteration"] == 20 and summary["best"]["value"] == 3.0
    kept = read_checkpoint(run / "checkpoints" / "best.ckpt")
    assert kept["gan_lab"]["iteration"] == 20
    assert all(torch.equal(kept["state_dict"][k], v) for k, v in best_weights.items())  # not rewritten
    assert _iteration(run / "checkpoints" / "last.ckpt") == 50
    assert f"best {FID}</th><td>3 at iteration 20" in (run / "report.html").read_text()


def test_a_later_better_measurement_replaces_it_and_null_keeps_none(tmp_path, monkeypatch):
    _scripted(monkeypatch, {10: 5.0, 20: 6.0, 30: 2.0})
    summary = train(compose_cfg(*RUN, "train.iterations=30"), tmp_path / "a")
    assert summary["best"]["iteration"] == 30 and _iteration(tmp_path / "a" / "checkpoints" / "best.ckpt") == 30
    assert not list((tmp_path / "a" / "checkpoints").glob(".*tmp*"))  # written atomically
    _scripted(monkeypatch, {10: 5.0, 20: 6.0, 30: 2.0})
    off = train(compose_cfg(*RUN, "train.iterations=30", "eval.best=null"), tmp_path / "off")
    assert "best" not in off and not (tmp_path / "off" / "checkpoints" / "best.ckpt").exists()


def test_a_best_checkpoint_the_resumed_rows_do_not_account_for_is_dropped(tmp_path, monkeypatch, caplog):
    """best.ckpt and metrics.json's ``best`` never disagree: (a) a resume that follows another metric drops the
    old metric's file; (b) a best.ckpt written after the checkpoint a run resumes from (it died in between) is
    dropped, and the resumed run keeps a new one only where its own rows say so."""
    _scripted(monkeypatch, {10: 5.0, 20: 3.0, 30: 4.0}, kid={10: 0.1, 20: 0.2, 30: 0.3})
    a = tmp_path / "a"
    assert train(compose_cfg(*RUN, "train.iterations=20"), a)["best"]["metric"] == FID
    again = train(compose_cfg(*RUN, "train.iterations=30", f"resume={a}", f"eval.best={KID}"), None)
    assert "best" not in again and not (a / "checkpoints" / "best.ckpt").exists()  # KID's best (10) has no file
    assert "dropped checkpoints/best.ckpt (iteration 20, " + FID in caplog.text

    _scripted(monkeypatch, {10: 5.0, 20: 4.0, 30: 3.0})
    b = tmp_path / "b"
    train(compose_cfg(*RUN, "train.iterations=30", "train.checkpoint_every=20"), b)
    assert _iteration(b / "checkpoints" / "best.ckpt") == 30
    (b / "checkpoints" / "prev.ckpt").replace(b / "checkpoints" / "last.ckpt")  # as if it died before 30's
    (b / "metrics.json").unlink()
    _scripted(monkeypatch, {30: 4.5})  # the resumed iteration 30 measures worse than 20's 4.0
    resumed = train(compose_cfg(*RUN, "train.iterations=30", "train.checkpoint_every=20", f"resume={b}"), None)
    assert resumed["status"] == "finished" and "best" not in resumed
    assert not (b / "checkpoints" / "best.ckpt").exists() and not (b / "checkpoints" / "best.json").exists()
    _scripted(monkeypatch, {30: 3.5})  # ... or better: the file is its own again
    (b / "checkpoints" / "prev.ckpt").replace(b / "checkpoints" / "last.ckpt")
    (b / "metrics.json").unlink()
    resumed = train(compose_cfg(*RUN, "train.iterations=30", "train.checkpoint_every=20", f"resume={b}"), None)
    assert resumed["best"]["iteration"] == 30 and resumed["best"]["value"] == 3.5
    assert _iteration(b / "checkpoints" / "best.ckpt") == 30


def test_a_real_run_keeps_its_best_and_the_commands_read_it(tmp_path, capsys):
    """The default job's evaluation, logging and checkpoints on: best.ckpt is the iteration of the lowest FID the
    run logged; gan_lab.sample and gan_lab.evaluate draw from it with checkpoint=best, into best/."""
    from gan_lab.evaluate import evaluate
    from gan_lab.runs import load_run
    from gan_lab.sample import sample

    run = tmp_path / "run"
    summary = train(compose_cfg(*RUN, "train.iterations=30", "eval.at_end=true", "eval.samples=200"), run)
    rows = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    measured = [(r[FID], r["iteration"]) for r in rows if FID in r]
    assert [i for _, i in measured] == [10, 20, 30] and all(math.isfinite(v) for v, _ in measured)
    lowest = min(measured)  # (value, iteration): the first of equal values, as the run keeps
    assert (summary["best"]["value"], summary["best"]["iteration"]) == pytest.approx(lowest)
    assert load_run(run, checkpoint="best").system.iteration == lowest[1]
    assert load_run(run).system.iteration == 30
    out = sample(str(run), n=8, checkpoint="best")
    assert out == run / "best" / "samples_8" and (out / "samples.npy").is_file()
    best = evaluate(str(run), n=200, checkpoint="best")
    assert best["iteration"] == lowest[1] and FID in best["metrics"]
    assert json.loads((run / "best" / "metrics.json").read_text())["iteration"] == lowest[1]
    assert json.loads((run / "metrics.json").read_text())["metrics"][FID] == summary["metrics"][FID]  # untouched


def test_bad_values_are_one_line_naming_the_key(tmp_path, monkeypatch, capsys):
    from gan_lab import evaluate, sample

    with pytest.raises(ConfigError, match="eval.best"):
        train(compose_cfg(*RUN, "eval.best=val/nothing_like_it"), tmp_path / "bad")
    assert not (tmp_path / "bad").exists()  # refused before the run folder was made
    _scripted(monkeypatch, {10: 1.0})
    train(compose_cfg(*RUN, "train.iterations=10", "eval.best=null"), tmp_path / "none")
    for main, args in ((sample.main, ["n=4"]), (evaluate.main, []), (evaluate.main, ["drs=true"])):
        with pytest.raises(SystemExit) as code:
            main([f"run={tmp_path / 'none'}", "checkpoint=best", *args])
        assert code.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and all(line.startswith("gan_lab: error: checkpoint=") for line in err)
    assert "kept no checkpoints/best.ckpt" in err[0] and "drs=true" in err[2]
    with pytest.raises(SystemExit):
        sample.main([f"run={tmp_path / 'none'}", "checkpoint=newest"])
    assert "last (the newest) or best" in capsys.readouterr().err
