"""Schedules (gan_lab/schedules.py): closed forms, what a run's log rows and optimisers show, exact resume, and one
line naming the key for every bad schedule."""

from __future__ import annotations

import json
import math

import pytest
import torch

from gan_lab.compose import build_components
from gan_lab.errors import ConfigError
from gan_lab.schedules import Schedule, schedules_of
from gan_lab.train import train
from tests.conftest import compose_cfg, interrupted_then_resumed


def _r3gan_cosine(t: float, base: float, final: float, total: float) -> float:
    """R3GAN's cosine_decay_with_warmup without warm-up or hold (its training loop), written out."""
    decay = 0.5 * (1 + math.cos(math.pi * t / total))
    value = base + (1 - decay) * (final - base)
    return final if t > total else value


@pytest.mark.parametrize("t", [0, 1, 25, 50, 99, 100, 150])
def test_kinds_follow_their_closed_forms(t):
    assert Schedule("x", "constant", 3.0, 9.0, 100).value(t) == 3.0
    linear = Schedule("x", "linear", 2.0, 0.5, 100).value(t)
    assert linear == pytest.approx(2.0 + (0.5 - 2.0) * min(t / 100, 1.0), rel=1e-15, abs=1e-15)
    cosine = Schedule("x", "cosine", 2e-4, 5e-5, 100).value(t)
    assert cosine == pytest.approx(_r3gan_cosine(t, 2e-4, 5e-5, 100), rel=1e-12)
    assert Schedule("x", "cosine", 0.9, 0.99, 100).value(t) == pytest.approx(_r3gan_cosine(t, 0.9, 0.99, 100),
                                                                              rel=1e-12)


def test_lr_decay_is_the_linear_schedule_bit_for_bit():
    """optimizer.lr_decay=linear once scaled the rate by max(0, 1 − t/T); its schedule gives the same floats."""
    (d, g) = schedules_of(compose_cfg("optimizer.lr_decay=linear", "optimizer.g.lr=3e-4", "train.iterations=7"))
    assert (d.key, g.key) == ("optimizer.d.lr", "optimizer.g.lr") and d.length == 7
    for t in range(10):
        assert g.value(t) == 3e-4 * max(0.0, 1.0 - t / 7)  # exact equality
        assert d.value(t) == 2e-4 * max(0.0, 1.0 - t / 7)


SCHEDULED = ["regularizer=r1", "train.log_every=1", "train.iterations=6",
             "+schedules.optimizer.g.lr={kind:cosine,end:5e-5}",
             "+schedules.optimizer.d.betas.1={kind:linear,end:0.99}",
             "+schedules.regularizer.weight={kind:linear,start:4,end:1,length:4}"]


