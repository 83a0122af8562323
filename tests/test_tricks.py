"""Salimans' techniques, instance noise, unrolling and EMA: each against a direct computation."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from gan_lab.compose import build_components
from gan_lab.errors import ConfigError
from gan_lab.losses import NonSaturating
from gan_lab.nets.minibatch import MinibatchDiscrimination
from gan_lab.nets.vbn import VirtualBatchNormGenerator
from gan_lab.train import train
from gan_lab.tricks.ema import EMA
from gan_lab.tricks.historical_averaging import HistoricalAverage
from gan_lab.tricks.noise import InstanceNoise
from gan_lab.tricks.unroll import functional_optimizer, unrolled_critic
from tests.conftest import compose_cfg, refused
from tests.test_parts import MODELS


def test_minibatch_discrimination_matches_its_formula():
    torch.manual_seed(0)
    layer = MinibatchDiscrimination(in_features=4, kernels=3, kernel_dim=2)
    f = torch.randn(5, 4)
    out = layer(f)
    T = layer.T.detach().view(4, 3, 2)
    expected = torch.zeros(5, 3)
    for i in range(5):
        for b in range(3):
            m_i = sum(f[i, a] * T[a, b] for a in range(4))
            for j in range(5):
                m_j = sum(f[j, a] * T[a, b] for a in range(4))
                expected[i, b] += math.exp(-float((m_i - m_j).abs().sum()))
    torch.testing.assert_close(out[:, :4], f)
    torch.testing.assert_close(out[:, 4:], expected, rtol=1e-5, atol=1e-6)
    # identical examples: every c_b(i, j) = 1, so o = N
    same = layer(f[:1].repeat(6, 1))[:, 4:]
    torch.testing.assert_close(same, torch.full((6, 3), 6.0))


def test_historical_averaging_penalty_matches_a_hand_computation():
    net = nn.Linear(2, 1)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[1.0, 2.0]]))
        net.bias.fill_(0.5)
    ha = HistoricalAverage(net, weight=0.1)
    history = [torch.cat([net.weight.flatten(), net.bias]).clone()]
    for step in range(3):  # three "optimiser steps", then fold each value in
        with torch.no_grad():
            net.weight.add_(torch.tensor([[0.5, -1.0]]) * (step + 1))
            net.bias.sub_(0.25)
        ha.update(net)
        history.append(torch.cat([net.weight.flatten(), net.bias]).clone())
    with torch.no_grad():
        net.weight.add_(1.0)
    theta = torch.cat([net.weight.flatten(), net.bias])
    mean = torch.stack(history).mean(0)
    expected = 0.1 * float(((theta - mean) ** 2).sum().detach())
    assert float(ha.penalty(net)) == pytest.approx(expected, rel=1e-6)
    # the penalty's gradient treats the average as a constant: 2w(θ − θ̄)
    ha.penalty(net).backward()
    torch.testing.assert_close(torch.cat([net.weight.grad.flatten(), net.bias.grad]), 0.2 * (theta - mean).detach())
    assert ha.get_extra_state() == {"count": 4}


@pytest.mark.parametrize("dims", [1, 3])
def test_virtual_batchnorm_output_does_not_depend_on_the_rest_of_the_batch(dims):
    torch.manual_seed(0)
    if dims == 1:
        inner = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    else:
        inner = nn.Sequential(nn.Unflatten(1, (4, 1, 1)), nn.ConvTranspose2d(4, 6, 4), nn.BatchNorm2d(6),
                              nn.ReLU(), nn.Conv2d(6, 1, 3))
    g = VirtualBatchNormGenerator(inner, z_dim=4, reference_size=16)
    z = torch.randn(10, 4)
    together = g(z)
    alone = torch.cat([g(z[i : i + 1]) for i in range(10)])
    others = g(torch.cat([z[:3], torch.randn(7, 4) * 5]))[:3]
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(others, together[:3], rtol=1e-5, atol=1e-5)
    assert not any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in g.modules())


def test_instance_noise_anneals_linearly_to_zero():
    noise = InstanceNoise(instance_noise=0.4, instance_noise_schedule="linear")
    assert [noise.sigma_at(i, 100) for i in (0, 25, 50, 100, 150)] == pytest.approx([0.4, 0.3, 0.2, 0.0, 0.0])
    assert InstanceNoise(instance_noise=0.4, instance_noise_schedule="constant").sigma_at(99, 100) == 0.4
    half = InstanceNoise(instance_noise=0.4, instance_noise_schedule="linear", instance_noise_until=0.5)
    assert [half.sigma_at(i, 100) for i in (0, 25, 50, 75)] == pytest.approx([0.4, 0.2, 0.0, 0.0])
    torch.manual_seed(0)
    x = torch.zeros(20000, 2)
    assert float(noise.noised(x, 50, 100).std()) == pytest.approx(0.2, rel=0.03)
    assert torch.equal(noise.noised(x, 100, 100), x)


def test_instance_noise_until_reaches_the_trained_run_with_evaluation_and_checkpoints_on(tiny, tmp_path):
    # the path experiment=toy_best_grid takes: σ as logged each iteration, 0 from until·iterations on
    cfg = tiny("model=mlp", "dataset=ring", "model.hidden=[16]", "train.iterations=8", "train.log_every=1",
               "eval.at_end=true", "eval.every=4", "eval.samples=60", "tricks.instance_noise=0.4",
               "tricks.instance_noise_until=0.5")
    summary = train(cfg, tmp_path)
    assert summary["status"] == "finished" and summary["evaluation"]["samples"] == 60
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    rows = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    sigma = [r["train/instance_noise_sigma"] for r in rows if "train/instance_noise_sigma" in r]
    assert sigma == pytest.approx([0.3, 0.2, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0], abs=1e-6)


def test_instance_noise_reaches_every_d_input(tiny, tmp_path):
    """Both D inputs of a D step and the fake input of the G step are noised."""
    from gan_lab.systems.gan import GAN

    seen = []
    original, original_view = GAN.d_input, GAN.d_view

    def spy(self, x):
        out = original(self, x)
        seen.append(float((out - x).std()))
        return out

    def spy_view(self, x):  # D's step: what D sees, with the map that made it (for R1/R2)
        out, view = original_view(self, x)
        seen.append(float((out - x).std()))
        return out, view

    cfg = tiny("model=mlp", "dataset=ring", "model.hidden=[16]", "logger=none", "tricks.instance_noise=0.5",
               "tricks.instance_noise_schedule=constant", "train.iterations=2")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(GAN, "d_input", spy)
        mp.setattr(GAN, "d_view", spy_view)
        train(cfg, tmp_path)
    assert len(seen) == 2 * 3  # per iteration: real + fake in D's step, fake in G's step
    assert all(s == pytest.approx(0.5, rel=0.3) for s in seen)


def test_ema_follows_its_recursion_and_draws_the_samples():
    net = nn.Linear(3, 2)
    ema = EMA(net, decay=0.9)
    expected = net.weight.detach().clone()
    for _ in range(3):
        with torch.no_grad():
            net.weight.add_(1.0)
        ema.update(net)
        expected = 0.9 * expected + 0.1 * net.weight.detach()
    torch.testing.assert_close(ema.module.weight, expected)
    assert not any(p.requires_grad for p in ema.module.parameters())


# ------------------------------------------------------------------------------------ unrolling
def _tiny_pair(dtype=torch.float64):
    torch.manual_seed(3)
    g = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1)).to(dtype)
    d_body = nn.Sequential(nn.Linear(1, 4), nn.Tanh(), nn.Linear(4, 1)).to(dtype)

    class D(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = d_body

        def forward(self, x):
            return self.net(x).squeeze(1)

    return g, D()


def _surrogate(g, d, opt, K, second_order, reals, zs, z_final, loss):
    critic = unrolled_critic(d, opt, loss.d_loss, g, reals[:K], zs[:K], second_order=second_order)
    return loss.g_loss(critic(g(z_final)))


@pytest.mark.parametrize("opt_name", ["adam", "sgd"])
def test_unrolled_g_gradient_matches_finite_differences(opt_name):
    g, d = _tiny_pair()
    loss = NonSaturating()
    opt = (torch.optim.Adam(d.parameters(), lr=0.05, betas=(0.5, 0.999)) if opt_name == "adam"
           else torch.optim.SGD(d.parameters(), lr=0.5, momentum=0.9))
    gen = torch.Generator().manual_seed(1)
    reals = [torch.randn(16, 1, generator=gen, dtype=torch.float64) + 2 for _ in range(3)]
    zs = [torch.randn(16, 2, generator=gen, dtype=torch.float64) for _ in range(3)]
    z_final = torch.randn(16, 2, generator=gen, dtype=torch.float64)

    def grad_of(K, second_order):
        g.zero_grad()
        _surrogate(g, d, opt, K, second_order, reals, zs, z_final, loss).backward()
        return torch.cat([p.grad.flatten() for p in g.parameters()]).clone()

    plain = torch.autograd.grad(loss.g_loss(d(g(z_final))), list(g.parameters()))
    torch.testing.assert_close(grad_of(0, True), torch.cat([p.flatten() for p in plain]))

    exact = grad_of(3, True)
    params = list(g.parameters())
    numeric = []
    eps = 1e-6
    for p in params:
        flat = p.data.view(-1)
        for i in range(flat.numel()):
            old = flat[i].item()
            flat[i] = old + eps
            up = _surrogate(g, d, opt, 3, True, reals, zs, z_final, loss).item()
            flat[i] = old - eps
            down = _surrogate(g, d, opt, 3, True, reals, zs, z_final, loss).item()
            flat[i] = old
            numeric.append((up - down) / (2 * eps))
    torch.testing.assert_close(exact, torch.tensor(numeric, dtype=torch.float64), rtol=1e-4, atol=1e-7)
    assert not torch.allclose(exact, grad_of(0, True), rtol=1e-3)  # unrolling changes G's gradient
    first = grad_of(3, False)
    assert not torch.allclose(exact, first, rtol=1e-3)  # the shortcut drops ∂θ_D^K/∂θ_G
    # the real D was not touched
    assert all(len(s) == 0 for s in opt.state.values()) and len(opt.state) == 0


@pytest.mark.parametrize("make", [
    lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(0.5, 0.99)),
    lambda ps: torch.optim.RMSprop(ps, lr=0.01),
    lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9),
    lambda ps: torch.optim.SGD(ps, lr=0.1),
])
def test_functional_optimizer_mirrors_the_real_one(make):
    """The unrolled copy takes exactly the steps D's own optimiser would, from its current state."""
    torch.manual_seed(0)
    net = nn.Linear(3, 2).double()
    opt = make(net.parameters())
    for _ in range(2):  # build up real optimiser state first
        opt.zero_grad()
        net(torch.randn(4, 3, dtype=torch.float64)).pow(2).sum().backward()
        opt.step()
    named = dict(net.named_parameters())
    step = functional_optimizer(opt, named)
    params = {n: p.detach().clone() for n, p in named.items()}
    xs = [torch.randn(4, 3, dtype=torch.float64) for _ in range(3)]
    for t, x in enumerate(xs, start=1):
        p = {n: v.requires_grad_(True) for n, v in params.items()}
        out = torch.func.functional_call(net, p, (x,)).pow(2).sum()
        grads = dict(zip(p, torch.autograd.grad(out, list(p.values()))))
        params = {n: v.detach() for n, v in step(p, grads, t).items()}
    for x in xs:  # now the real optimiser
        opt.zero_grad()
        net(x).pow(2).sum().backward()
        opt.step()
    for n, p in net.named_parameters():
        torch.testing.assert_close(params[n], p.detach(), rtol=1e-10, atol=1e-12)


