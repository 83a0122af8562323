"""StyleGAN2-ADA's training parts around the networks (Karras et al. 2020): lazy path-length regularization
(``tricks.pl_weight``), G's EMA with a half-life in images and its ramp-up (``tricks.ema_kimg``), truncation at
sampling (``python -m gan_lab.sample truncation=ψ``), the layers SN cannot wrap, D's 'orig' architecture and the
two presets; against closed forms computed by hand."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from gan_lab.compose import build_components
from gan_lab.data.base import DataSpec
from gan_lab.errors import ConfigError
from gan_lab.nets import stylegan2
from gan_lab.runs import load_run
from gan_lab.sample import sample, truncated
from gan_lab.systems.conditioning import Unconditional
from gan_lab.train import train
from gan_lab.tricks.ema import EMA, GeneratorEMA, half_life_beta
from gan_lab.tricks.path_length import PathLength
from tests.conftest import compose_cfg, interrupted_then_resumed, refused, run_cli, state_digest
from tests.test_parts import EVAL_ON

SMALL = ["model=stylegan2", "dataset=digits", "model.z_dim=16", "model.w_dim=16", "model.mapping_layers=2",
         "model.channel_max=16"]


# ---------------------------------------------------------------- path-length regularization

class LinearG(nn.Module):
    """A stand-in G, linear in w: mapping z ↦ ws = (z, …, z) (num_ws copies), synthesis ws ↦ A·vec(ws) as a
    (C, H, W) image. Its path lengths have a closed form: g_n = Aᵀ y_n reshaped (num_ws, w_dim)."""

    def __init__(self, num_ws: int = 3, w_dim: int = 4, shape: tuple[int, int, int] = (2, 2, 3)):
        super().__init__()
        self.num_ws, self.w_dim, self.shape = num_ws, w_dim, shape
        self.A = nn.Parameter(torch.randn(math.prod(shape), num_ws * w_dim, dtype=torch.float64))

    def mapping(self, z, y=None):
        return z.unsqueeze(1).repeat(1, self.num_ws, 1)

    def styles(self, z, y=None):
        return self.mapping(z, y)

    def synthesis(self, ws):
        return (ws.flatten(1) @ self.A.T).reshape(-1, *self.shape)


class StubSystem(nn.Module):
    """What the path-length and EMA parts read of a system."""

    def __init__(self, generator: nn.Module, batch: int, g_steps: int = 1):
        super().__init__()
        self.generator, self.g_steps, self.iteration = generator, g_steps, 0
        self.conditioning = Unconditional()
        self.trainer = SimpleNamespace(datamodule=SimpleNamespace(batch_size=batch))
        self.logged: list[dict] = []

    def sample_z(self, n):
        return torch.randn(n, self.generator.w_dim, dtype=torch.float64)

    def accumulate(self, stats):
        self.logged.append(stats)


def _by_hand(A: torch.Tensor, seed: int, n: int, g: LinearG, pl_mean: torch.Tensor, decay: float):
    """(penalty before weighting, new pl_mean): the draws in the part's order (z, then the image noise), the
    lengths from g_n = Aᵀ y_n, the EMA of their mean, the squared deviations' mean."""
    torch.manual_seed(seed)
    torch.randn(n, g.w_dim, dtype=torch.float64)  # z: a linear G's Jacobian does not depend on it
    c, h, w = g.shape
    y = torch.randn(n, c, h, w, dtype=torch.float64) / math.sqrt(h * w)
    grads = (y.flatten(1) @ A).reshape(n, g.num_ws, g.w_dim)
    lengths = torch.sqrt((grads**2).sum(dim=2).mean(dim=1))
    new_mean = pl_mean + decay * (lengths.mean() - pl_mean)
    return ((lengths - new_mean) ** 2).mean(), new_mean


