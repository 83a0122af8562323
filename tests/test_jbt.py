"""Jacobian-based truncation (gan_lab/jbt.py) and the sample filters around it (gan_lab/filters.py): the norm
estimate against closed forms, the truncation emptying the gap between two islands, the end-of-run measurement
with the default evaluation on (JBT, DRS, and JBT's survivors through DRS), and the refusals."""

from __future__ import annotations

import json

import pytest
import torch

from gan_lab.errors import ConfigError
from gan_lab.evaluate import evaluate
from gan_lab.jbt import JBTSettings, jacobian_norms, truncate
from gan_lab.train import train
from tests.conftest import compose_cfg

EVAL_ON = ["eval.at_end=true", "eval.every=10", "eval.every_samples=100", "eval.samples=200"]


class Cliff:
    """A stand-in system whose G maps z ~ N(0, I_d) elementwise by x = tanh(c·z): each coordinate's law sits on
    two islands near ±1, crossed fast near z = 0. ||J_G(z)||_F² = Σ c²·(1 − tanh²(c·z))²."""

    device = torch.device("cpu")

    def __init__(self, c: float, dim: int = 1):
        self.c, self.dim = c, dim

    def sample_z(self, n, generator):
        return torch.randn(n, self.dim, generator=generator)

    def generate(self, z, batch_size=500):
        return torch.tanh(self.c * z)

    def exact_norms(self, z):
        return (self.c ** 2 * (1 - torch.tanh(self.c * z) ** 2) ** 2).sum(1)


def test_the_estimate_is_the_frobenius_norm_of_the_jacobian():
    system, g = Cliff(3.0, dim=4), torch.Generator().manual_seed(0)
    z = system.sample_z(400, g)
    x, norms = jacobian_norms(system, z, JBTSettings(probes=400, step=1e-4), g)
    exact = system.exact_norms(z).double()
    assert torch.equal(x, system.generate(z))
    # E_v ||J v||² = ||J||_F² for v ~ N(0, I): over 400 samples the ratio averages to 1 (s.e. about 0.004)
    ratio = norms / exact
    assert 0.98 < float(ratio.mean()) < 1.02
    assert float(ratio.std()) < 0.15  # 400 directions each: about 0.07 for a diagonal J of 4 entries
    ranks = lambda t: t.argsort().argsort().double()
    assert float(torch.corrcoef(torch.stack([ranks(norms), ranks(exact)]))[0, 1]) > 0.97


def test_truncation_empties_the_gap_between_two_islands():
    system, g = Cliff(20.0), torch.Generator().manual_seed(1)
    own = system.generate(system.sample_z(20_000, g))
    # |tanh(20 z)| < 0.9 ⟺ |z| < atanh(0.9)/20 = 0.0736: 5.9 % of G's own samples lie in the gap
    assert 0.05 < float((own.abs() < 0.9).float().mean()) < 0.068
    x, stats = truncate(system, 18_000, JBTSettings(keep=0.9), g)
    assert x.shape == (18_000, 1) and stats["drawn"] == 20_000 and stats["acceptance_rate"] == pytest.approx(0.9)
    assert float((x.abs() < 0.9).float().mean()) == 0.0  # the fastest 10 % of latents include the whole gap
    assert 0.47 < float((x > 0).float().mean()) < 0.53  # both islands kept, still balanced
    # what it drops beyond the gap is the islands' inner edges: everything kept is at least as far out
    assert float(x.abs().min()) > 0.9


