"""DiffAugment (Zhao 2020): each transform against closed forms on exact draws, then the random policy's law."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gan_lab.augment import (
    _brightness,
    _contrast,
    _cutout,
    _saturation,
    _translate,
    diff_augment,
    parse_policy,
)
from gan_lab.errors import ConfigError

FULL = "color,translation,cutout"


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def reference_translate(x: torch.Tensor, tx: int, ty: int) -> torch.Tensor:
    """Loop version of one image's shift: content moves tx right, ty down, zero fill."""
    out = torch.zeros_like(x)
    _, h, w = x.shape
    for i in range(h):
        for j in range(w):
            if 0 <= i - ty < h and 0 <= j - tx < w:
                out[:, i, j] = x[:, i - ty, j - tx]
    return out


# --- policy parsing -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    ("", ()), (None, ()), ([], ()), ("translation", ("translation",)),
    ("color,translation,cutout", ("color", "translation", "cutout")),
    (" cutout , color ", ("cutout", "color")), (["translation", "cutout"], ("translation", "cutout")),
    (("color",), ("color",)),
])
def test_parse_policy_accepts_strings_and_sequences(value, expected):
    assert parse_policy(value) == expected


@pytest.mark.parametrize("value", ["colour", "color,flip", ["translation", "zoom"], "color,color", 3, [1]])
def test_bad_policy_raises_config_error_naming_the_key(value):
    with pytest.raises(ConfigError, match="tricks.diffaug") as info:
        parse_policy(value)
    assert "color, translation, cutout" in str(info.value)
    with pytest.raises(ConfigError, match="tricks.diffaug"):
        diff_augment(torch.zeros(2, 1, 4, 4), value)


def test_empty_policy_is_the_identity_even_for_non_images():
    x = torch.randn(3, 1, 8, 8)
    assert diff_augment(x, "") is x
    assert diff_augment(x, []) is x
    flat = torch.randn(5, 2)
    assert diff_augment(flat, "") is flat


def test_non_image_input_is_refused():
    with pytest.raises(ConfigError, match="tricks.diffaug.*4-D"):
        diff_augment(torch.randn(5, 2), "translation")
    with pytest.raises(ConfigError, match="floating-point"):
        diff_augment(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), "cutout")


# --- translation --------------------------------------------------------------------------------------------------

def test_translate_gives_the_exact_shifted_tensor():
    x = torch.arange(1.0, 10.0).view(1, 1, 3, 3)  # [[1,2,3],[4,5,6],[7,8,9]]
    right = _translate(x, torch.tensor([1]), torch.tensor([0]))
    torch.testing.assert_close(right, torch.tensor([[[[0.0, 1, 2], [0, 4, 5], [0, 7, 8]]]]))
    up = _translate(x, torch.tensor([0]), torch.tensor([-1]))
    torch.testing.assert_close(up, torch.tensor([[[[4.0, 5, 6], [7, 8, 9], [0, 0, 0]]]]))
    diag = _translate(x, torch.tensor([-2]), torch.tensor([1]))
    torch.testing.assert_close(diag, torch.tensor([[[[0.0, 0, 0], [3, 0, 0], [6, 0, 0]]]]))
    off = _translate(x, torch.tensor([5]), torch.tensor([0]))  # shifted right off the image: all zero fill
    torch.testing.assert_close(off, torch.zeros_like(x))
    torch.testing.assert_close(_translate(x, torch.tensor([0]), torch.tensor([0])), x)


def test_translate_is_per_sample_and_matches_a_loop_on_a_non_square_batch():
    torch.manual_seed(0)
    x = torch.randn(4, 3, 5, 7)
    tx, ty = torch.tensor([0, 1, -3, 2]), torch.tensor([-1, 0, 2, -4])
    out = _translate(x, tx, ty)
    for n in range(4):
        torch.testing.assert_close(out[n], reference_translate(x[n], int(tx[n]), int(ty[n])))