# D's optimiser settings the unrolled copy does not model, with the key each refusal names
UNMODELLED = [
    (["optimizer=sgd", "+optimizer.d.nesterov=true"], "optimizer.d.nesterov"),
    (["optimizer=rmsprop", "+optimizer.d.momentum=0.9"], "optimizer.d.momentum"),
    (["optimizer=rmsprop", "+optimizer.d.centered=true"], "optimizer.d.centered"),
    (["+optimizer.d.amsgrad=true"], "optimizer.d.amsgrad"),
    (["+optimizer.d.maximize=true"], "optimizer.d.maximize"),
    (["optimizer=sgd", "+optimizer.d.weight_decay=1e-4"], "optimizer.d.weight_decay"),
    (["optimizer.d._target_=torch.optim.AdamW"], "optimizer.d._target_"),
]


@pytest.mark.parametrize(("overrides", "key"), UNMODELLED, ids=[k.split(".")[-1] for _, k in UNMODELLED])
def test_unrolling_refuses_optimiser_settings_its_copy_would_ignore(overrides, key):
    with pytest.raises(ConfigError) as info:
        build_components(compose_cfg(*MODELS["mlp"], "tricks.unroll_steps=2", *overrides))
    assert info.value.key == key and "tricks.unroll_steps=2" in str(info.value)
    build_components(compose_cfg(*MODELS["mlp"], *overrides))  # without unrolling the setting is D's own business


