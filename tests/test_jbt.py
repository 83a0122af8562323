"""Jacobian-based truncation (gan_lab/jbt.py) and the sample filters around it (gan_lab/filters.py): the norm
estimate against closed forms, the truncation emptying the gap between two islands, the end-of-run measurement
with the default evaluation on (JBT, DRS, and JBT's survivors through DRS), and the refusals."""

from __future__ import annotations

import json

import pytest
import torch

from gan_lab.errors import ConfigError
from gan_lab.evaluate import evaluate
from gan_lab.jbt import jacobian_norms, truncate
from gan_lab.settings import JBT as JBTSettings
from gan_lab.train import train
from tests.conftest import compose_cfg

EVAL_ON = ["eval.at_end=true", "eval.every=10", "eval.every_samples=100", "eval.samples=200"]


class Cliff:
    """A stand-in system whose G maps z ~ N(0, I_d) elementwise by x = tanh(c·z), shaped ``shape`` per sample:
    each coordinate's law sits on two islands near ±1, crossed fast near z = 0.
    ||J_G(z)||_F² = Σ c²·(1 − tanh²(c·z))². It records the size of every batch it is asked to draw."""

    device = torch.device("cpu")

    def __init__(self, c: float, dim: int = 1, shape: tuple[int, ...] | None = None):
        self.c, self.dim, self.shape, self.batches = c, dim, shape or (dim,), []

    def sample_z(self, n, generator):
        return torch.randn(n, self.dim, generator=generator)

    def generate(self, z, batch_size=500):
        self.batches.append(len(z))
        return torch.tanh(self.c * z).reshape(len(z), *self.shape)

    def exact_norms(self, z):
        return (self.c ** 2 * (1 - torch.tanh(self.c * z) ** 2) ** 2).sum(1)


@pytest.mark.parametrize("shape", [(64,), (1, 8, 8)])  # points, and images (flattened per sample)
def test_the_estimate_is_the_frobenius_norm_of_the_jacobian(shape):
    system, g = Cliff(3.0, dim=64, shape=shape), torch.Generator().manual_seed(0)
    z = system.sample_z(400, g)
    x, norms = jacobian_norms(system, z, JBTSettings(probes=50, step=1e-4), g, chunk=150)  # 64 > 50: estimated
    exact = system.exact_norms(z).double()
    assert max(system.batches) == 150  # G draws a chunk at a time
    assert torch.equal(x, system.generate(z))
    # E_v ||J v||² = ||J||_F² for v ~ N(0, I): over 400 samples the ratio averages to 1 (s.e. about 0.003)
    ratio = norms / exact
    assert 0.98 < float(ratio.mean()) < 1.02
    assert float(ratio.std()) < 0.15  # 50 directions each: about 0.06 for a diagonal J of 64 entries
    ranks = lambda t: t.argsort().argsort().double()
    # the ranking JBT uses: 64 similar terms spread the exact norms little, so the estimate's noise reorders some
    assert float(torch.corrcoef(torch.stack([ranks(norms), ranks(exact)]))[0, 1]) > 0.95


@pytest.mark.parametrize("dim", [1, 4])
def test_a_latent_no_wider_than_the_probe_count_gets_the_exact_norm(dim):
    """One JVP per latent dimension: ‖J_G(z)‖_F² to rounding, where the random estimate would be off by its
    sampling error (the steep band of G = tanh(5z) is then ranked exactly)."""
    system, g = Cliff(5.0, dim=dim), torch.Generator().manual_seed(0)
    z = system.sample_z(300, g)
    _, norms = jacobian_norms(system, z, JBTSettings(probes=10), g, chunk=100)
    torch.testing.assert_close(norms, system.exact_norms(z).double(), rtol=1e-4, atol=1e-7)  # fp32 rounding


def test_truncation_empties_the_gap_between_two_islands():
    system, g = Cliff(20.0), torch.Generator().manual_seed(1)
    own = system.generate(system.sample_z(20_000, g))
    # |tanh(20 z)| < 0.9 ⟺ |z| < atanh(0.9)/20 = 0.0736: 5.9 % of G's own samples lie in the gap
    assert 0.05 < float((own.abs() < 0.9).float().mean()) < 0.068
    x, stats = truncate(system, 18_000, JBTSettings(keep=0.9), g)
    assert x.shape == (18_000, 1) and stats["drawn"] == 20_000 and stats["acceptance_rate"] == pytest.approx(0.9)
    assert float((x.abs() < 0.9).float().mean()) == 0.0  # the fastest 10 % of latents include the whole gap
    assert 0.47 < float((x > 0).float().mean()) < 0.53  # both islands kept, still balanced
    # beyond the gap it drops the islands' inner edges: the 10 % of latents nearest 0, |z| < Φ⁻¹(0.55) = 0.1257,
    # so nothing kept lies inside tanh(20 · 0.1257) = 0.987
    assert 0.97 < float(x.abs().min()) < 0.995


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
    # the chain's rate counts G's own samples: DRS's rate of JBT's survivors (1,000 of 1,112 per batch) × 0.9
    assert 0 < metrics["jbt_drs/acceptance_rate"] <= 1000 / 1112
    assert summary["jbt_drs"]["drawn"] % 1112 == 0
    assert summary["jbt"]["keep"] == 0.9 and summary["jbt_drs"]["keep"] == 0.9
    assert "Jacobian-based truncation" in summary["protocols"]["jbt/toy/modes_*"]
    chain = summary["protocols"]["jbt_drs/acceptance_rate"]
    assert f"200 accepted of {summary['jbt_drs']['drawn']} drawn samples of G, each batch of 1000 through " \
           "Jacobian-based truncation" in chain
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
    # DRS alone measures what it measured beside JBT: each filter draws from its own seeded generator
    alone = evaluate(str(tmp_path), n=200, drs=True)["metrics"]
    assert {k: v for k, v in alone.items() if k.startswith("drs/")} == {
        k: v for k, v in metrics.items() if k.startswith("drs/")}


