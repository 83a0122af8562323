"""ADA's bgc pipeline (gan_lab/augment_ada.py, Karras 2020): each transform alone at p = 1 against its closed form,
read from the drawn matrices; p's law; the draw as a fixed, differentiable map; and ``tricks.ada_target`` alone
training the default image model."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from gan_lab.augment import draw_augment
from gan_lab.augment_ada import (
    BGC,
    AdaTransform,
    draw_ada,
    hue_matrix,
    saturation_matrix,
)
from gan_lab.errors import ConfigError
from gan_lab.train import train
from gan_lab.tricks.diffaug import DiffAugment
from tests.conftest import compose_cfg

QUARTER = {(1.0, 0.0): 0, (0.0, 1.0): 1, (-1.0, 0.0): 2, (0.0, -1.0): 3}  # (cos, sin) of k·90° -> k


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(n: int = 16, channels: int = 3, size: int = 12, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, channels, size, size, generator=seeded(seed)) * 2 - 1


def one(transform: str, x: torch.Tensor, p: float = 1.0, seed: int = 0) -> AdaTransform:
    return draw_ada(x, torch.tensor(p), seeded(seed), transforms=[transform])


# --- blits: exact ---------------------------------------------------------------------------------------------------

def test_xflip_flips_exactly_the_samples_its_matrix_flips():
    x = images()
    t = one("xflip", x)
    flipped = t.geometry[:, 0, 0] == -1
    assert 0 < flipped.sum() < len(x)  # i ~ U{0, 1}: both occur among 16
    y = t(x)
    assert torch.equal(y[flipped], x[flipped].flip(3)) and torch.equal(y[~flipped], x[~flipped])


def test_rotate90_is_torch_rot90_by_the_drawn_quarter_turns():
    x = images()
    t = one("rotate90", x)
    ks = [QUARTER[(c.item(), s.item())] for c, s in zip(t.geometry[:, 0, 0], t.geometry[:, 1, 0], strict=True)]
    assert len(set(ks)) >= 3
    y = t(x)
    for i, k in enumerate(ks):
        assert torch.equal(y[i], torch.rot90(x[i], k, dims=(1, 2))), k


def test_integer_translation_is_a_roll_of_the_reflect_padded_image():
    x = images(size=16)
    t = one("xint", x)
    tx, ty = -t.geometry[:, 0, 2], -t.geometry[:, 1, 2]  # G⁻¹ = translate(−t): content moves by +t
    assert torch.equal(tx, tx.round()) and tx.abs().max() <= 2 and ty.abs().max() <= 2  # round(0.125·16)
    assert (tx != 0).any() and (ty != 0).any()
    y = t(x)
    padded = F.pad(x, [4, 4, 4, 4], mode="reflect")
    for i in range(len(x)):
        rolled = torch.roll(padded[i], (int(ty[i]), int(tx[i])), dims=(1, 2))[:, 4:20, 4:20]
        assert torch.equal(y[i], rolled)


def test_identity_parameters_through_the_filters_return_the_image():
    """An identity G⁻¹ nudged by 1e-30 (not the identity, not a blit) takes the resampling path: reflect pad, 2× up,
    bilinear sample, 2× down. The wavelet is orthogonal, so only float rounding remains: measured 6.7e-6."""
    x = images()
    geometry = torch.eye(3).repeat(len(x), 1, 1)
    geometry[:, 0, 2] = 1e-30
    y = AdaTransform(tuple(x.shape), geometry, None)(x)
    assert not torch.equal(y, x)
    torch.testing.assert_close(y, x, atol=3e-5, rtol=0)


def test_fractional_translation_moves_a_smooth_image_by_the_drawn_shift():
    """xfrac alone: a linear ramp along W shifted by t_x pixels becomes ramp − slope·t_x away from the borders
    (the filters reproduce linear signals; tolerance 2e-3 for bilinear sampling of the 2× canvas)."""
    size = 24
    ramp = torch.linspace(-0.5, 0.5, size).view(1, 1, 1, size).expand(8, 1, size, size).contiguous()
    t = one("xfrac", ramp)
    tx = -t.geometry[:, 0, 2]
    slope = 1.0 / (size - 1)
    expected = ramp - slope * tx.view(-1, 1, 1, 1)
    inner = slice(8, 16)
    torch.testing.assert_close(t(ramp)[..., inner, inner], expected[..., inner, inner], atol=2e-3, rtol=0)


# --- colour: closed forms ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("channels", [1, 3])
def test_brightness_adds_the_drawn_shift_and_contrast_scales_about_zero(channels):
    """The reference's contrast multiplies the colour about 0, the mid-grey of [-1, 1] (not about the image mean)."""
    x = images(channels=channels)
    t = one("brightness", x)
    b = t.colour[:, 0, 3]
    assert (b != 0).all()
    torch.testing.assert_close(t(x), x + b.view(-1, 1, 1, 1), atol=1e-6, rtol=0)
    t = one("contrast", x)
    c = t.colour[:, 0, 0]
    assert (c != 1).all()
    torch.testing.assert_close(t(x), x * c.view(-1, 1, 1, 1), atol=1e-6, rtol=1e-6)