def test_random_translation_moves_a_bright_pixel_within_an_eighth_and_changes_nothing_else():
    torch.manual_seed(1)
    n, h = 64, 32
    x = torch.rand(n, 3, h, h) * 0.5 + 0.1  # content in [0.1, 0.6]
    x[:, 0, h // 2, h // 2] = 5.0  # the bright marker
    out = diff_augment(x, "translation", seeded(3))
    r = h // 8
    shifts = set()
    for k in range(n):
        where = (out[k, 0] == 5.0).nonzero()
        assert where.shape == (1, 2)
        ty, tx = int(where[0, 0]) - h // 2, int(where[0, 1]) - h // 2
        assert -r <= ty <= r and -r <= tx <= r
        shifts.add((tx, ty))
        torch.testing.assert_close(out[k], reference_translate(x[k], tx, ty), rtol=0, atol=0)
    assert len(shifts) > 10  # different samples, different draws


def test_translation_shifts_cover_the_range_uniformly():
    n, h = 9000, 16  # r = 2: five values per axis, 1800 expected each
    x = torch.zeros(n, 1, h, h)
    x[:, 0, h // 2, h // 2] = 1.0
    out = diff_augment(x, "translation", seeded(4))
    flat = out[:, 0].reshape(n, -1).argmax(dim=1)
    ty, tx = flat // h - h // 2, flat % h - h // 2
    assert bool((out[:, 0].reshape(n, -1).sum(1) == 1).all())
    for shift in (tx, ty):
        counts = torch.bincount(shift + 2, minlength=5)
        assert counts.numel() == 5  # nothing beyond ±2
        assert bool((counts > 0).all())
        assert bool(((counts.float() - n / 5).abs() < 0.1 * n / 5).all()), counts
    assert abs(float(torch.corrcoef(torch.stack([tx, ty]).float())[0, 1])) < 0.05  # axes drawn independently


def test_translation_range_rounds_like_the_reference():
    x = torch.zeros(2000, 1, 12, 2)  # H: int(1.5 + 0.5) = 2; W: int(0.25 + 0.5) = 0 (no horizontal shift)
    x[:, 0, 6, 0] = 1.0
    out = diff_augment(x, "translation", seeded(5))
    rows, cols = out[:, 0].sum(2).argmax(1) - 6, out[:, 0].sum(1).argmax(1)
    assert set(rows.tolist()) == {-2, -1, 0, 1, 2}
    assert set(cols.tolist()) == {0}


# --- cutout -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("top, left, zeros", [
    (2, 3, 16),  # inside: the full 4 × 4 square
    (-2, -2, 4),  # clipped at the top-left corner: 2 × 2
    (6, 0, 8),  # clipped at the bottom: 2 × 4
    (0, 7, 4),  # clipped at the right: 4 × 1
    (4, 4, 16),  # touching the bottom-right corner
])
def test_cutout_zeros_exactly_the_clipped_square(top, left, zeros):
    x = torch.ones(1, 3, 8, 8)
    out = _cutout(x, torch.tensor([top]), torch.tensor([left]), 4, 4)
    expected = torch.ones(8, 8)
    expected[max(top, 0):max(top + 4, 0), max(left, 0):max(left + 4, 0)] = 0
    for c in range(3):  # every channel, same place
        torch.testing.assert_close(out[0, c], expected)
    assert int((out[0, 0] == 0).sum()) == zeros


def test_random_cutout_is_a_half_size_square_clipped_at_the_border():
    n, h = 4000, 8
    out = diff_augment(torch.ones(n, 3, h, h), "cutout", seeded(6))
    assert bool((out[:, 0] == out[:, 2]).all())
    zero = out[:, 0] == 0
    rows, cols = zero.any(2), zero.any(1)  # (N, H), (N, W) rows / columns touched
    n_rows, n_cols = rows.sum(1), cols.sum(1)
    assert bool((zero.sum((1, 2)) == n_rows * n_cols).all())  # a full rectangle
    for touched in (rows, cols):  # contiguous: last - first + 1 = count
        idx = torch.arange(h).expand(n, h)
        first = torch.where(touched, idx, h).min(1).values
        last = torch.where(touched, idx, -1).max(1).values
        assert bool((last - first + 1 == touched.sum(1)).all())
    # side 4, centre uniform on {0..8}, top = centre - 2: 2, 3 or 4 rows; 4 in 5 of 9 positions per axis
    for count in (n_rows, n_cols):
        assert set(count.tolist()) == {2, 3, 4}
        assert abs(float((count == 4).float().mean()) - 5 / 9) < 0.03
    assert bool((out[~zero.unsqueeze(1).expand_as(out)] == 1).all())