DRS, JBT = "eval.drs.enabled=true", "eval.jbt.enabled=true"


@pytest.mark.parametrize(("overrides", "key", "words"), [
    ([DRS, "tricks.pack=2", "train.batch_size=64"], "eval.drs.enabled", ["packs of 2"]),
    ([DRS, "dataset=digits", "model=dcgan", "model.conditional=concat"], "eval.drs.enabled", ["class-conditional"]),
    ([DRS, "mixture.generators=2"], "eval.drs.enabled", ["MixtureGAN"]),
    ([DRS, "tricks.minibatch_discrimination=true"], "eval.drs.enabled", ["depends on the rest of its batch"]),
    ([DRS, "accelerator=ddp_cpu", "trainer.devices=2"], "eval.drs.enabled", ["2 processes", "gan_lab.evaluate"]),
    ([DRS, "eval.drs.gamma_quantile=1.5"], "eval.drs.gamma_quantile", ["(0.0, 1.0)"]),
    ([DRS, "eval.drs.calibration_steps=-1"], "eval.drs.calibration_steps", [">= 0"]),
    ([DRS, "eval.drs.max_draws=0"], "eval.drs.max_draws", [">= 1"]),
    ([DRS, "+eval.drs.steps=10"], "eval.drs.steps", ["eval.drs.calibration_steps"]),
    ([JBT, "dataset=digits", "model=dcgan", "model.conditional=concat"], "eval.jbt.enabled", ["class-conditional"]),
    ([JBT, "mixture.generators=2"], "eval.jbt.enabled", ["MixtureGAN"]),
    ([JBT, "model=lapgan", "dataset=digits", "model.width=4", "model.hidden=16"], "eval.jbt.enabled", ["LAPGAN"]),
    ([JBT, "trainer.precision=bf16-true"], "eval.jbt.enabled", ["half precision", "-mixed"]),
    ([JBT, "accelerator=ddp_cpu", "trainer.devices=2"], "eval.jbt.enabled", ["2 processes", "jbt=true"]),
    ([JBT, "eval.jbt.keep=0"], "eval.jbt.keep", ["(0.0, 1.0]"]),
    ([JBT, "eval.jbt.keep=1.5"], "eval.jbt.keep", ["(0.0, 1.0]"]),
    ([JBT, "eval.jbt.probes=0"], "eval.jbt.probes", [">= 1"]),
    ([JBT, "+eval.jbt.ratio=0.7"], "eval.jbt.ratio", ["eval.jbt.keep"]),
])
def test_what_a_sample_filter_cannot_take_is_refused_before_training(tmp_path, overrides, key, words):
    # DRS (gan_lab/drs.py) and JBT refuse, by key and reason, what they cannot filter, before anything trains
    base = [] if "dataset=digits" in overrides else ["model=mlp", "dataset=ring", "model.hidden=[16,16]"]
    cfg = compose_cfg(*base, "train.iterations=5", *overrides)
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


def test_a_progressive_g_is_truncated_at_its_final_resolution():
    # ProgressiveGAN's samples are G(z) alone (upsampled to the last phase's size): JBT takes them, images and all
    from gan_lab import rulebook
    from gan_lab.compose import build_components, build_system

    cfg = compose_cfg("model=progressive", "dataset=digits", "model.width=8", "tricks.ema=0.9")
    components = build_components(cfg)
    system = build_system(cfg, components)
    assert rulebook.sampler_refusal(components.setup, "jbt") is None
    g = torch.Generator().manual_seed(0)
    x, stats = truncate(system, 30, JBTSettings(keep=0.75, probes=2), g, chunk=16)
    size = system.generator_networks()[0].resolutions[-1]
    assert x.shape == (30, 1, size, size) and stats["drawn"] == 40
    assert stats["threshold"] <= stats["median_norm"] * 10 and stats["threshold"] > 0