def test_luma_flip_negates_grey_and_reflects_colour_through_the_grey_axis():
    grey = images(channels=1)
    t = one("lumaflip", grey)
    flipped = t.colour[:, 0, 0] < 0.5  # I − 2·v·vᵀ: diagonal 1 − 2/3
    assert 0 < flipped.sum() < len(grey)
    torch.testing.assert_close(t(grey), torch.where(flipped.view(-1, 1, 1, 1), -grey, grey), atol=1e-6, rtol=0)
    rgb_grey = grey.expand(-1, 3, -1, -1)
    t = one("lumaflip", rgb_grey)
    flipped = (t.colour[:, 0, 0] < 0.5).view(-1, 1, 1, 1)
    torch.testing.assert_close(t(rgb_grey), torch.where(flipped, -rgb_grey, rgb_grey), atol=1e-6, rtol=0)
    x = images()
    expected = torch.where(flipped, x - 2 * x.mean(dim=1, keepdim=True), x)  # rgb − 2·mean_c(rgb)
    torch.testing.assert_close(t(x), expected, atol=1e-6, rtol=0)


def test_saturation_scales_about_the_channel_mean_and_zero_gives_grey():
    x = images()
    t = one("saturation", x)
    s = 1 + (t.colour[:, 0, 0] - 1) * 1.5  # diagonal of I + (s − 1)(I − v·vᵀ): 1 + (s − 1)·2/3
    mean = x.mean(dim=1, keepdim=True)
    torch.testing.assert_close(t(x), mean + s.view(-1, 1, 1, 1) * (x - mean), atol=1e-5, rtol=0)
    grey = AdaTransform(tuple(x.shape), None, saturation_matrix(torch.zeros(len(x))))(x)
    torch.testing.assert_close(grey, mean.expand_as(x), atol=1e-6, rtol=0)


def test_hue_rotates_about_the_grey_axis():
    """Per pixel, the channel mean and the distance from grey are kept; θ = 2π/3 cycles R → G → B."""
    x = images()
    y = one("hue", x)(x)
    mean, y_mean = x.mean(dim=1, keepdim=True), y.mean(dim=1, keepdim=True)
    torch.testing.assert_close(y_mean, mean, atol=1e-5, rtol=0)
    torch.testing.assert_close((y - y_mean).norm(dim=1), (x - mean).norm(dim=1), atol=1e-5, rtol=0)
    cycled = AdaTransform(tuple(x.shape), None, hue_matrix(torch.full((len(x),), 2 * math.pi / 3)))(x)
    torch.testing.assert_close(cycled, x.roll(1, dims=1), atol=1e-5, rtol=0)


def test_grey_images_neither_draw_nor_apply_hue_and_saturation():
    """As the reference (num_channels = 1): the rest of the draw is the same as without them."""
    x = images(channels=1)
    full = draw_ada(x, torch.tensor(1.0), seeded(3))
    grey_set = draw_ada(x, torch.tensor(1.0), seeded(3), transforms=[n for n in BGC if n not in ("hue", "saturation")])
    assert torch.equal(full.geometry, grey_set.geometry) and torch.equal(full.colour, grey_set.colour)


# --- cutout (not in bgc; R3GAN's pipeline adds it) ------------------------------------------------------------------