def test_unrolling_accepts_what_its_copy_models():
    c = build_components(compose_cfg(*MODELS["mlp"], "tricks.unroll_steps=2", "optimizer=sgd",
                                     "optimizer.d.lr=0.05", "+optimizer.d.dampening=0.1", "+optimizer.d.foreach=false"))
    assert c.tricks.unroll_steps == 2


def test_unrolling_steps_with_the_decayed_learning_rate(tiny, tmp_path):
    """optimizer.lr_decay keeps the configured rate in each group (``initial_lr``); the unrolled copy steps with the
    decayed ``lr`` of the moment (it once refused the bookkeeping key with a TypeError)."""
    cfg = tiny("logger=none", *MODELS["mlp"], "tricks.unroll_steps=2", "optimizer.lr_decay=linear",
               "train.iterations=3")
    summary = train(cfg, tmp_path)
    assert summary["iterations"] == 3 and math.isfinite(summary["metrics"]["train/g_loss"])


# ------------------------------------------------------------------------------ composition
# The table of every trick crossed with the mlp and dcgan models (and the weight digests) is in tests/test_parts.py.


def test_diffaug_augments_every_d_input_and_trains(tiny, tmp_path):
    """DiffAugment sits in d_input, which every D evaluation of every system goes through."""
    from gan_lab.compose import build_system

    cfg = tiny("logger=none", *MODELS["dcgan"], "tricks.diffaug=[cutout]", "train.iterations=3")
    system = build_system(cfg, build_components(cfg))
    assert system.tricks.diffaug == "cutout"
    seen = system.d_input(torch.ones(5, 1, 8, 8))
    assert ((seen == 0).flatten(1).sum(1) > 0).all() and ((seen == 0).flatten(1).sum(1) <= 16).all()  # ≤ 4×4 cut
    cfg = tiny("logger=none", *MODELS["dcgan"], "tricks.diffaug='color,translation,cutout'", "train.iterations=3")
    summary = train(cfg, tmp_path)
    assert summary["iterations"] == 3 and math.isfinite(summary["metrics"]["train/g_loss"])


