"""The contract every loss, regularizer and trick meets, driven by the config tree.

A new conf/loss, conf/regularizer file or gan_lab/tricks part without a line in the tables below fails
``test_the_tables_cover_the_config_tree``; with its line, it is checked here for the contract (the
direction of each player's gradient, a penalty's sign and reach, each trick hook actually run by the
step, refusals naming both options) and trained. Closed forms live beside: tests/test_losses.py,
test_fgan.py, test_relativistic.py, test_regularizers.py, test_tricks.py and the new penalties below.
"""

from __future__ import annotations

import copy
import math

import lightning as L
import pytest
import torch

from gan_lab.compose import build, build_components, build_system
from gan_lab.errors import ConfigError
from gan_lab.regularizers.base import Judged
from gan_lab.train import train
from gan_lab.tricks import Tricks, part_classes
from tests.conftest import CONF, compose_cfg, group_options

RING = ["model=mlp", "dataset=ring", "model.hidden=[16,16]"]
DIGITS = ["dataset=digits", "model.width=8"]

# conf/loss/<name>.yaml -> extra overrides for the contract
LOSSES = {"minimax": [], "ns": [], "lsgan": [], "hinge": [], "wasserstein": [], "fgan": [], "rgan": [], "ragan": []}
# conf/regularizer/<name>.yaml -> the model and data it is checked on
REGULARIZERS = {"none": RING, "clip": RING, "gp": RING, "r1": RING, "r2": RING, "sn": RING, "lecam": RING,
                "cr": DIGITS}
# every trick setting a row turns on; ids are the weight-digest cases (tests/data/weights_digests.json)
TRICKS = {
    "feature_matching": ["tricks.feature_matching=true"],
    "minibatch_discrimination": ["tricks.minibatch_discrimination=true", "tricks.minibatch_kernels=8",
                                 "tricks.minibatch_kernel_dim=3"],
    "historical_averaging": ["tricks.historical_averaging=0.01"],
    "virtual_batchnorm": ["tricks.virtual_batchnorm=true", "tricks.virtual_batchnorm_size=8"],
    "instance_noise": ["tricks.instance_noise=0.1"],
    "unrolled": ["tricks.unroll_steps=2"],
    "unrolled_first_order": ["tricks.unroll_steps=2", "tricks.unroll_second_order=false"],
    "ema": ["tricks.ema=0.9"],
    "ema_kimg": ["tricks.ema_kimg=0.05", "tricks.ema_rampup=0.05"],
    "diffaug": ["tricks.diffaug=[color,translation,cutout]"],
    "ada": ["tricks.diffaug=[translation,cutout]", "tricks.ada_target=0.6", "tricks.ada_kimg=0.05"],
    "pack": ["tricks.pack=2"],
    "phema": ["tricks.phema=true"],
    "path_length": ["tricks.pl_weight=2", "tricks.pl_every=2"],
    "fgan_js_pi": ["loss=fgan", "loss.divergence=js_pi", "loss.pi=0.1"],
    "fgan_rkl_saturating": ["loss=fgan", "loss.divergence=rkl", "loss.generator_objective=saturating"],
    "mixture": ["mixture.generators=2", "mixture.discriminators=2"],
}
MODELS = {"mlp": ["model=mlp", "dataset=ring", "model.hidden=[16,16]", "model.g_norm=batch"],
          "dcgan": ["dataset=digits", "model.width=8"]}
POINT_DATA_ONLY = {"diffaug", "ada"}  # image augmentations: the mlp/ring row is a refusal, tested below
# tricks that need a model of their own (mlp's and dcgan's rows are refusals naming it), and that model's row
OWN_MODEL = {"path_length": ["model=stylegan2", "dataset=digits", "model.z_dim=16", "model.w_dim=16",
                             "model.mapping_layers=2", "model.channel_max=16"]}
# debug=tiny turns evaluation off; these put it back, as the default config has it, with small counts.
EVAL_ON = ["eval.at_end=true", "eval.every=2", "eval.every_samples=40", "eval.samples=60"]


def _parts_on(overrides: list[str]) -> set[str]:
    from omegaconf import OmegaConf

    cfg = compose_cfg(*overrides)
    return {part.name for part in Tricks(**OmegaConf.to_container(cfg.tricks)).parts}


