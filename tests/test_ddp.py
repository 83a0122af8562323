"""Multi-process runs as users run them: the README's DDP command with the default config's evaluation,
logging and checkpointing on (only lengths and sample counts shrunk), 2 processes over gloo.

- the run finishes, every rank ends with the same weights, metrics are measured during and after training;
- its distributed evaluation gives the single-process numbers of the same weights and z;
- a multirun of such jobs survives a stalled rank (the job fails with the rank named, the sweep goes on),
  and re-running the sweep resumes the failed job to the same weights as an uninterrupted run;
- a killed rank, a stalled rank 0 and a NaN on one rank each end the run with their own status, never a hang.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import run_cli

README_DDP = ("model=dcgan", "loss=hinge", "trainer.devices=2", "accelerator=ddp_cpu")
SMALL = ("train.iterations=6", "train.log_every=2", "train.sample_every=3", "train.checkpoint_every=2",
         "eval.every=3", "eval.every_samples=200", "eval.samples=400")
TOY_DDP = ("model=mlp", "dataset=ring", "model.hidden=[64,64]", "train.batch_size=128", "trainer.devices=2",
           "accelerator=ddp_cpu", *SMALL, "trainer.timeout_minutes=0.2", "trainer.enable_progress_bar=false")
FID_END, FID_DURING = "val/fid_400_mnist5k_classifier", "val/fid_200_mnist5k_classifier"


def _summary(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def _processes_mentioning(path: Path) -> list[str]:
    """Command lines of live processes that name ``path`` (a child rank left behind would)."""
    out = []
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(path) in cmd and "pytest" not in cmd:
            out.append(cmd)
    return out


@pytest.fixture(scope="module")
def readme_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    started = time.perf_counter()
    proc = run_cli(*README_DDP, *SMALL, f"hydra.run.dir={root}/run", cwd=root, timeout=300)
    return proc, root / "run", time.perf_counter() - started


def test_readme_ddp_command_with_default_evaluation_finishes_in_sync(readme_run):
    proc, run, wall = readme_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = _summary(run)
    assert summary["status"] == "finished" and summary["iterations"] == 6
    ddp = summary["ddp"]
    # Ranks draw different real minibatches and z, so equal digests mean the gradients were all-reduced.
    assert ddp["world_size"] == 2 and ddp["in_sync"] and len(set(ddp["param_sha256"])) == 1
    finals = summary["metrics"]
    assert 0 < finals[FID_END] < 1e4 and finals["val/classes_covered_400_mnist5k_classifier"] >= 1
    assert "val/kde_loglik_400" in finals and "memorization/nn_l2_median" in finals
    rows = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows if FID_DURING in r] == [3, 6]  # measured during training, once each
    during = min((r[FID_DURING], r["iteration"]) for r in rows if FID_DURING in r)
    assert (summary["best"]["metric"], summary["best"]["value"], summary["best"]["iteration"]) == (FID_DURING, *during)
    best = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)  # eval.best=auto, written by every rank
    assert best["gan_lab"]["iteration"] == during[1]  # together at the measurement that was best
    assert all(math.isfinite(r["train/d_loss"]) for r in rows if "train/d_loss" in r)
    for name in ("samples/final.png", "samples/iter_000003.png", "checkpoints/last.ckpt", "report.html",
                 "memorization.png", "losses.png", "samples.npy", "logs"):
        assert (run / name).exists(), name
    assert np.load(run / "samples.npy").shape == (256, 1, 28, 28)  # gathered once, written once
    assert sorted(p.name for p in run.parent.iterdir()) == ["run"]  # rank 1 wrote into the same folder
    assert proc.stdout.count("gan_lab: run folder") == 1
    assert not _processes_mentioning(run)


def test_distributed_evaluation_equals_single_process(readme_run, tmp_path):
    """The same weights and z measured by one process: every number of the 2-rank evaluation, the
    in-training measurement and the gathered samples agree within floating-point tolerance."""
    from gan_lab.callbacks.evaluation import PeriodicEvaluation
    from gan_lab.evaluate import evaluate
    from gan_lab.runs import load_run
    from gan_lab.sample import sample

    _, run, _ = readme_run
    ddp = _summary(run)["metrics"]
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    single = evaluate(str(copy), n=400)["metrics"]
    keys = [k for k in ddp if k.startswith(("val/", "memorization/")) and "_200_" not in k]
    assert len(keys) >= 15
    for key in keys:
        assert single[key] == pytest.approx(ddp[key], rel=1e-5, abs=1e-6), key

    loaded = load_run(copy)
    measured = PeriodicEvaluation(loaded.source, 3, 200, 0, {"inception": "false"}).measure(loaded.system)
    last = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()
            if FID_DURING in line][-1]
    assert last["iteration"] == 6
    for key, value in measured.items():
        assert value == pytest.approx(last[key], rel=1e-5, abs=1e-6), key

    out = sample(str(copy), n=256, seed=777, out=str(tmp_path / "s"))  # the z finalize draws (seed + 777)
    np.testing.assert_allclose(np.load(out / "samples.npy"), np.load(run / "samples.npy"), rtol=0, atol=1e-5)

    from gan_lab.report import write_report

    page = write_report(copy).read_text()  # python -m gan_lab.report on the DDP run's folder
    assert "finished" in page and FID_END in page


def test_sweep_of_ddp_jobs_survives_a_stalled_rank_and_resumes_it(readme_run, tmp_path):
    """Job 0's rank 1 stops after iteration 3 for good: the job fails naming rank 1, job 1 finishes, and the same
    command again resumes job 0 to the uninterrupted run's weights.

    Collectives time out after 2 minutes, far beyond the healthy waits of a loaded machine (rank 0 waits for
    the child rank to start, rank 1 for rank 0 to compute the evaluation's numbers alone: up to 25 s measured
    with 2 busy processes on 2 cores); rank 0 shortens its time-out to 2 s only once rank 1 has stalled
    (tests.faults.StallRank's detect_s), so only the time-out ends its wait, and in seconds."""
    _, reference, _ = readme_run
    sweep = tmp_path / "sweep"
    line = ("-m", *README_DDP, *SMALL, "seed=0,1", "logger=wandb", "trainer.timeout_minutes=2",
            "+callbacks.stall._target_=tests.faults.StallRank", "+callbacks.stall.rank=1",
            "+callbacks.stall.at=3", "+callbacks.stall.seed=0", "+callbacks.stall.detect_s=2",
            f"hydra.sweep.dir={sweep}")
    started = time.perf_counter()
    proc = run_cli(*line, cwd=tmp_path, timeout=400)
    assert time.perf_counter() - started < 300
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-3000:]  # the sweep ran to its end; a job failed
    assert "1 of 2 jobs finished" in out
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert len(jobs) == 2
    failed, done = _summary(jobs[0]), _summary(jobs[1])
    assert failed["status"] == "failed" and failed["reason"].startswith("rank 1 stalled while training, iteration 3")
    assert failed["last_good_checkpoint"]["iteration"] == 2
    assert "rank 1 stalled while training, iteration 3" in out
    # found by the shortened time-out, before the configured 2 minutes could have found it
    assert int(re.search(r"no progress for (\d+) s", failed["reason"]).group(1)) < 120
    assert done["status"] == "finished" and done["ddp"]["in_sync"] and FID_END in done["metrics"]
    for job in jobs:
        assert list((job / "logs" / "wandb").glob("offline-run-*")), job  # one offline wandb run per job
    assert not _processes_mentioning(sweep)

    again = run_cli(*line, cwd=tmp_path, timeout=400)
    out = again.stdout + again.stderr
    assert again.returncode == 0, out[-3000:]
    assert "2 of 2 jobs finished" in out and "already finished" in out and "resuming from" in out
    resumed = _summary(jobs[0])
    assert resumed["status"] == "finished" and resumed["ddp"]["in_sync"]
    # exact resume across ranks: the same weights as the uninterrupted README run (same seed and settings)
    assert resumed["ddp"]["param_sha256"] == _summary(reference)["ddp"]["param_sha256"]