def test_a_ring_run_measures_jbt_drs_and_the_chain_apart(tmp_path):
    cfg = compose_cfg("model=mlp", "dataset=ring", "model.hidden=[32,32]", "train.iterations=40", *EVAL_ON,
                      "train.sample_every=20", "train.checkpoint_every=20", "eval.jbt.enabled=true",
                      "eval.drs.enabled=true", "eval.drs.calibration_steps=30", "eval.drs.burn_in=2000")
    summary = train(cfg, tmp_path)
    metrics = summary["metrics"]
    assert summary["status"] == "finished"
    for name in ("drs", "jbt", "jbt_drs"):
        assert summary[name]["measured"] is True and summary[name]["samples"] == 200
        for key in ("toy/modes_captured", "toy/high_quality_pct", "val/precision_200_raw"):
            assert key in metrics and f"{name}/{key}" in metrics
        assert (tmp_path / f"{name}_scatter.png").is_file()
    assert metrics["jbt/acceptance_rate"] == pytest.approx(200 / 223)  # ⌈200 / 0.9⌉ drawn
    assert summary["jbt"]["keep"] == 0.9 and summary["jbt_drs"]["keep"] == 0.9
    assert "Jacobian-based truncation" in summary["protocols"]["jbt/toy/modes_*"]
    assert "each drawn as Jacobian-based truncation" in summary["protocols"]["jbt_drs/acceptance_rate"]
    page = (tmp_path / "report.html").read_text()  # one table: G beside each sampler, metric by metric
    section = page[page.index("through the post-hoc samplers"):]
    assert all(f"<th>{head}</th>" in section[:2000] for head in ("G", "DRS", "JBT", "JBT then DRS"))
    # afterwards, on the run folder: JBT alone measures the same numbers again and leaves the others alone
    own = {k: v for k, v in metrics.items() if not k.startswith(("jbt/", "drs/", "jbt_drs/", "train/", "perf/"))}
    again = evaluate(str(tmp_path), n=200, jbt=True)["metrics"]
    assert again["jbt/toy/high_quality_pct"] == metrics["jbt/toy/high_quality_pct"]
    assert again["drs/toy/high_quality_pct"] == metrics["drs/toy/high_quality_pct"]
    assert {k: again[k] for k in own} == own
    assert json.loads((tmp_path / "metrics.json").read_text())["jbt"]["probes"] == 10


@pytest.mark.parametrize(("overrides", "key", "words"), [
    (["dataset=digits", "model=dcgan", "model.conditional=concat"], "eval.jbt.enabled", ["class-conditional"]),
    (["mixture.generators=2"], "eval.jbt.enabled", ["MixtureGAN"]),
    (["accelerator=ddp_cpu", "trainer.devices=2"], "eval.jbt.enabled", ["2 processes", "jbt=true"]),
    (["eval.jbt.keep=0"], "eval.jbt.keep", ["(0.0, 1.0]"]),
    (["eval.jbt.keep=1.5"], "eval.jbt.keep", ["(0.0, 1.0]"]),
    (["eval.jbt.probes=0"], "eval.jbt.probes", [">= 1"]),
    (["+eval.jbt.ratio=0.7"], "eval.jbt.ratio", ["eval.jbt.keep"]),
])
def test_what_jbt_cannot_truncate_is_refused_before_training(tmp_path, overrides, key, words):
    base = [] if "dataset=digits" in overrides else ["model=mlp", "dataset=ring", "model.hidden=[16,16]"]
    cfg = compose_cfg(*base, "train.iterations=5", "eval.jbt.enabled=true", *overrides)
    with pytest.raises(ConfigError) as info:
        train(cfg, tmp_path)
    assert info.value.key == key
    for word in words:
        assert word in str(info.value)
    assert not (tmp_path / "checkpoints").exists()  # nothing trained


def test_packing_does_not_stop_jbt(tmp_path):
    # JBT needs no D: a packed D's run is truncated like any other (DRS refuses it)
    cfg = compose_cfg("model=mlp", "dataset=ring", "model.hidden=[16,16]", "train.iterations=5", "tricks.pack=2",
                      "train.batch_size=64", "eval.samples=100", "eval.every=0", "eval.jbt.enabled=true")
    summary = train(cfg, tmp_path)
    assert summary["jbt"]["measured"] is True and "jbt/toy/modes_captured" in summary["metrics"]