def test_the_tables_cover_the_config_tree():
    assert set(LOSSES) == set(group_options("loss")), "a conf/loss file needs a line in LOSSES"
    assert set(REGULARIZERS) == set(group_options("regularizer")), "a conf/regularizer file needs a line"
    covered = set().union(*(_parts_on(o) for o in TRICKS.values()))
    assert covered == {c.name for c in part_classes()}, "a trick needs a line in TRICKS that turns it on"


@pytest.mark.parametrize("part", part_classes(), ids=lambda c: c.name)
def test_each_trick_has_its_yaml_with_the_same_keys_and_defaults(part):
    import yaml

    path = CONF / "tricks" / f"{part.name}.yaml"
    assert path.is_file(), f"{part.__name__} needs {path}"
    assert yaml.safe_load(path.read_text()) == part.settings
    assert {k: v for k, v in compose_cfg().tricks.items() if k in part.settings} == part.settings, \
        "conf/config.yaml's defaults list must name the file"


# ------------------------------------------------------------------------------------------ losses
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_contract_each_player_pushes_its_own_way(name):
    """D's loss falls as D scores reals higher and fakes lower; G's falls as D scores fakes higher (for
    scores between every loss's targets: LSGAN's a = 0 and b = c = 1, the hinges' ±1 margins)."""
    loss = build(compose_cfg(f"loss={name}", *LOSSES[name]).loss)
    torch.manual_seed(0)
    real = (torch.rand(32) * 0.9 + 0.05).requires_grad_(True)
    fake = (torch.rand(32) * 0.9 + 0.05).requires_grad_(True)
    d_loss = loss.d_loss(real, fake)
    assert d_loss.shape == () and math.isfinite(d_loss.item())
    g_real, g_fake = torch.autograd.grad(d_loss, [real, fake])
    assert (g_real <= 0).all() and (g_real < 0).any() and (g_fake >= 0).all() and (g_fake > 0).any()
    g_loss = loss.g_loss(fake, real) if loss.caps.g_needs_real else loss.g_loss(fake)
    assert g_loss.shape == () and math.isfinite(g_loss.item())
    (g_fake,) = torch.autograd.grad(g_loss, [fake])
    assert (g_fake <= 0).all() and (g_fake < 0).any()
    assert all(math.isfinite(v.item()) for v in loss.estimates(real, fake).values())


# ------------------------------------------------------------------------------------ regularizers
def _system(*overrides):
    cfg = compose_cfg("debug=tiny", "logger=none", *overrides)
    return build_system(cfg, build_components(cfg))


class FirstDStep(L.Callback):
    """Records D around a run's first D update (a callback built by ``_target_``; Hydra builds the instance
    inside train(), so the record is the class's): D's parameters at the start, the batches D judged and what it
    made of them, D before the step and the gradient the step applies, and D at the end of the first iteration.
    Listening to ``on_before_optimizer_step`` puts the run on Lightning's step path, numerically the lean one."""

    record: dict = {}

    def on_train_start(self, trainer, module) -> None:
        d, rec = module.discriminator, FirstDStep.record
        rec.clear()
        rec["initial"] = {n: p.detach().clone() for n, p in d.named_parameters()}
        judged = rec["judged"] = []
        self._hook = d.register_forward_hook(lambda m, args, out: judged.append((args[0].detach().clone(),
                                                                                  out.detach().clone())))

    def on_before_optimizer_step(self, trainer, module, optimizer) -> None:
        rec = FirstDStep.record
        if "grads" in rec or getattr(optimizer, "optimizer", optimizer) is not module.optimizers()[0].optimizer:
            return  # after the first D step, or G's step
        self._hook.remove()
        d = module.discriminator
        rec["grads"] = {n: None if p.grad is None else p.grad.clone() for n, p in d.named_parameters()}
        rec["d_before_step"] = copy.deepcopy(d)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        FirstDStep.record.setdefault("d_after", copy.deepcopy(module.discriminator))