@pytest.mark.parametrize(("fault", "rank", "status", "message"), [
    ("KillRank", 1, 4, "rank 1 died (killed by SIGKILL) while training, iteration "),
    ("StallRank", 0, 4, "rank 0 stalled while training, iteration 3"),
    ("PoisonRank", 1, 3, "diverged by iteration 4: non-finite"),
])
def test_a_failing_rank_ends_the_run_with_its_own_status(tmp_path, fault, rank, status, message):
    """SIGKILL on rank 1; rank 0 stuck outside any collective (rank 1 times out, rank 0 is interrupted);
    a NaN weight on rank 1 only (the all-reduced row carries it to rank 0: both stop at the same row)."""
    started = time.perf_counter()
    # only a stall needs the short collective time-out to be found; with it, a rank slow to start on a loaded
    # machine (the rendezvous shares the time-out) would end the other cases before their fault
    patience = "trainer.timeout_minutes=0.2" if fault == "StallRank" else "trainer.timeout_minutes=1"
    proc = run_cli(*TOY_DDP, patience, f"+callbacks.f._target_=tests.faults.{fault}", f"+callbacks.f.rank={rank}",
                   "+callbacks.f.at=3", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path, timeout=200)
    assert time.perf_counter() - started < 120
    assert proc.returncode == status, proc.stderr[-3000:]
    assert message in proc.stdout + proc.stderr
    summary = _summary(tmp_path / "run")
    assert summary["status"] == ("diverged" if status == 3 else "failed")
    assert summary["last_good_checkpoint"]["iteration"] == 2
    if status == 4:
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("gan_lab: error:")]
        assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert not _processes_mentioning(tmp_path / "run")
    assert os.path.isfile(tmp_path / "run" / "report.html")