def test_cutout_zeroes_the_reference_square_around_the_drawn_centre():
    """The reference's definition, from the same draws (the decision, then the centre): pixel (i, j) is cut when
    |(j + ½)/W − c_x| and |(i + ½)/H − c_y| are both below a quarter of the side; the rest pass unchanged."""
    x, h, w = images(n=64, size=12)[:, :, :, :10], 12, 10
    t = one("cutout", x, p=0.5, seed=3)
    g = seeded(3)
    chosen, centre = torch.rand(64, 1, generator=g) < 0.5, torch.rand(64, 2, generator=g)
    cols, rows = (torch.arange(w) + 0.5) / w, (torch.arange(h) + 0.5) / h
    inside = (((cols.view(1, 1, w) - centre[:, :1, None]).abs() < 0.25)
              & ((rows.view(1, h, 1) - centre[:, 1:, None]).abs() < 0.25) & chosen.view(64, 1, 1))
    assert 10 < chosen.sum() < 54 and inside.any()
    y = t(x)
    assert torch.equal(y, x * (~inside).unsqueeze(1).float())
    full = inside[chosen.view(-1) & (centre > 0.25).all(1) & (centre < 0.75).all(1)]
    assert (full.sum(dim=(1, 2)) == 6 * 5).all()  # a square of half the side, whole when it fits: 6 rows × 5 columns


@pytest.mark.parametrize("multiplier", [0.5, 1.0])
def test_a_multiplier_scales_the_probability_of_its_transform(multiplier):
    """tricks.ada_strengths (R3GAN: colour at 0.5): a transform acts with probability p·m."""
    t = draw_ada(torch.zeros(N, 3, 4, 4), torch.tensor(0.6), seeded(),
                 transforms={"brightness": multiplier, "cutout": multiplier})
    assert abs((t.colour[:, 0, 3] != 0).float().mean().item() - 0.6 * multiplier) < TOL
    assert abs((t.cutout.amin(dim=(1, 2, 3)) == 0).float().mean().item() - 0.6 * multiplier) < TOL


def test_the_tricks_multipliers_go_over_bgcs_ones():
    assert DiffAugment(ada_target=0.6).strengths == dict.fromkeys(BGC, 1.0)
    r3gan = DiffAugment(augment_p=0.3, ada_strengths={"brightness": 0.5, "hue": 0, "cutout": 1})
    expected = {**dict.fromkeys(BGC, 1.0), "brightness": 0.5, "cutout": 1.0}
    del expected["hue"]  # a multiplier of 0 drops it
    assert r3gan.strengths == expected


# --- the draw as a map ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("channels", [1, 3])
def test_p_zero_is_the_identity_exactly(channels):
    x = images(channels=channels)
    assert torch.equal(draw_ada(x, torch.tensor(0.0), seeded(), transforms=(*BGC, "cutout"))(x), x)


def test_one_draw_gives_the_same_output_twice_and_an_exact_gradient():
    x = images(n=4)
    t = draw_ada(x, torch.tensor(1.0), seeded(5))
    assert torch.equal(t(x), t(x)) and not torch.equal(t(x), x)
    small = images(n=2, size=5).double().requires_grad_(True)
    u = draw_ada(small, torch.tensor(1.0), seeded(6))
    assert not torch.equal(u(small), small)
    # analytic against numerical derivatives along random directions (fast mode: the full Jacobian takes 30 s);
    # R1 through T differentiates the backward again
    assert torch.autograd.gradcheck(u, (small,), eps=1e-6, atol=1e-6, fast_mode=True)
    assert torch.autograd.gradgradcheck(u, (small,), eps=1e-6, atol=1e-6, fast_mode=True)


def test_shape_dtype_and_device_are_the_inputs():
    for dtype in (torch.float32, torch.float64, torch.bfloat16):
        x = images(n=4).to(dtype)
        y = draw_ada(x, torch.tensor(1.0), seeded())(x)
        assert y.shape == x.shape and y.dtype == dtype and y.device == x.device
    x = images(n=4)
    with pytest.raises(ValueError, match="shape"):
        draw_ada(x, torch.tensor(1.0))(x[:2])


def test_mixed_precision_draws_and_applies_in_float32():
    """Under bf16 autocast (trainer.precision=bf16-mixed) the resampling products would lose 0.5 in bf16."""
    x = images(n=4)
    t = draw_ada(x, torch.tensor(1.0), seeded(2))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        u = draw_ada(x, torch.tensor(1.0), seeded(2))
        y = t(x)
    assert torch.equal(u.geometry, t.geometry) and torch.equal(u.colour, t.colour)
    assert y.dtype == torch.float32 and torch.equal(y, t(x))


@pytest.mark.parametrize("x, transforms", [(torch.zeros(2, 2, 4, 4), BGC), (torch.zeros(2, 8), BGC),
                                           (torch.zeros(2, 3, 4, 4), ["xflip", "zoom"])])