def test_path_length_penalty_equals_its_closed_form_on_a_linear_generator():
    torch.manual_seed(0)
    g = LinearG()
    system = StubSystem(g, batch=8)
    part = PathLength(pl_weight=2.0, pl_every=1, pl_decay=0.3, pl_batch_shrink=2)
    part.attach(system)
    system.double()
    system.pl_mean.fill_(0.5)
    torch.manual_seed(11)
    got = part.g_term(system)
    A = g.A.detach().clone().requires_grad_(True)
    penalty, new_mean = _by_hand(A, 11, 4, g, torch.tensor(0.5, dtype=torch.float64), 0.3)
    torch.testing.assert_close(got, 2.0 * penalty, rtol=1e-12, atol=0)
    torch.testing.assert_close(system.pl_mean, new_mean.detach(), rtol=1e-12, atol=0)
    torch.testing.assert_close(system.logged[-1]["pl_penalty"], penalty.detach(), rtol=1e-12, atol=0)
    # the gradient G gets, the running mean's dependence on this batch included (as the reference)
    (mine,) = torch.autograd.grad(got, g.A)
    (expected,) = torch.autograd.grad(2.0 * penalty, A)
    torch.testing.assert_close(mine, expected, rtol=1e-10, atol=1e-14)
    assert penalty.item() > 1e-4  # lengths that differ: a penalty that can fail the checks above


def test_path_length_is_lazy_scaled_by_its_interval_and_its_mean_an_exact_ema():
    """Applied on G updates 0, N, 2N, … only (here 2 per iteration), weighted by N; pl_mean follows
    a ← a + decay·(mean length − a) at each application and nowhere else."""
    torch.manual_seed(1)
    g = LinearG()
    system = StubSystem(g, batch=6, g_steps=2)
    part = PathLength(pl_weight=0.5, pl_every=3, pl_decay=0.01, pl_batch_shrink=2)
    part.attach(system)
    system.double()
    expected_mean = torch.zeros((), dtype=torch.float64)
    applied, last = [], system.pl_mean.clone()
    for update in range(8):
        system.iteration = update // 2
        torch.manual_seed(100 + update)
        got = part.g_term(system)
        if update % 3:
            assert got is None
            assert torch.equal(system.pl_mean, last)  # untouched between applications
            continue
        penalty, expected_mean = _by_hand(g.A.detach(), 100 + update, 3, g, expected_mean, 0.01)
        torch.testing.assert_close(got.detach(), 0.5 * 3 * penalty, rtol=1e-12, atol=0)
        torch.testing.assert_close(system.pl_mean, expected_mean, rtol=1e-12, atol=0)
        applied, last = [*applied, update], system.pl_mean.clone()
    assert applied == [0, 3, 6] and len(system.logged) == 3


def test_path_length_trains_stylegan2_and_resumes_exactly(tmp_path):
    """A real run (penalty on G updates 0 and 3 of 6) logs it and a positive pl_mean; stopped at iteration 2 and
    resumed, it ends on the same weights and pl_mean as the run that was not stopped."""
    args = ["debug=tiny", *EVAL_ON, "logger=none", *SMALL, "tricks.pl_weight=2", "tricks.pl_every=3",
            "train.iterations=6", "train.log_every=3", "train.checkpoint_every=1"]
    whole = train(compose_cfg(*args), tmp_path / "whole")
    assert whole["status"] == "finished" and whole["metrics"]["train/pl_penalty"] > 0
    assert any(k.startswith("val/") for k in whole["metrics"])  # the default evaluation ran, during and after
    assert whole["metrics"]["train/pl_mean"] > 0
    resumed = interrupted_then_resumed(args, tmp_path / "resumed", at=2)
    assert resumed["status"] == "finished"
    assert state_digest(tmp_path / "resumed") == state_digest(tmp_path / "whole")
    assert resumed["metrics"]["train/pl_mean"] == whole["metrics"]["train/pl_mean"]


def test_path_length_refuses_a_generator_without_mapping_and_synthesis():
    error = refused("dataset=digits", "model.width=8", "tricks.pl_weight=2")
    assert error.key == "tricks.pl_weight" and "model=dcgan" in str(error) and "model=stylegan2" in str(error)
    error = refused(*SMALL, "model.conditional=concat", "tricks.pl_weight=2")  # G wrapped by the lab
    assert error.key == "tricks.pl_weight" and "projection" in str(error)
    build_components(compose_cfg(*SMALL, "model.conditional=projection", "tricks.pl_weight=2"))  # native: runs


