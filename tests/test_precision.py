"""bf16 mixed precision for every loss and penalty, channels_last, and torch.compile of G, on the CPU."""

from __future__ import annotations

import math

import pytest
import torch

from gan_lab.compose import build_components, build_system
from gan_lab.errors import ConfigError
from gan_lab.regularizers.base import Judged
from gan_lab.train import train
from tests.conftest import compose_cfg, group_options

IMAGES = ["dataset=digits", "model.width=8", "logger=none", "train.iterations=3"]
LOSSES = [[f"loss={name}"] for name in group_options("loss")] + [
    ["loss=fgan", f"loss.divergence={d}"] for d in ("kl", "rkl", "pearson", "hellinger", "js_pi")]
PENALTIES = [["loss=wasserstein", "regularizer=gp"], ["loss=ns", "regularizer=r1"], ["loss=hinge", "regularizer=sn"],
             ["loss=wasserstein", "regularizer=clip"]]


@pytest.mark.parametrize("overrides", LOSSES + PENALTIES, ids=lambda o: "-".join(x.split("=")[1] for x in o))
def test_bf16_mixed_trains_every_loss_and_penalty(overrides, tiny, tmp_path):
    summary = train(tiny(*IMAGES, *overrides, "trainer.precision=bf16-mixed"), tmp_path)
    assert summary["iterations"] == 3
    finals = summary["metrics"]
    for key in ("train/d_loss", "train/g_loss", "train/grad_norm_d", "train/grad_norm_g"):
        assert math.isfinite(finals[key]), (key, finals)
    if "regularizer=gp" in overrides or "regularizer=r1" in overrides:
        assert math.isfinite(finals["train/d_penalty"]) and finals["train/d_penalty"] >= 0


def test_penalty_under_bf16_autocast_is_computed_in_fp32():
    """The double backward runs in fp32 whatever the autocast: the penalty matches the fp32 value."""
    cfg = compose_cfg(*IMAGES, "loss=wasserstein", "regularizer=gp")
    c = build_components(cfg)
    system = build_system(cfg, c)
    g = torch.Generator().manual_seed(0)
    real, fake = torch.rand(16, 1, 8, 8, generator=g) * 2 - 1, torch.rand(16, 1, 8, 8, generator=g) * 2 - 1
    torch.manual_seed(1)
    exact = system.regularizer.penalty(Judged.of(system.discriminator, real, fake, 0))
    torch.manual_seed(1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = system.regularizer.penalty(Judged.of(system.discriminator, real, fake, 0))
    assert mixed.dtype == torch.float32
    torch.testing.assert_close(mixed, exact, rtol=1e-5, atol=1e-6)


def test_channels_last_is_used_and_gives_the_same_first_steps(tiny, tmp_path):
    cfg = compose_cfg(*IMAGES, "train.channels_last=true")
    system = build_system(cfg, build_components(cfg))
    convs = [m for m in system.modules() if isinstance(m, torch.nn.Conv2d) and m.weight.dim() == 4]
    assert convs and all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)
    a = train(tiny(*IMAGES, "train.channels_last=true"), tmp_path / "a")
    b = train(tiny(*IMAGES), tmp_path / "b")
    for key in ("train/d_loss", "train/g_loss"):  # a layout, not a different computation
        assert a["metrics"][key] == pytest.approx(b["metrics"][key], rel=1e-3, abs=1e-4)


def test_speed_options_are_booleans(tmp_path):
    with pytest.raises(ConfigError, match="train.channels_last"):
        train(compose_cfg(*IMAGES, "train.channels_last=3"), tmp_path)


@pytest.mark.slow
def test_compiled_generator_trains_and_keeps_parameter_names(tiny, tmp_path):
    cfg = tiny(*IMAGES, "train.compile_generator=true")
    system = build_system(cfg, build_components(cfg))
    assert not any("_orig_mod" in k for k in system.state_dict())
    summary = train(cfg, tmp_path)
    assert summary["iterations"] == 3 and math.isfinite(summary["metrics"]["train/g_loss"])


class GMoves:
    """A callback (built by _target_) that records, per run, the fraction of G's weight tensors (convolutions and
    linear maps: the tensors autocast casts) that changed."""

    moved: list[float] = []

    def __new__(cls):
        import lightning as L

        class _GMoves(L.Callback):
            def on_train_start(self, trainer, module):
                self.before = [p.detach().clone() for p in module.generator.parameters() if p.dim() > 1]

            def on_train_end(self, trainer, module):
                after = [p for p in module.generator.parameters() if p.dim() > 1]
                changed = sum(not torch.equal(a, b) for a, b in zip(self.before, after))
                GMoves.moved.append(changed / len(after))

        return _GMoves()


@pytest.mark.parametrize("system", [[], ["model=lapgan", "model.hidden=16"], ["mixture.generators=2"]],
                         ids=["gan", "lapgan", "mixture"])
def test_every_generator_weight_moves_under_bf16_autocast(system, tiny, tmp_path):
    """Each D step makes G's fakes without gradients inside the same autocast region as G's update: no weight cast
    made there (no autograd history) may reach G's update, whatever the torch version's cache does."""
    GMoves.moved.clear()
    summary = train(tiny(*IMAGES, *system, "trainer.precision=bf16-mixed",
                         f"+callbacks.moves._target_={__name__}.GMoves"), tmp_path)
    assert summary["status"] == "finished" and GMoves.moved == [1.0]
    assert summary["metrics"]["train/grad_norm_g"] > 0


SG2 = ["experiment=stylegan2_small", "dataset=digits", "model.z_dim=16", "model.w_dim=16", "model.mapping_layers=2",
       "model.channel_max=16"]