def test_cutout_on_odd_sizes_uses_rounded_sides():
    out = diff_augment(torch.ones(500, 1, 7, 5), "cutout", seeded(7))  # sides int(3.5+.5)=4, int(2.5+.5)=3
    zero = out[:, 0] == 0
    assert int(zero.any(2).sum(1).max()) == 4 and int(zero.any(1).sum(1).max()) == 3
    assert int(zero.any(2).sum(1).min()) >= 2 and int(zero.any(1).sum(1).min()) >= 2


# --- colour -------------------------------------------------------------------------------------------------------

def test_color_helpers_match_closed_forms():
    # one sample, 3 channels, 1 × 2 pixels: pixel 0 = (0, .3, .6) with channel mean .3; pixel 1 = (1, -1, 0), mean 0
    x = torch.tensor([[[[0.0, 1.0]], [[0.3, -1.0]], [[0.6, 0.0]]]])
    torch.testing.assert_close(_brightness(x, torch.tensor([0.25])), x + 0.25)
    sat2 = torch.tensor([[[[-0.3, 2.0]], [[0.3, -2.0]], [[0.9, 0.0]]]])  # .3 + (x - .3)·2 and 0 + x·2
    torch.testing.assert_close(_saturation(x, torch.tensor([2.0])), sat2)
    grey = torch.tensor([[[[0.3, 0.0]], [[0.3, 0.0]], [[0.3, 0.0]]]])  # s = 0: every channel its mean
    torch.testing.assert_close(_saturation(x, torch.tensor([0.0])), grey)
    m = 0.15  # mean over (C, H, W) = 0.9 / 6
    torch.testing.assert_close(_contrast(x, torch.tensor([0.5])), m + (x - m) * 0.5)
    torch.testing.assert_close(_contrast(x, torch.tensor([0.0])), torch.full_like(x, m))
    # per sample: a second sample with its own factor
    two = torch.cat([x, -x])
    out = _contrast(two, torch.tensor([0.5, 1.5]))
    torch.testing.assert_close(out[1], (-m + (-x - -m) * 1.5)[0])
    gray1 = torch.randn(2, 1, 3, 3)
    torch.testing.assert_close(_saturation(gray1, torch.tensor([0.2, 1.7])), gray1)  # one channel: identity


def test_random_color_draws_b_s_c_from_their_ranges_in_order():
    torch.manual_seed(2)
    x = torch.rand(6, 3, 4, 4) * 2 - 1
    out = diff_augment(x, "color", seeded(8))
    g = seeded(8)
    b, s, c = torch.rand(6, generator=g) - 0.5, torch.rand(6, generator=g) * 2, torch.rand(6, generator=g) + 0.5
    torch.testing.assert_close(out, _contrast(_saturation(_brightness(x, b), s), c))


def test_random_brightness_is_uniform_on_minus_half_to_half():
    x = torch.full((5000, 3, 2, 2), 0.2)  # constant image: saturation and contrast leave it alone
    out = diff_augment(x, "color", seeded(9))
    b = out[:, 0, 0, 0] - 0.2
    torch.testing.assert_close(out, (0.2 + b).view(-1, 1, 1, 1).expand_as(out))
    assert float(b.min()) >= -0.5 and float(b.max()) <= 0.5
    assert float(b.min()) < -0.49 and float(b.max()) > 0.49
    assert abs(float(b.mean())) < 0.02 and abs(float(b.var()) - 1 / 12) < 0.005