# ---------------------------------------------------------------- G's EMA: a half-life in images

def test_half_life_beta_closed_form_and_ramp_up():
    B = 64
    assert half_life_beta(B, 10, 5e6, None) == 0.5 ** (64 / 10_000)  # -ADA's default, no ramp
    assert half_life_beta(B, 500, 0, 0.05) == 0.0  # the first update: a copy of G
    seen = 64 * 1000  # before the ramp ends: h = 0.05·seen = 3,200 images < 500,000
    assert half_life_beta(B, 500, seen, 0.05) == pytest.approx(0.5 ** (64 / 3200), rel=1e-15)
    seen = 64 * 200_000  # after it: 0.05·seen = 640,000 > 500,000
    assert half_life_beta(B, 500, seen, 0.05) == 0.5 ** (64 / 500_000)
    # the average halves its weight on the past every h images: β^(h/B) = ½
    assert half_life_beta(B, 10, 0, None) ** (10_000 / 64) == pytest.approx(0.5, rel=1e-12)


def test_ema_steps_with_the_half_life_beta_read_live_at_every_update():
    torch.manual_seed(2)
    net = nn.Linear(3, 2)
    system = StubSystem(net, batch=16)
    part = GeneratorEMA(ema_kimg=0.5, ema_rampup=0.05)
    part.attach(system)
    expected = [p.detach().clone() for p in net.parameters()]
    for it, kimg in enumerate([0.5, 0.5, 0.5, 2.0, 0.01]):
        part.ema_kimg = kimg  # as a schedule would move it
        system.iteration = it
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p))
        part.after_g_step(system)
        half_life = min(kimg * 1000, it * 16 * 0.05)
        beta = 0.5 ** (16 / half_life) if half_life > 0 else 0.0
        expected = [beta * e + (1 - beta) * p.detach() for e, p in zip(expected, net.parameters())]
        for e, p in zip(expected, system.generator_ema.module.parameters()):
            torch.testing.assert_close(p, e, rtol=1e-6, atol=1e-7)
    system.iteration = 100  # past the ramp (0.05·1,600 images = 80 > 10): the half-life is ema_kimg's 10 images
    assert part.beta(system) == 0.5 ** (16 / 10)


def test_ema_decay_alone_is_the_plain_recursion():
    net = nn.Linear(2, 2)
    ema = EMA(net, decay=0.9)
    before = [p.detach().clone() for p in ema.module.parameters()]
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    ema.update(net)
    for b, p, q in zip(before, net.parameters(), ema.module.parameters()):
        torch.testing.assert_close(q, 0.9 * b + 0.1 * p.detach())


def test_ema_decay_and_half_life_together_are_refused_naming_both():
    error = refused("dataset=digits", "model.width=8", "tricks.ema=0.999", "tricks.ema_kimg=10")
    assert error.key == "tricks.ema_kimg" and "tricks.ema=0.999" in str(error)
    assert refused("dataset=digits", "model.width=8", "tricks.ema_rampup=0.05").key == "tricks.ema_rampup"


