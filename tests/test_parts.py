"""The contract every loss, regularizer and trick meets, driven by the config tree.

A new conf/loss, conf/regularizer file or gan_lab/tricks part without a line in the tables below fails
``test_the_tables_cover_the_config_tree``; with its line, it is checked here for the contract (the
direction of each player's gradient, a penalty's sign and reach, each trick hook actually run by the
step, refusals naming both options) and trained. Closed forms live beside: tests/test_losses.py,
test_fgan.py, test_relativistic.py, test_regularizers.py, test_tricks.py and the new penalties below.
"""

from __future__ import annotations

import math

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
    "diffaug": ["tricks.diffaug=[color,translation,cutout]"],
    "ada": ["tricks.diffaug=[translation,cutout]", "tricks.ada_target=0.6", "tricks.ada_kimg=0.05"],
    "pack": ["tricks.pack=2"],
    "fgan_js_pi": ["loss=fgan", "loss.divergence=js_pi", "loss.pi=0.1"],
    "fgan_rkl_saturating": ["loss=fgan", "loss.divergence=rkl", "loss.generator_objective=saturating"],
    "mixture": ["mixture.generators=2", "mixture.discriminators=2"],
}
MODELS = {"mlp": ["model=mlp", "dataset=ring", "model.hidden=[16,16]", "model.g_norm=batch"],
          "dcgan": ["dataset=digits", "model.width=8"]}
POINT_DATA_ONLY = {"diffaug", "ada"}  # image augmentations: the mlp/ring row is a refusal, tested below
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
    g_loss = loss.g_loss(fake, real) if loss.g_needs_real else loss.g_loss(fake)
    assert g_loss.shape == () and math.isfinite(g_loss.item())
    (g_fake,) = torch.autograd.grad(g_loss, [fake])
    assert (g_fake <= 0).all() and (g_fake < 0).any()
    assert all(math.isfinite(v.item()) for v in loss.estimates(real, fake).values())


# ------------------------------------------------------------------------------------ regularizers
def _system(*overrides):
    cfg = compose_cfg("debug=tiny", "logger=none", *overrides)
    return build_system(cfg, build_components(cfg))


@pytest.mark.parametrize("name", sorted(REGULARIZERS))
def test_regularizer_contract_a_penalty_is_nonnegative_and_trains_d(name):
    system = _system(*REGULARIZERS[name], f"regularizer={name}")
    reg, d = system.regularizer, system.discriminator
    if reg.needs_input_gradients:  # capabilities agree with what the build enforces
        assert reg.forbids_batch_norm
    torch.manual_seed(0)
    with torch.no_grad():  # as D's step makes them
        fake = system.generator(system.sample_z(8))
    real = torch.rand_like(fake) * 2 - 1
    penalty = reg.penalty(Judged.of(d, real, fake, 0, d(real), d(fake)))
    if penalty is None:
        return
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
    ([*RING, "tricks.ada_target=0.6"], "tricks.ada_target", "tricks.diffaug"),
    ([*RING, "tricks.diffaug=[color]", "tricks.ada_target=1.5"], "tricks.ada_target", "[0.0, 1.0)"),
    ([*RING, "regularizer=lecam", "regularizer.lecam.decay=1.0"], "regularizer.decay", "[0.0, 1.0)"),
    ([*RING, "regularizer=cr", "regularizer.cr.policy=[]"], "regularizer.policy", "color, translation, cutout"),
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
    model = MODELS["dcgan"] if part.name in POINT_DATA_ONLY else MODELS["mlp"]
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
    if part.hooks() <= step.honours and part.name not in step.refuses:
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
    cfg = tiny("logger=none", *MODELS[model], *TRICKS[trick], "train.iterations=3")
    summary = train(cfg, tmp_path)
    assert summary["iterations"] == 3
    assert math.isfinite(summary["metrics"]["train/g_loss"])
    weight_digests(f"{trick}-{model}", tmp_path)
