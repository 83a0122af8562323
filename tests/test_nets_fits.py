"""Every model's ``fits(spec, **kwargs)``: None for data of a shape it is sized for, the refusal naming ``model``
(or the setting that does not fit) otherwise; found from the model config's ``_target_`` by ``fits_of``."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from gan_lab.compose import MODEL_KEYS
from gan_lab.data.base import DataSpec
from gan_lab.errors import ConfigError
from gan_lab.nets import fits_of
from tests.conftest import compose_cfg, group_options

POINTS2, POINTS1 = DataSpec("ring", (2,), "points"), DataSpec("gauss1d", (1,), "points")
DIGITS, ODD = DataSpec("digits", (1, 8, 8), "image"), DataSpec("odd", (1, 15, 15), "image")
# model group: (a shape it fits, a shape it refuses: None when it refuses none)
CASES = {"affine1d": (POINTS1, POINTS2), "parallel_lines": (POINTS2, POINTS1), "mlp": (POINTS2, None),
         "dcgan": (DIGITS, ODD), "resnet": (DIGITS, POINTS2), "progressive": (DIGITS, ODD), "lapgan": (DIGITS, ODD),
         "r3gan": (DIGITS, ODD), "stylegan2": (DIGITS, ODD)}


def model_kwargs(name: str) -> tuple[str, dict]:
    """(the model's _target_, the keyword arguments the lab passes its builder: d_norm resolved)."""
    model = compose_cfg(f"model={name}").model
    kwargs = OmegaConf.to_container(model)
    kwargs = {k: v for k, v in kwargs.items() if k not in MODEL_KEYS and not k.startswith("_")}
    if kwargs.get("d_norm") == "auto":
        kwargs["d_norm"] = "none"
    return model._target_, kwargs


def test_every_model_group_has_a_case():
    assert sorted(CASES) == group_options("model")


@pytest.mark.parametrize("name", sorted(CASES))
def test_fits_accepts_a_good_shape_and_refuses_a_bad_one(name):
    target, kwargs = model_kwargs(name)
    fits = fits_of(target)
    good, bad = CASES[name]
    assert fits(good, **kwargs) is None
    assert fits(good, **kwargs, an_unknown_setting=1) is None  # extra keyword arguments are ignored
    if bad is not None:
        refusal = fits(bad, **kwargs)
        assert isinstance(refusal, ConfigError)
        assert (refusal.key, refusal.value) == ("model", name)
        assert f"dataset={bad.name}" in str(refusal)


@pytest.mark.parametrize(("name", "settings", "key"), [
    ("resnet", {"d_down": 4}, "model.d_down"),  # 8 px cannot be halved 4 times
    ("lapgan", {"levels": 2}, "model.levels"),  # 8 px halves once to >= 4
    ("lapgan", {"z_dim": 16, "level_z_dim": 16}, "model.z_dim"),  # the coarsest level would get no noise
    ("progressive", {"d_norm": "batch"}, "model.d_norm"),  # auto resolved to batch
    ("r3gan", {"d_norm": "batch"}, "model.d_norm"),  # R3GAN has no normalisation
    ("r3gan", {"group_size": 48}, "model.group_size"),  # 48 does not divide the expanded width 2 x 64
])
def test_fits_refuses_settings_that_do_not_suit_the_shape(name, settings, key):
    target, kwargs = model_kwargs(name)
    refusal = fits_of(target)(DIGITS, **{**kwargs, **settings})
    assert isinstance(refusal, ConfigError) and refusal.key == key


def test_mnist5k_padded_to_32_px_feeds_the_power_of_two_nets():
    """StyleGAN2's and R3GAN's nets need a power-of-two side: mnist5k's refusal names dataset.pad_to, which gives
    the digits centred on black at 32 px under their own name (their own metrics and domain classifier)."""
    import torch

    from gan_lab.compose import build_components

    with pytest.raises(ConfigError) as info:
        build_components(compose_cfg("debug=tiny", "model=r3gan"))
    assert info.value.key == "model" and "dataset.pad_to=32" in str(info.value)
    c = build_components(compose_cfg("debug=tiny", "model=r3gan", "dataset.pad_to=32"))
    assert c.source.spec.name == "mnist5k_32" and c.source.spec.shape == (1, 32, 32)
    x = c.source.data
    assert torch.equal(x[:, :, :2], torch.full_like(x[:, :, :2], -1.0)) and x[:, :, 2:30, 2:30].max() == 1.0
    with pytest.raises(ConfigError) as info:
        build_components(compose_cfg("debug=tiny", "dataset.pad_to=31"))
    assert info.value.key == "dataset.pad_to"