def test_unrolling_draws_k_plus_k_minibatches(tiny, tmp_path):
    cfg = tiny("logger=none", *MODELS["mlp"], "tricks.unroll_steps=3", "train.k=2", "train.iterations=2")
    c = build_components(cfg)
    from gan_lab.compose import build_system

    assert build_system(cfg, c).batches_per_iteration == 5


BAD = [
    (["model=mlp", "dataset=ring", "regularizer=gp", "loss=wasserstein", "tricks.minibatch_discrimination=true"],
     "tricks.minibatch_discrimination", "regularizer=gp"),
    (["model=mlp", "dataset=ring", "tricks.feature_matching=true", "tricks.unroll_steps=2"],
     "tricks.feature_matching", "tricks.unroll_steps=2"),
    (["model=mlp", "dataset=ring", "regularizer=r1", "tricks.unroll_steps=2"], "tricks.unroll_steps", "regularizer=r1"),
    (["model=mlp", "dataset=ring", "regularizer=r2", "tricks.unroll_steps=2"], "tricks.unroll_steps", "regularizer=r2"),
    (["model=mlp", "dataset=ring", "tricks.virtual_batchnorm=true"], "tricks.virtual_batchnorm", "model.g_norm=batch"),
    (["tricks.ema=1.0"], "tricks.ema", "[0.0, 1.0)"),
    (["tricks.instance_noise=-0.1"], "tricks.instance_noise", "[0.0"),
    (["tricks.instance_noise_schedule=cosine"], "tricks.instance_noise_schedule", "linear, constant"),
    (["tricks.instance_noise_until=0"], "tricks.instance_noise_until", "(0.0, 1.0]"),
    (["tricks.instance_noise_schedule=constant", "tricks.instance_noise_until=0.5"], "tricks.instance_noise_until",
     "instance_noise_schedule=constant"),
    (["tricks.unroll_steps=-1"], "tricks.unroll_steps", ">= 0"),
    (["tricks.diffaug=[colour]"], "tricks.diffaug", "color, translation, cutout"),
    (["model=mlp", "dataset=ring", "tricks.diffaug=[translation]"], "tricks.diffaug", "point data"),
]