def test_a_run_uses_and_logs_each_scheduled_value(tiny, tmp_path):
    train(tiny("logger=none", "model.width=8", *SCHEDULED), tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [1, 2, 3, 4, 5, 6]
    for row in rows:
        t = row["iteration"] - 1  # the row shows the values its last iteration ran with
        assert row["train/lr_g"] == pytest.approx(_r3gan_cosine(t, 2e-4, 5e-5, 6), rel=1e-12)
        assert "train/lr_d" not in row  # not scheduled
        assert row["schedule/optimizer.d.betas.1"] == pytest.approx(0.999 + (0.99 - 0.999) * t / 6, rel=1e-12)
        assert row["schedule/regularizer.weight"] == pytest.approx(4 + (1 - 4) * min(t / 4, 1), rel=1e-12)
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    opt_d, opt_g = (s["param_groups"][0] for s in ckpt["optimizer_states"])
    assert opt_g["lr"] == pytest.approx(_r3gan_cosine(5, 2e-4, 5e-5, 6), rel=1e-12)
    assert opt_d["betas"][1] == pytest.approx(0.999 + (0.99 - 0.999) * 5 / 6, rel=1e-12) and opt_d["betas"][0] == 0.5


def test_a_scheduled_run_resumes_to_the_same_weights(tmp_path):
    args = ["debug=tiny", "logger=none", "model.width=8", "train.checkpoint_every=1", *SCHEDULED]
    reference = train(compose_cfg(*args), tmp_path / "reference")
    assert reference["iterations"] == 6
    resumed = interrupted_then_resumed(args, tmp_path / "resumed", at=3)
    assert resumed["iterations"] == 6
    a = torch.load(tmp_path / "reference" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a if isinstance(a[k], torch.Tensor))


BAD = [
    (["+schedules.optimizer.g.lr={kind:exp,end:1}"], "schedules.optimizer.g.lr.kind", "constant, linear, cosine"),
    (["+schedules.optimizer.g.lr={kind:cosine}"], "schedules.optimizer.g.lr", "a start or an end"),
    (["+schedules.optimizer.g.lr={kind:cosine,end:1,steps:3}"], "schedules.optimizer.g.lr.steps", "kind, start"),
    (["+schedules.optimizer.g.lr={kind:cosine,end:.inf}"], "schedules.optimizer.g.lr.end", "a finite number"),
    (["+schedules.optimizer.g.lr={kind:cosine,end:1,length:0}"], "schedules.optimizer.g.lr.length", ">= 1"),
    (["+schedules.optimizer.g.lrr={kind:cosine,end:1}"], "schedules.optimizer.g.lrr", "this run has"),
    (["+schedules.train.k={kind:linear,end:5}"], "schedules.train.k", "optimizer.d.*"),
    (["+schedules.optimizer.g.lr=0.1"], "schedules.optimizer.g.lr", "a mapping"),
    (["+schedules.tricks.ema={kind:linear,end:0.999}"], "schedules.tricks.ema", "a part this run has"),
    (["optimizer.lr_decay=linear", "+schedules.optimizer.g.lr={kind:cosine,end:1e-5}"], "schedules.optimizer.g.lr",
     "optimizer.lr_decay=linear"),
]


@pytest.mark.parametrize(("overrides", "key", "words"), BAD, ids=[b[1].split("schedules.")[1] + str(i)
                                                                   for i, b in enumerate(BAD)])
def test_a_bad_schedule_names_its_key(overrides, key, words):
    with pytest.raises(ConfigError) as info:
        build_components(compose_cfg("debug=tiny", *overrides))
    assert info.value.key == key and words in str(info.value)


def test_a_schedule_reaches_a_member_of_a_list_of_regularizers():
    c = build_components(compose_cfg("debug=tiny", "regularizer=[r1,r2]",
                                     "+schedules.regularizer.r2.weight={kind:linear,end:0}"))
    (s,) = c.schedules.schedules
    assert s.key == "regularizer.r2.weight" and s.start == 10.0 and s.end == 0.0


@pytest.mark.parametrize("pipeline", [[], ["tricks.diffaug=translation"]], ids=["bgc", "diffaug"])
def test_a_scheduled_augmentation_probability_gates_the_pipeline(pipeline, tiny, tmp_path):
    """R3GAN's augmentation: p rises from 0 to the configured tricks.augment_p (no ADA controller); p = 0 (the
    schedule's start) leaves every D input as it is, whichever pipeline p gates; with the default evaluation on."""
    from gan_lab.compose import build_system

    args = ["logger=none", "model.width=8", "train.log_every=1", "train.iterations=4", "tricks.augment_p=0.5",
            "+schedules.tricks.augment_p={kind:linear,start:0}", *pipeline]
    system = build_system(tiny(*args), build_components(tiny(*args)))
    x = torch.rand(6, 1, 8, 8) * 2 - 1
    system.tricks.parts[0].augment_p = 0.0
    assert torch.equal(system.d_input(x), x)
    system.tricks.parts[0].augment_p = 1.0  # every transform on every sample: some image changes
    assert not torch.equal(system.d_input(x), x)
    summary = train(tiny(*args, "eval.at_end=true", "eval.every=2", "eval.every_samples=40", "eval.samples=60"),
                    tmp_path)
    assert summary["status"] == "finished" and any(k.startswith("val/") for k in summary["metrics"])
    rows = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    key = "schedule/tricks.augment_p"
    assert [r[key] for r in rows if key in r] == pytest.approx([0.0, 0.125, 0.25, 0.375], abs=1e-12)


def test_r3gan_small_runs_every_schedule_over_its_own_length():
    """experiment=r3gan_small keeps R3GAN's cosine schedules (same kinds, start and end values) but over the run's
    iterations, whatever train.iterations says; experiment=r3gan keeps the authors' 39,063."""
    from gan_lab.schedules import schedules_of
    from tests.conftest import compose_cfg

    paper = {s.key: s for s in schedules_of(compose_cfg("experiment=r3gan"))}
    for iterations in (3000, 500):
        cfg = compose_cfg("experiment=r3gan_small", f"train.iterations={iterations}")
        small = {s.key: s for s in schedules_of(cfg)}
        assert set(small) == set(paper) and len(small) == 7
        for key, s in small.items():
            assert s.length == iterations and paper[key].length == 39063
            assert (s.kind, s.start) == (paper[key].kind, paper[key].start)
            assert s.end == (paper[key].end if key != "tricks.ema_kimg" else 50.0)  # a quarter of its images
    assert compose_cfg("experiment=r3gan_small").tricks.ema_kimg == 50