def _first_d_step(name: str, run_dir, *overrides: str) -> tuple[dict, dict]:
    """One real iteration on REGULARIZERS[name]'s row, logging it: (its summary, FirstDStep's record)."""
    summary = train(compose_cfg("debug=tiny", "logger=none", *REGULARIZERS[name], f"regularizer={name}", *overrides,
                                "train.iterations=1", "train.log_every=1",
                                f"+callbacks.probe._target_={__name__}.FirstDStep"), run_dir)
    assert summary["status"] == "finished" and summary["iterations"] == 1
    return summary, FirstDStep.record


def _none_adds_nothing_to_d_loss(run_dir) -> None:
    """regularizer=none: no penalty is logged, and D's gradient is that of the non-saturating D loss alone,
    −mean log σ(D(x)) − mean log(1 − σ(D(G(z)))), computed here by hand on the batches D judged."""
    summary, rec = _first_d_step("none", run_dir)
    assert "train/d_loss" in summary["metrics"], "the iteration logged a row"
    assert "train/d_penalty" not in summary["metrics"]
    assert len(rec["judged"]) == 2, "D's step judges the real, then the fake batch, one forward each"
    (real, real_out), (fake, fake_out) = rec["judged"]
    d = rec["d_before_step"]  # the weights the gradient was taken at (train mode, as in the step)
    real_logits, fake_logits = d(real), d(fake)
    torch.testing.assert_close(real_logits, real_out, rtol=0, atol=0)  # the same D on the same batches
    torch.testing.assert_close(fake_logits, fake_out, rtol=0, atol=0)
    by_hand = -torch.log(torch.sigmoid(real_logits)).mean() - torch.log(1 - torch.sigmoid(fake_logits)).mean()
    names, params = zip(*d.named_parameters(), strict=True)
    expected = torch.autograd.grad(by_hand, params)
    assert set(rec["grads"]) == set(names)
    for n, g in zip(names, expected, strict=True):
        assert rec["grads"][n] is not None, n
        torch.testing.assert_close(rec["grads"][n], g, rtol=1e-5, atol=1e-7, msg=lambda m, n=n: f"{n}: {m}")


def _clip_bounds_every_d_weight(run_dir) -> None:
    """regularizer=clip: after a real D step every D parameter lies in [−c, c], and some were clipped to ±c.
    c = 0.01 is below most of PyTorch's initial weights (U(±1/√fan_in): ±0.71 in the ring D's first layer)."""
    _, rec = _first_d_step("clip", run_dir, "regularizer.clip_value=0.01")
    c = torch.tensor(0.01).item()  # c as float32 represents it, as the clamp writes it
    assert any((p.abs() > c).any() for p in rec["initial"].values()), "no initial weight beyond c: nothing to clip"
    after = dict(rec["d_after"].named_parameters())
    assert set(after) == set(rec["initial"])
    for n, p in after.items():
        assert p.abs().max().item() <= c, f"{n} reaches {p.abs().max().item()} > c"
    # Clamped weights sit exactly on the bound: an Adam step alone would leave them near where they started.
    assert sum((p.abs() == c).sum().item() for p in after.values()) > 0