def test_an_ema_half_life_run_from_the_command_line_with_evaluation_on(tmp_path):
    run = tmp_path / "run"
    done = run_cli("debug=tiny", *EVAL_ON, "logger=none", "dataset=digits", "model.width=8", "tricks.ema_kimg=0.1",
                   "tricks.ema_rampup=0.05", f"hydra.run.dir={run}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = load_run(run)
    g, ema = loaded.system.generator, loaded.system.generator_ema.module
    assert any(not torch.equal(a, b) for a, b in zip(g.parameters(), ema.parameters()))
    assert json.loads((run / "metrics.json").read_text())["evaluation"]["samples"] == 60


# ---------------------------------------------------------------- truncation at sampling

@pytest.fixture(scope="module")
def sg2_run(tmp_path_factory):
    """A tiny StyleGAN2 run whose EMA copy draws the samples."""
    run = tmp_path_factory.mktemp("sg2_run")
    train(compose_cfg("debug=tiny", "logger=none", *SMALL, "tricks.ema=0.5"), run)
    return run


def _noiseless(module: nn.Module) -> None:
    """Per-pixel noise is drawn afresh for every sample whatever w is: switch it off to compare images of w."""
    for m in module.modules():
        if hasattr(m, "noise_strength"):
            m.noise_strength.data.zero_()


def test_truncation_zero_draws_the_image_of_w_avg_from_the_ema_generator(sg2_run):
    system = load_run(sg2_run).system
    sampler = system.sampler
    assert sampler is system.generator_ema.module and sampler.mapping.w_avg.abs().sum() > 0
    _noiseless(sampler)
    z = torch.randn(6, 16, generator=torch.Generator().manual_seed(3))
    with truncated(system, 0.0):
        fake = system.generate(z)
    sampler.eval()
    with torch.no_grad():
        w_avg = sampler.mapping.w_avg.expand(1, sampler.num_ws, -1)
        expected = sampler.synthesis(w_avg, noise_mode="none")
        ws = sampler.mapping(z)
        partial = sampler.synthesis(sampler.mapping.w_avg + 0.7 * (ws - sampler.mapping.w_avg), noise_mode="none")
    torch.testing.assert_close(fake, expected.expand_as(fake), rtol=1e-5, atol=1e-6)
    assert fake.std(dim=0).max() < 1e-6
    with truncated(system, 0.7):
        torch.testing.assert_close(system.generate(z), partial, rtol=1e-5, atol=1e-6)
    assert system.sampler is sampler  # put back


def test_truncation_from_the_command_line(sg2_run, tmp_path):
    done = run_cli(f"run={sg2_run}", "n=8", f"out={tmp_path / 't'}", "truncation=0.7", cwd=tmp_path,
                   module="gan_lab.sample")
    assert done.returncode == 0, done.stderr
    assert np.load(tmp_path / "t" / "samples.npy").shape == (8, 1, 8, 8)


def test_truncation_is_refused_for_a_generator_without_psi(tmp_path):
    run = tmp_path / "dcgan"
    train(compose_cfg("debug=tiny", "logger=none", "dataset=digits", "model.width=8"), run)
    with pytest.raises(ConfigError) as info:
        sample(str(run), n=4, out=str(tmp_path / "s"), truncation=0.7)
    assert info.value.key == "truncation" and "model=stylegan2" in str(info.value)
    assert not (tmp_path / "s").exists()
    done = run_cli(f"run={run}", "n=4", "truncation=0.5", cwd=tmp_path, module="gan_lab.sample")
    assert done.returncode == 2 and done.stderr.strip().splitlines()[-1].startswith("gan_lab: error: truncation=0.5")


# ---------------------------------------------------------------- SN and the equalized-learning-rate layers

def test_sn_is_refused_for_stylegan2_and_wraps_every_layer_of_r3gan():
    for choice in ("sn", "[sn,r1]"):
        error = refused(*SMALL, f"regularizer={choice}")
        assert error.key == "regularizer" and "model=stylegan2" in str(error)
    c = build_components(compose_cfg("model=r3gan", "dataset=digits", "regularizer=sn"))
    weights = [n for n, p in c.discriminator.named_parameters() if n.endswith("weight")]
    assert sorted(c.regularizer.layers(c.discriminator)) == sorted(weights) and len(weights) > 5


# ---------------------------------------------------------------- D's 'orig' architecture

def test_orig_discriminator_has_no_skips_and_the_reference_parameter_count():
    _, d = stylegan2.build(DataSpec("x", (3, 32, 32), "image"), mapping_layers=2, channel_base=32768,
                           d_architecture="orig")
    assert sum(p.numel() for p in d.parameters()) == 20_720_641  # the reference's cifar D
    torch.manual_seed(4)
    _, d = stylegan2.build(DataSpec("x", (1, 16, 16), "image"), z_dim=8, w_dim=8, channel_max=8,
                           d_architecture="orig")
    x = torch.randn(2, 1, 16, 16)
    block = d.b16
    assert not hasattr(block, "skip")
    torch.testing.assert_close(block(x), block.conv1(block.conv0(block.fromrgb(x))))