@pytest.mark.parametrize(("overrides", "key", "words"), BAD, ids=[b[1] for b in BAD])
def test_nonsense_combinations_name_both_options(overrides, key, words):
    with pytest.raises(ConfigError) as info:
        build_components(compose_cfg(*overrides))
    assert info.value.key == key and words in str(info.value)


def test_label_smoothing_with_a_critic_loss_names_both():
    error = refused("loss=wasserstein", "loss.label_smoothing=0.1")
    assert error.key == "loss.label_smoothing" and "wasserstein" in str(error)


# ------------------------------------------------------------------------------------------ ADA
class _System(nn.Module):
    """Just what the DiffAugment part reads: buffers, d_updates."""

    def __init__(self):
        super().__init__()
        self.d_updates = 0


def test_ada_moves_p_by_its_step_towards_the_target_and_clamps():
    from gan_lab.tricks.diffaug import DiffAugment

    part = DiffAugment(diffaug="translation", ada_target=0.6, ada_interval=2, ada_kimg=0.01)  # 10 images
    system = _System()
    part.attach(system)
    step = 2 * 4 / 10  # interval · batch / (kimg · 1000)

    def d_updates(logits: list[float], n: int):
        for _ in range(n):
            part.observe_d(system, torch.tensor(logits), torch.zeros(4))
            part.after_d_step(system)
            system.d_updates += 1

    d_updates([1.0, 1.0, 1.0, -1.0], 2)  # r_t = 0.5 < 0.6: p would fall, clamped at 0
    assert system.ada_p.item() == 0.0 and system.ada_rt.item() == pytest.approx(0.5)
    d_updates([1.0, 1.0, 1.0, 1.0], 2)  # r_t = 1 > 0.6: p rises by one step
    assert system.ada_p.item() == pytest.approx(step)
    d_updates([1.0, 1.0, 1.0, 1.0], 1)  # half an interval: no change yet
    assert system.ada_p.item() == pytest.approx(step)
    d_updates([1.0, 1.0, 1.0, 1.0], 3)
    assert system.ada_p.item() == pytest.approx(1.0)  # 0.8 + 0.8 clamped at 1