MODERN = {"stylegan2": SG2, "stylegan2_conditional": [*SG2, "model.conditional=projection"],
          "r3gan": ["experiment=r3gan", "dataset=digits", "model.widths=[16]", "model.group_size=8", "model.blocks=1",
                    "train.batch_size=8"]}


@pytest.mark.parametrize("name", MODERN)
def test_bf16_mixed_trains_the_modern_networks(name, tiny, tmp_path):
    """StyleGAN2 (lazy R1, path length, ADA, EMA, style mixing) and R3GAN (R1 + R2, schedules) under autocast, with
    the default config's evaluation, logging and checkpoints on."""
    from tests.test_parts import EVAL_ON

    summary = train(tiny(*MODERN[name], *EVAL_ON, "train.iterations=4", "train.checkpoint_every=2",
                         "trainer.precision=bf16-mixed"), tmp_path)
    assert summary["status"] == "finished" and summary["iterations"] == 4
    for key in ("train/d_loss", "train/g_loss", "train/grad_norm_d", "train/grad_norm_g"):
        assert math.isfinite(summary["metrics"][key]) and summary["metrics"].get(key) is not None, key
    assert summary["metrics"]["train/grad_norm_g"] > 0
    assert any(k.startswith("val/fid_") and math.isfinite(v) for k, v in summary["metrics"].items())
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()


def test_stylegan2_keeps_w_demodulation_and_mbstd_in_float32_under_autocast():
    """As the reference: the mapping (w, w̄, truncation), the demodulation coefficients and the minibatch standard
    deviation are computed in float32 whatever the autocast, so they equal the float32 values exactly."""
    cfg = compose_cfg(*SG2)
    system = build_system(cfg, build_components(cfg)).eval()
    g, d = system.generator, system.discriminator
    z = torch.randn(4, 16, generator=torch.Generator().manual_seed(0))
    layer = g.synthesis.b8.conv1
    x, styles = torch.randn(4, layer.weight.shape[1], 8, 8), torch.rand(4, layer.weight.shape[1]) * 40
    from gan_lab.nets.stylegan_ops import modulated_conv2d
    exact = [g.mapping(z), g.mapping(z, psi=0.5), modulated_conv2d(x, layer.weight, styles, fused=False, padding=1)]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = [g.mapping(z), g.mapping(z, psi=0.5)]
    with torch.autocast("cpu", dtype=torch.float16):  # Σ s²·Σ w² ≈ 16·1600·9 here: past fp16's 65,504
        mixed.append(modulated_conv2d(x, layer.weight, styles, fused=False, padding=1))
    for a, b in zip(exact[:2], mixed[:2]):
        assert b.dtype == torch.float32 and torch.equal(a, b)
    # the convolution itself runs in fp16; the coefficients add no overflow and no error of their own
    assert mixed[2].dtype == torch.float16 and exact[2].abs().mean() > 0.1
    torch.testing.assert_close(mixed[2].float(), exact[2], rtol=0.02, atol=0.02)
    mbstd = next(m for m in d.modules() if type(m).__name__ == "MinibatchStd")
    h = torch.randn(4, 16, 4, 4)
    h[:, :, 0, 0] = 1.0  # a feature with zero variance: sqrt(0 + 1e-8), finite
    out = mbstd(h.bfloat16())
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out[:, 16:].float(), mbstd(h)[:, 16:], rtol=1e-2, atol=1e-3)


# ---------------------------------------------------------------- fp16's loss scale (16-mixed: GPU runs only)

def test_logged_gradient_norms_are_unscaled_and_an_overflowed_step_adds_none():
    """Under 16-mixed the gradients carry the loss scale until the step unscales them: the logged norm is the
    optimiser's, and a step the scaler skips (overflow) adds no norm, only train/loss_scale (no false divergence)."""
    from gan_lab.systems.runner import Runner
    from gan_lab.systems.statistics import grad_norm

    net = torch.nn.Linear(3, 2)
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    net(x).square().sum().backward()
    exact = grad_norm(net)
    runner = Runner()
    assert runner.unscaled({"grad_norm_d": exact}) == {"grad_norm_d": exact}  # no scaler: untouched
    runner.scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    net.zero_grad()
    runner.scaler.scale(net(x).square().sum()).backward()
    logged = runner.unscaled({"grad_norm_d": grad_norm(net)})
    assert logged["loss_scale"].item() == 1024.0
    torch.testing.assert_close(logged["grad_norm_d"], exact, rtol=1e-6, atol=0)
    assert runner.unscaled({"grad_norm_d": torch.tensor(float("inf"))}) == {"loss_scale": logged["loss_scale"]}


def test_resume_restores_the_loss_scale():
    """A resumed 16-mixed run goes on at the scale and growth count its checkpoint saved (Lightning keeps the
    precision plugin's state under its class name), not at a fresh scaler's 65,536."""
    from lightning.pytorch.plugins.precision import MixedPrecision

    from gan_lab.systems.gan import restore_precision

    saved = MixedPrecision("16-mixed", "cpu")
    saved.scaler.scale(torch.ones(()))  # the scaler's first use, then a scale it backed off to
    saved.scaler.update(new_scale=128.0)
    state = {"MixedPrecision": saved.state_dict()}
    fresh = MixedPrecision("16-mixed", "cpu")
    assert fresh.scaler.get_scale() == 65536.0
    restore_precision(fresh, state)
    assert fresh.scaler.get_scale() == 128.0 and fresh.state_dict() == saved.state_dict()
    restore_precision(MixedPrecision("bf16-mixed", "cpu"), {})  # nothing saved, nothing to restore