# --- the policy as a whole ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("policy", ["color", "translation", "cutout", FULL, "cutout,translation"])
def test_gradients_flow_to_the_input_and_to_a_generator(policy):
    x = torch.randn(4, 3, 8, 8, requires_grad=True)
    diff_augment(x, policy, seeded(10)).sum().backward()
    assert x.grad is not None and bool(x.grad.abs().sum() > 0)
    g = nn.Sequential(nn.Linear(5, 3 * 8 * 8), nn.Tanh(), nn.Unflatten(1, (3, 8, 8)))
    fake = g(torch.randn(4, 5))
    (diff_augment(fake, policy, seeded(11)) ** 2).sum().backward()
    assert all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in g.parameters())


def test_cutout_and_translation_gradients_are_the_masks():
    x = torch.randn(2, 1, 8, 8, requires_grad=True)
    _cutout(x, torch.tensor([0, 4]), torch.tensor([0, 4]), 4, 4).sum().backward()
    expected = torch.ones(2, 1, 8, 8)
    expected[0, :, :4, :4] = 0
    expected[1, :, 4:, 4:] = 0
    torch.testing.assert_close(x.grad, expected)
    y = torch.randn(1, 1, 4, 4, requires_grad=True)
    _translate(y, torch.tensor([1]), torch.tensor([0])).sum().backward()
    torch.testing.assert_close(y.grad[0, 0, :, :3], torch.ones(4, 3))  # the last column was shifted out
    torch.testing.assert_close(y.grad[0, 0, :, 3], torch.zeros(4))


def test_reproducible_with_a_seeded_generator_and_different_across_samples():
    torch.manual_seed(3)
    x = torch.rand(1, 3, 16, 16).mul(2).sub(1).repeat(8, 1, 1, 1)  # eight copies of one image
    a, b = diff_augment(x, FULL, seeded(12)), diff_augment(x, FULL, seeded(12))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, diff_augment(x, FULL, seeded(13)))
    for i in range(8):
        for j in range(i):
            assert not torch.equal(a[i], a[j])
    torch.manual_seed(5)  # no generator: the global RNG, reproducible through torch.manual_seed
    c = diff_augment(x, FULL)
    torch.manual_seed(5)
    torch.testing.assert_close(diff_augment(x, FULL), c, rtol=0, atol=0)


def test_policy_order_is_respected():
    torch.manual_seed(4)
    x = torch.rand(4, 3, 8, 8)
    first, second = diff_augment(x, "color,cutout", seeded(14)), diff_augment(x, "cutout,color", seeded(14))
    assert not torch.allclose(first, second)  # colour after cutout shifts the zeroed square away from 0
    g = seeded(14)
    b, s, c = torch.rand(4, generator=g) - 0.5, torch.rand(4, generator=g) * 2, torch.rand(4, generator=g) + 0.5
    after_color = _contrast(_saturation(_brightness(x, b), s), c)
    cy, cx = torch.randint(0, 9, (4,), generator=g), torch.randint(0, 9, (4,), generator=g)
    torch.testing.assert_close(first, _cutout(after_color, cy - 2, cx - 2, 4, 4))


@pytest.mark.parametrize("channels, h, w", [(1, 2, 2), (3, 2, 5), (1, 28, 28), (3, 9, 4)])
def test_shapes_channels_and_small_images(channels, h, w):
    x = torch.rand(3, channels, h, w) * 2 - 1
    out = diff_augment(x, FULL, seeded(15))
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device


def test_dtype_is_preserved_for_bf16_and_under_autocast():
    x = (torch.rand(4, 3, 8, 8) * 2 - 1).to(torch.bfloat16).requires_grad_()
    out = diff_augment(x, FULL, seeded(16))
    assert out.dtype == torch.bfloat16
    out.float().sum().backward()
    assert x.grad is not None and x.grad.dtype == torch.bfloat16
    y = torch.rand(4, 3, 8, 8) * 2 - 1
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert diff_augment(y, FULL, seeded(16)).dtype == y.dtype
        conv = nn.Conv2d(3, 3, 3, padding=1)(y)  # an autocast op produces bf16; diffaug keeps it
        assert conv.dtype == torch.bfloat16
        assert diff_augment(conv, FULL, seeded(16)).dtype == torch.bfloat16
