"""Discriminator Rejection Sampling (gan_lab/drs.py): the rule against closed forms, the calibration of a copy
of D, and the measurement at the end of a run with the default evaluation on (its refusals are tested with JBT's
in tests/test_jbt.py)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from gan_lab import drs
from gan_lab.compose import build_components, build_system
from gan_lab.drs import LowAcceptance, acceptance, calibrate, rejection_sample
from gan_lab.errors import ConfigError
from gan_lab.evaluate import evaluate
from gan_lab.settings import DRS as DRSSettings
from gan_lab.train import train
from tests.conftest import compose_cfg

EVAL_ON = ["eval.at_end=true", "eval.every=10", "eval.every_samples=100", "eval.samples=200"]


class Proposal:
    """A stand-in system whose G is the identity on z ~ N(0, 1): the proposal q = N(0, 1)."""

    device = torch.device("cpu")

    def sample_z(self, n, generator):
        return torch.randn(n, 1, generator=generator)

    def generate(self, z, batch_size=500):
        return z.clone()


def log_ratio(mu: float):
    """The optimal critic between p = N(mu, 1) and q = N(0, 1): D̃(x) = log p(x)/q(x) = mu·x − mu²/2."""
    return lambda x: mu * x - mu * mu / 2


def test_the_exact_rule_is_the_density_ratio_over_its_maximum():
    logits = torch.tensor([-9.0, -3.0, -0.5, -1e-3, 0.0])
    p = acceptance(logits, 0.0, None)
    assert torch.allclose(p, torch.exp(logits.double()), rtol=2e-5, atol=2e-6)  # σ(F) = exp(D̃ − D̃_M), up to ε
    shifted = acceptance(logits, 0.0, 0.5)  # γ = the median of F: half the batch below one half
    assert (shifted < p).all() and int((shifted > 0.5).sum()) == 2


@pytest.mark.parametrize("mu", [0.5, 0.8])  # acceptance about 15 % and 6 %
def test_exact_drs_turns_the_proposal_into_the_target(mu):
    g = torch.Generator().manual_seed(0)
    x, stats = rejection_sample(Proposal(), log_ratio(mu), 20_000, DRSSettings(burn_in=20_000), g)
    # accepted samples follow p = N(mu, 1): mean mu (s.e. 0.007), standard deviation 1
    assert abs(float(x.mean()) - mu) < 0.03
    assert abs(float(x.std()) - 1.0) < 0.03
    # acceptance = E_q[p/q] / M = 1/M, M = exp(D̃_M); D̃_M only grows while sampling, so at least 1/M_final
    assert math.exp(-stats["max_logit"]) <= stats["acceptance_rate"] < 1.5 * math.exp(-stats["max_logit"])


def test_a_gamma_quantile_rescales_acceptance_to_the_batch():
    # p barely differs from q: the exact rule accepts nearly everything; γ = the 0.9-quantile of F accepts only
    # the top tenth of each batch with probability above one half, so fewer samples, leaning to where p > q
    g = torch.Generator().manual_seed(1)
    exact, loose = rejection_sample(Proposal(), log_ratio(0.05), 20_000, DRSSettings(burn_in=20_000), g)
    picky, strict = rejection_sample(Proposal(), log_ratio(0.05), 20_000,
                                     DRSSettings(burn_in=20_000, gamma_quantile=0.9), g)
    assert loose["acceptance_rate"] > 0.75 and strict["acceptance_rate"] < 0.6
    assert abs(float(exact.mean()) - 0.05) < 0.03  # the exact rule: N(0.05, 1)
    assert float(picky.mean()) > float(exact.mean()) + 0.05


def test_an_outlying_maximum_stops_sampling_instead_of_running_on():
    g = torch.Generator().manual_seed(2)
    with pytest.raises(LowAcceptance, match="gamma_quantile"):  # D̃_M = 50 from a few x > 3: e^-50 for the rest
        rejection_sample(Proposal(), lambda x: torch.where(x > 3, 50.0, 0.0), 100, DRSSettings(burn_in=20_000), g)


def _boom(*args, **kwargs):
    raise RuntimeError("boom")


@pytest.mark.parametrize(("name", "fault", "reason"), [
    ("acceptance", lambda logits, top, q: torch.zeros(len(logits)), "eval.drs.gamma_quantile"),  # rejects all
    ("calibrate", _boom, "RuntimeError: boom"),  # anything else going wrong in the measurement
])
def test_a_run_whose_drs_fails_still_finishes_and_says_why(tmp_path, monkeypatch, name, fault, reason):
    monkeypatch.setattr(drs, name, fault)
    cfg = compose_cfg("model=mlp", "dataset=ring", "model.hidden=[16,16]", "train.iterations=10", *EVAL_ON,
                      "eval.drs.enabled=true", "eval.drs.calibration_steps=2", "eval.drs.burn_in=500")
    summary = train(cfg, tmp_path)
    stored = json.loads((tmp_path / "metrics.json").read_text())
    assert summary["status"] == stored["status"] == "finished" and "toy/modes_captured" in stored["metrics"]
    assert stored["drs"]["measured"] is False and reason in stored["drs"]["reason"]
    assert not any(k.startswith("drs/") for k in stored["metrics"])
    if name == "acceptance":
        with pytest.raises(ConfigError, match="accepted"):  # the command afterwards: one line naming drs
            evaluate(str(tmp_path), n=200, drs=True)


@pytest.mark.parametrize(("trainer", "count"), [
    ({"devices": 1}, 1), ({"devices": 3, "num_nodes": 2}, 6), ({"devices": [0, 1]}, 2),
    ({"devices": -1, "accelerator": "cpu"}, 1), ({"devices": "auto", "accelerator": "cpu", "num_nodes": 2}, 2),
    ({"devices": -1, "accelerator": "gpu"}, max(1, torch.cuda.device_count())),
])
def test_the_process_count_drs_refuses_on(trainer, count):
    from omegaconf import OmegaConf

    from gan_lab.distributed import processes

    assert processes(OmegaConf.create(trainer)) == count


def test_calibration_trains_a_copy_of_d_and_leaves_the_run_alone():
    cfg = compose_cfg("model=mlp", "dataset=ring", "model.hidden=[16,16]")
    system = build_system(cfg, build_components(cfg))
    before = [p.detach().clone() for p in system.discriminator.parameters()]
    critic = calibrate(system, build_components(cfg).source, 5, 64, torch.Generator().manual_seed(0))
    assert all(torch.equal(b, p) for b, p in zip(before, system.discriminator.parameters()))
    assert any(not torch.equal(b, p) for b, p in zip(before, critic.parameters()))


def test_a_ring_run_measures_drs_apart_from_its_own_samples(tmp_path, monkeypatch):
    cfg = compose_cfg("model=mlp", "dataset=ring", "model.hidden=[32,32]", "train.iterations=40", *EVAL_ON,
                      "train.sample_every=20", "train.checkpoint_every=20", "eval.drs.enabled=true",
                      "eval.drs.calibration_steps=30", "eval.drs.burn_in=2000")
    summary = train(cfg, tmp_path)
    metrics = summary["metrics"]
    assert summary["status"] == "finished" and summary["drs"]["samples"] == 200
    assert 0 < metrics["drs/acceptance_rate"] < 1
    for key in ("toy/modes_captured", "toy/high_quality_pct", "val/precision_200_raw"):  # both measured
        assert key in metrics and f"drs/{key}" in metrics
    assert "Discriminator rejection sampling" in summary["protocols"]["drs/acceptance_rate"]
    assert (tmp_path / "drs_scatter.png").is_file() and (tmp_path / "scatter.png").is_file()
    own = {k: v for k, v in metrics.items() if k.startswith("toy/")}
    # afterwards, on the run folder: the run's own metrics unchanged, DRS measured again (same settings, same seed)
    again = evaluate(str(tmp_path), n=200, drs=True)["metrics"]
    assert {k: again[k] for k in own} == own
    assert again["drs/toy/high_quality_pct"] == metrics["drs/toy/high_quality_pct"]
    assert json.loads((tmp_path / "metrics.json").read_text())["drs"]["calibration_steps"] == 30
    # a later measurement that fails takes the earlier drs/ numbers away with it: none is read as its own
    monkeypatch.setattr(drs, "acceptance", lambda logits, top, q: torch.zeros(len(logits)))
    with pytest.raises(ConfigError, match="accepted"):
        evaluate(str(tmp_path), n=200, drs=True)
    stored = json.loads((tmp_path / "metrics.json").read_text())
    assert stored["drs"]["measured"] is False and {k: stored["metrics"][k] for k in own} == own
    assert not any(k.startswith("drs/") for k in (*stored["metrics"], *stored["protocols"]))