def test_refuses_what_it_cannot_transform(x, transforms):
    with pytest.raises(ConfigError, match="tricks.ada_pipeline"):
        draw_ada(x, torch.tensor(1.0), transforms=transforms)


# --- the law of the draws ------------------------------------------------------------------------------------------

N = 20_000
TOL = 0.015  # 4.6 binomial standard deviations at p = 0.3, n = 20,000


@pytest.mark.parametrize("transform, chosen_fraction", [
    ("brightness", lambda t: (t.colour[:, 0, 3] != 0).float().mean()),
    ("xflip", lambda t: 2 * (t.geometry[:, 0, 0] == -1).float().mean()),  # half the chosen are flipped
    ("rotate", lambda t: (t.geometry[:, 0, 1] != 0).float().mean()),  # pre or post, each 1 − √(1 − p)
])
def test_each_transform_acts_with_probability_p(transform, chosen_fraction):
    t = draw_ada(torch.zeros(N, 3, 4, 4), torch.tensor(0.3), seeded(), transforms=[transform])
    assert abs(chosen_fraction(t).item() - 0.3) < TOL


@pytest.mark.parametrize("transform, statistic, expected", [
    ("scale", lambda t: torch.log2(t.geometry[:, 0, 0]).std(), 0.2),  # G⁻¹ holds 1/s: the same spread
    ("aniso", lambda t: torch.log2(t.geometry[:, 1, 1]).std(), 0.2),
    ("xfrac", lambda t: (t.geometry[:, 0, 2] / 8).std(), 0.125),  # in units of the size (8)
    ("brightness", lambda t: t.colour[:, 0, 3].std(), 0.2),
    ("contrast", lambda t: torch.log2(t.colour[:, 0, 0]).std(), 0.5),
    ("saturation", lambda t: torch.log2(1 + (t.colour[:, 0, 0] - 1) * 1.5).std(), 1.0),
])
def test_drawn_parameters_have_the_papers_spread(transform, statistic, expected):
    """Lognormal factors have log2 std 0.2, 0.5, 1 (ln std 0.2·ln 2, …); ±4% is over 4 standard errors."""
    t = draw_ada(torch.zeros(N, 3, 8, 8), torch.tensor(1.0), seeded(), transforms=[transform])
    assert abs(statistic(t).item() / expected - 1) < 0.04


# --- the trick ------------------------------------------------------------------------------------------------------

def test_ada_alone_draws_the_bgc_pipeline_and_with_diffaug_keeps_diffaugs_draw():
    class System:
        ada_p = torch.tensor(0.5)

    x = images(n=4)
    alone = DiffAugment(ada_target=0.6)
    assert alone.on and alone.pipeline == "bgc" and alone.option() == "tricks.ada_target=0.6"
    assert isinstance(alone.d_draw(System(), x), AdaTransform)
    both = DiffAugment(diffaug="color,translation", ada_target=0.6)
    assert both.pipeline == "diffaug"
    torch.manual_seed(0)
    ours = both.d_draw(System(), x)(x)
    torch.manual_seed(0)
    assert torch.equal(ours, draw_augment(x, "color,translation", probability=System.ada_p)(x))
    assert not DiffAugment().on and not DiffAugment(ada_pipeline="bgc").on


def test_ada_target_alone_trains_the_default_image_model(tmp_path):
    """``tricks.ada_target=0.6`` and nothing else of DiffAugment: p moves, and the run ends with its evaluation,
    logs and checkpoints (debug=tiny turns evaluation off; it is put back with few samples)."""
    cfg = compose_cfg("debug=tiny", "model.width=8", "tricks.ada_target=0.6", "tricks.ada_kimg=0.1",
                      "train.iterations=8", "eval.at_end=true", "eval.samples=60")
    summary = train(cfg, tmp_path)
    assert summary["status"] == "finished" and summary["iterations"] == 8
    history = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    ps = [row["train/ada_p"] for row in history if "train/ada_p" in row]
    assert ps[0] == 0.0 and max(ps) > 0.0  # p starts at 0; r_t above 0.6 raised it by 4·16/100 per adjustment
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert state["state_dict"]["ada_p"].item() == pytest.approx(ps[-1], abs=1e-6)
    assert any(key.startswith("val/") for key in summary["metrics"])
    assert (tmp_path / "metrics.json").is_file() and (tmp_path / "report.html").is_file()