def _toy_system():
    import torch

    from gan_lab.compose import build_components, build_system
    from tests.conftest import compose_cfg

    torch.manual_seed(0)
    cfg = compose_cfg("debug=tiny", "model=mlp", "dataset=ring", "model.hidden=[32,32]")
    c = build_components(cfg)
    return build_system(cfg, c), c.source


def _toy_rank(rank: int, world: int, init_file: str, out: str) -> None:
    import torch.distributed as dist

    from gan_lab.callbacks.evaluation import PeriodicEvaluation
    from gan_lab.distributed import Ranks
    from gan_lab.measure import evaluate_system

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        system, source = _toy_system()
        ranks = Ranks.current()
        summary = evaluate_system(system, source, Path(out), n=501, seed=0, ranks=ranks)
        measured = PeriodicEvaluation(source, 1, 301, 0).measure(system, ranks)
        assert summary["metrics"] and measured  # every rank receives the numbers
        if rank == 0:
            (Path(out) / "ddp.json").write_text(json.dumps({"end": summary["metrics"], "during": measured}))
    finally:
        dist.destroy_process_group()


def test_distributed_toy_evaluation_equals_single_process(tmp_path):
    """Mode metrics, precision/recall/density/coverage on points and the Parzen log-likelihood: 2 gloo ranks
    (odd sample counts: unequal shares) against one process, same weights and z."""
    import torch.multiprocessing as mp

    from gan_lab.callbacks.evaluation import PeriodicEvaluation
    from gan_lab.measure import evaluate_system

    mp.spawn(_toy_rank, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    ddp = json.loads((tmp_path / "ddp.json").read_text())
    system, source = _toy_system()
    single_dir = tmp_path / "single"
    single_dir.mkdir()
    single = evaluate_system(system, source, single_dir, n=501, seed=0)["metrics"]
    measured = PeriodicEvaluation(source, 1, 301, 0).measure(system)
    assert {"toy/modes_captured", "val/kde_loglik_501", "val/precision_501_raw"} <= set(ddp["end"])
    for key, value in single.items():
        assert ddp["end"][key] == pytest.approx(value, rel=1e-6, abs=1e-9), key
    assert ddp["during"] == pytest.approx(measured, rel=1e-6, abs=1e-9)


def test_sigterm_stops_every_rank_and_keeps_the_checkpoint(tmp_path):
    """What a scheduler's time limit sends (to rank 0 only here): both ranks stop at the same iteration after
    checkpointing it, metrics.json says so, exit status 143, and the run resumes from there."""
    import signal

    from tests.conftest import signalled_once_checkpointed

    args = [*TOY_DDP, "train.iterations=100000", "train.checkpoint_every=50", f"hydra.run.dir={tmp_path}/run"]
    proc = signalled_once_checkpointed(args, tmp_path / "run", signal.SIGTERM, cwd=tmp_path)
    err = proc.stderr
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert "gan_lab: error: stopped by SIGTERM at iteration" in err
    summary = _summary(tmp_path / "run")
    # the ranks agreed on an iteration at a logged row, checkpointed it together and stopped there
    assert summary["status"] == "stopped" and summary["iterations"] % 2 == 0
    assert summary["last_good_checkpoint"]["iteration"] == summary["iterations"]
    assert not _processes_mentioning(tmp_path / "run")
    more = run_cli(*TOY_DDP, f"train.iterations={summary['iterations'] + 4}", f"resume={tmp_path}/run",
                   cwd=tmp_path, timeout=200)
    assert more.returncode == 0, more.stderr[-3000:]
    assert _summary(tmp_path / "run")["status"] == "finished"


def test_simultaneous_updates_keep_the_ranks_in_sync(tmp_path):
    """train.simultaneous under DDP: G's all-reduced gradient is held while D's updates run their own
    all-reduces; both ranks end with the same weights after evaluating and checkpointing (that G's step
    applies the held gradient: tests/test_system.py)."""
    proc = run_cli(*TOY_DDP, "train.simultaneous=true", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path, timeout=200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = _summary(tmp_path / "run")
    assert summary["status"] == "finished" and summary["ddp"]["in_sync"] and summary["d_updates"] == 6
    assert summary["evaluation"]["samples"] == 400 and (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.parametrize(("override", "key"), [
    ("trainer.devices=0", "trainer.devices"), ("trainer.devices=-2", "trainer.devices"),
    ("trainer.num_nodes=0", "trainer.num_nodes"), ("trainer.timeout_minutes=0", "trainer.timeout_minutes"),
    ("trainer.timeout_minutes=-1", "trainer.timeout_minutes"),
])
def test_bad_multi_process_settings_are_refused_naming_the_key(override, key):
    from gan_lab.compose import build_components
    from gan_lab.errors import ConfigError
    from tests.conftest import compose_cfg

    with pytest.raises(ConfigError, match=rf"^{key}=.* is not allowed"):
        build_components(compose_cfg("debug=tiny", "model=mlp", "dataset=ring", "accelerator=ddp_cpu", override))


def _two_ranks(rank: int, port: int, out: str) -> None:
    """One of two gloo ranks: each player's gradients differ per rank; only the stepped player's are averaged."""
    import torch
    import torch.distributed as dist

    from gan_lab.distributed import Ranks

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        torch.manual_seed(0)
        d, g = torch.nn.Linear(3, 2), torch.nn.Linear(2, 3)
        x = torch.full((4, 3), float(rank + 1))
        (d(x).sum() + g(torch.ones(1, 2)).sum() * (rank + 1)).backward()
        local_d = [p.grad.clone() for p in d.parameters()]
        local_g = [p.grad.clone() for p in g.parameters()]
        ranks = Ranks.current()
        ranks.average_gradients(d.parameters())
        gathered = ranks.gather(torch.arange(3 * rank, 3 * rank + 2 + rank, dtype=torch.float32), "numbers")
        torch.save({"local_d": local_d, "local_g": local_g, "d": [p.grad for p in d.parameters()],
                    "g": [p.grad for p in g.parameters()], "gathered": gathered,
                    "said": ranks.broadcast({"from": "rank 0"} if rank == 0 else None)}, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_only_the_stepped_players_gradients_are_averaged_and_samples_gather_on_rank_0(tmp_path):
    """The lab's own gradient sync (``PlayerDDP``): D's gradients become the mean over the ranks, G's stay each
    rank's own; a gather reaches rank 0 only, in rank order; a broadcast reaches every rank."""
    import socket

    import torch
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(_two_ranks, args=(port, str(tmp_path)), nprocs=2, join=True, start_method="spawn")
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert not torch.equal(r0["local_d"][0], r1["local_d"][0])  # D's weight gradients differ per rank
    for a, b, mean0, mean1 in zip(r0["local_d"], r1["local_d"], r0["d"], r1["d"]):
        torch.testing.assert_close(mean0, (a + b) / 2, rtol=0, atol=1e-6)
        assert torch.equal(mean0, mean1)
    for rank in (r0, r1):
        assert all(torch.equal(g, own) for g, own in zip(rank["g"], rank["local_g"]))
    assert r0["gathered"].tolist() == [0.0, 1.0, 3.0, 4.0, 5.0] and r1["gathered"] is None
    assert r0["said"] == r1["said"] == {"from": "rank 0"}


def test_a_collective_that_never_completes_times_out_inside_the_waiting_phase():
    from gan_lab.distributed import CollectiveTimeout, completed

    class Stuck:
        waited = False

        def is_completed(self):
            return False

        def wait(self):
            Stuck.waited = True

    class Done(Stuck):
        def is_completed(self):
            return True

    with pytest.raises(CollectiveTimeout, match="averaging the logged row: no answer .* within 0 s"):
        completed(Stuck(), "averaging the logged row", timeout_s=0.05)
    assert not Stuck.waited
    completed(Done(), "anything", timeout_s=0.05)
    assert Done.waited