@pytest.mark.parametrize(("pack", "world"), [(1, 1), (4, 1), (1, 2), (2, 4)])
def test_ada_counts_images_over_every_rank_and_inside_packs(pack, world, monkeypatch):
    """stylegan2-ada moves p by (images seen) / (ada_kimg · 1000): a pack of m images is m images, and W ranks see
    W times the images of one."""
    from gan_lab.distributed import Ranks
    from gan_lab.tricks.diffaug import DiffAugment

    monkeypatch.setattr(Ranks, "current", classmethod(lambda cls: Ranks(0, world)))
    monkeypatch.setattr(Ranks, "mean_in_step", lambda self, t, what: t)  # every rank saw the same signs
    part = DiffAugment(diffaug="translation", ada_target=0.6, ada_interval=1, ada_kimg=1.0)
    system = _System()
    part.attach(system)
    images = torch.zeros(8, 1, 4, 4)
    part.d_draw(system, images)  # what D's step draws for its reals, before packing
    part.observe_d(system, torch.ones(8 // pack), torch.zeros(8 // pack))  # D's logits: one per pack
    part.after_d_step(system)
    assert system.ada_p.item() == pytest.approx(8 * world / 1000)


def test_ada_applies_each_transform_with_probability_p():
    from gan_lab.augment import diff_augment

    x = torch.ones(4000, 1, 8, 8)
    torch.manual_seed(0)
    cut = diff_augment(x, "cutout", probability=torch.tensor(0.3))
    assert ((cut == 0).flatten(1).any(1)).float().mean().item() == pytest.approx(0.3, abs=0.03)
    assert torch.equal(diff_augment(x, "cutout", probability=torch.tensor(0.0)), x)
    assert (diff_augment(x, "cutout", probability=torch.tensor(1.0)) == 0).flatten(1).any(1).all()


def test_ada_run_logs_p_and_resumes_it(tiny, tmp_path):
    cfg = tiny("logger=none", *MODELS["dcgan"], "tricks.diffaug=[translation]", "tricks.ada_target=0.6",
               "tricks.ada_kimg=0.05", "train.iterations=8", "train.log_every=2")
    summary = train(cfg, tmp_path)
    p = summary["metrics"]["train/ada_p"]
    assert 0.0 <= p <= 1.0 and "train/ada_rt" in summary["metrics"]
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert state["state_dict"]["ada_p"].item() == pytest.approx(p, abs=1e-6)  # the logged p is the saved p


# ------------------------------------------------------------------------------------------ packing
def test_packing_concatenates_consecutive_samples_and_builds_d_for_the_packed_shape(tiny):
    from gan_lab.compose import build_system
    from gan_lab.tricks.pack import Pack

    pack = Pack(pack=3)
    points = torch.arange(12.0).view(6, 2)
    assert pack.packed(points).tolist() == [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]]
    images = torch.arange(6.0).view(6, 1, 1, 1).expand(6, 2, 2, 2)
    packed = pack.packed(images)
    assert packed.shape == (2, 6, 2, 2) and packed[1, :, 0, 0].tolist() == [3, 3, 4, 4, 5, 5]
    cfg = tiny("logger=none", *MODELS["mlp"], "tricks.pack=4")
    system = build_system(cfg, build_components(cfg))
    assert system.discriminator.body[0].in_features == 2 * 4  # the ring's 2 coordinates, 4 to a pack
    assert system.d_input(torch.zeros(16, 2)).shape == (4, 8)
    cfg = tiny("logger=none", *MODELS["dcgan"], "tricks.pack=2")
    assert build_system(cfg, build_components(cfg)).discriminator(torch.zeros(3, 2, 8, 8)).shape == (3,)