def _sn_makes_every_d_layer_1_lipschitz(run_dir) -> None:
    """regularizer=sn: after a real D step, the top singular value of every D layer's effective weight is 1.

    The weight divides by a power-iteration estimate σ̂ ≤ σ_max (one iteration per forward in train mode), so
    σ_max(W/σ̂) = σ_max/σ̂ ≥ 1, falling to 1 as the estimate converges (its error shrinks like (σ₂/σ₁)^(2k)
    after k forwards). The step itself ran only a few forwards; 100 more bring every layer here (σ₂/σ₁ ≤ 0.97)
    to within 1e-6 of 1, far inside the 1e-3 tolerance, which is left for float32 SVDs and slower-converging
    weights. Weights drawn from N(0, 0.02) (model.init=normal) have σ_max ≈ 0.1: a layer left unnormalised
    misses 1 by ~0.9."""
    _, rec = _first_d_step("sn", run_dir, "model.init=normal")
    d = rec["d_after"]
    layers = [m for m in d.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert len(layers) == 3  # the ring row's D: 2 -> 16 -> 16 -> 1
    d.train()
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for _ in range(100):
            d(x)
    d.eval()  # reading the weight no longer steps the power iteration
    for m in layers:
        w = m.weight.detach()
        sigma = torch.linalg.matrix_norm(w.reshape(w.shape[0], -1), ord=2).item()
        assert sigma == pytest.approx(1.0, abs=1e-3), f"{m}: σ_max = {sigma}"
        raw = m.parametrizations.weight.original.detach()
        assert torch.linalg.matrix_norm(raw.reshape(raw.shape[0], -1), ord=2).item() < 0.5  # unnormalised: fails


# regularizer -> what it does to D in a real step, for those that add no penalty to D's loss
WITHOUT_PENALTY = {"none": _none_adds_nothing_to_d_loss, "clip": _clip_bounds_every_d_weight,
                   "sn": _sn_makes_every_d_layer_1_lipschitz}


@pytest.mark.parametrize("name", sorted(REGULARIZERS))
def test_regularizer_contract_a_penalty_is_nonnegative_and_trains_d(name, tmp_path):
    system = _system(*REGULARIZERS[name], f"regularizer={name}")
    reg, d = system.regularizer, system.discriminator
    if reg.caps.input_gradients:  # capabilities agree with what the build enforces
        assert reg.caps.forbids_batch_norm
    torch.manual_seed(0)
    with torch.no_grad():  # as D's step makes them
        fake = system.generator(system.sample_z(8))
    real = torch.rand_like(fake) * 2 - 1
    penalty = reg.penalty(Judged.of(d, real, fake, 0, d(real), d(fake)))
    if name in WITHOUT_PENALTY:  # a constraint, or nothing: what it does to D in a real step is its contract
        assert penalty is None
        WITHOUT_PENALTY[name](tmp_path)
        return
    assert penalty is not None, f"regularizer={name} adds no penalty: WITHOUT_PENALTY needs a check of its effect"
    value = penalty.item()
    assert penalty.shape == () and value >= 0 and math.isfinite(value)
    if value > 0:
        grads = torch.autograd.grad(penalty, [p for p in d.parameters() if p.requires_grad], allow_unused=True)
        assert any(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize(("choice", "base"), [("[sn,gp]", RING), ("[r1,r2]", RING), ("[sn,cr]", DIGITS),
                                              ("[sn,lecam]", DIGITS)])
def test_combinations_train(choice, base, tmp_path):
    summary = train(compose_cfg("debug=tiny", "logger=none", *base, "loss=hinge", f"regularizer={choice}",
                                "train.iterations=4", "train.log_every=2"), tmp_path)
    assert summary["status"] == "finished" and summary["metrics"]["train/d_penalty"] > 0


@pytest.mark.parametrize(("overrides", "key", "words"), [
    (["model=mlp", "dataset=ring", "regularizer=cr"], "regularizer", "dataset=ring"),
    (["model=lapgan", "dataset=digits", "model.width=4", "model.hidden=16", "regularizer=lecam"], "regularizer",
     "model=lapgan"),
    (["model=mlp", "dataset=ring", "mixture.generators=2", "regularizer=[sn,lecam]"], "regularizer",
     "mixture.generators=2"),
    ([*RING, "tricks.ada_target=0.6"], "tricks.ada_target", "point data"),  # ADA alone: its bgc pipeline, on images
    ([*DIGITS, "tricks.ada_target=0.6", "tricks.ada_pipeline=diffaug"], "tricks.ada_pipeline", "tricks.diffaug"),
    ([*RING, "tricks.diffaug=[color]", "tricks.ada_target=1.5"], "tricks.ada_target", "[0.0, 1.0)"),
    ([*RING, "regularizer=lecam", "regularizer.lecam.decay=1.0"], "regularizer.lecam.decay", "[0.0, 1.0)"),
    ([*RING, "regularizer=cr", "regularizer.cr.policy=[]"], "regularizer.cr.policy", "color, translation, cutout"),
    ([*RING, "+tricks.emma=0.9"], "tricks.emma", "ema"),
    ([*RING, "tricks.pack=3", "train.batch_size=16"], "tricks.pack", "train.batch_size=16"),
    ([*RING, "tricks.pack=2", "tricks.minibatch_discrimination=true"], "tricks.pack", "minibatch_discrimination"),
])
def test_refusals_name_both_options(overrides, key, words):
    with pytest.raises(ConfigError) as info:
        build_components(compose_cfg(*overrides))
    assert info.value.key == key and words in str(info.value)


# ------------------------------------------------------------------------------------------ tricks
def _first_row(part) -> list[str]:
    return next(o for o in TRICKS.values() if part.name in _parts_on(o))


@pytest.mark.parametrize("part", part_classes(), ids=lambda c: c.name)
def test_trick_contract_every_hook_it_overrides_is_run(part, tmp_path):
    """The systems run each hook a part overrides (networks and attach at build, the others in the step)."""
    row = _first_row(part)
    model = OWN_MODEL.get(part.name) or (MODELS["dcgan"] if part.name in POINT_DATA_ONLY else MODELS["mlp"])
    calls: dict[str, int] = {}
    with pytest.MonkeyPatch.context() as mp:
        for hook in part.hooks():
            original = getattr(part, hook)

            def spy(self, *args, _hook=hook, _original=original, **kwargs):
                calls[_hook] = calls.get(_hook, 0) + 1
                return _original(self, *args, **kwargs)

            mp.setattr(part, hook, spy)
        summary = train(compose_cfg("debug=tiny", "logger=none", *model, *row, "train.iterations=2",
                                    "train.log_every=1"), tmp_path)
    assert summary["status"] == "finished"
    assert set(calls) == part.hooks(), f"hooks never run: {part.hooks() - set(calls)}"


@pytest.mark.parametrize("part", part_classes(), ids=lambda c: c.name)
@pytest.mark.parametrize("system", ["lapgan", "mixture"])
def test_systems_without_a_hook_refuse_the_trick_naming_both(part, system):
    from gan_lab.systems.lapgan import LAPGAN
    from gan_lab.systems.mixture import MixtureGAN

    step = LAPGAN if system == "lapgan" else MixtureGAN
    base = (["model=lapgan", "dataset=digits", "model.width=4", "model.hidden=16"] if system == "lapgan"
            else ["mixture.generators=2", *MODELS["dcgan"]])
    cfg = compose_cfg(*base, *_first_row(part))
    runs = part.hooks() <= step.caps.hooks and part.name not in dict(step.caps.refused_tricks)
    if runs and part.name not in OWN_MODEL:  # (a trick of its own model is refused with these networks)
        build_components(cfg)  # runs
        return
    with pytest.raises(ConfigError) as info:
        build_components(cfg)
    assert info.value.key.startswith("tricks.") and ("model=lapgan" if system == "lapgan" else
                                                     "mixture.generators=2") in str(info.value)


@pytest.mark.parametrize("model", sorted(MODELS))
@pytest.mark.parametrize("trick", sorted(TRICKS))
def test_every_technique_composes_with_mlp_and_dcgan(trick, model, tiny, tmp_path, weight_digests):
    if trick in POINT_DATA_ONLY and model == "mlp":
        with pytest.raises(ConfigError, match="point data"):
            build_components(tiny(*MODELS[model], *TRICKS[trick]))
        return
    if trick in OWN_MODEL:
        with pytest.raises(ConfigError, match=OWN_MODEL[trick][0]):
            build_components(tiny(*MODELS[model], *TRICKS[trick]))
        return
    cfg = tiny("logger=none", *MODELS[model], *TRICKS[trick], "train.iterations=3")
    summary = train(cfg, tmp_path)
    assert summary["iterations"] == 3
    assert math.isfinite(summary["metrics"]["train/g_loss"])
    weight_digests(f"{trick}-{model}", tmp_path)


@pytest.mark.parametrize("trick", sorted(OWN_MODEL))
def test_a_technique_of_its_own_model_trains_with_it(trick, tiny, tmp_path, weight_digests):
    summary = train(tiny("logger=none", *OWN_MODEL[trick], *TRICKS[trick], "train.iterations=3"), tmp_path)
    assert summary["iterations"] == 3 and math.isfinite(summary["metrics"]["train/g_loss"])
    weight_digests(f"{trick}-{OWN_MODEL[trick][0].split('=')[1]}", tmp_path)
