"""Class-conditional GANs (gan_lab/nets/conditional.py, model.conditional): each mode on each architecture,
the formulas of projection, AC-GAN and conditional batch norm, labels held fixed in penalties, the label prior,
the metrics only a conditional generator has (class accuracy, intra-class FID, CAS), a short run that learns to
draw the class it is asked for with the default evaluation on, sampling by class, refusals, and DDP with labels.
"""

from __future__ import annotations

import json
import math

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gan_lab.compose import build_components, build_system
from gan_lab.data.base import DataSpec
from gan_lab.errors import ConfigError
from gan_lab.metrics.conditional import class_accuracy, frechet_distance, intra_fid
from gan_lab.nets.conditional import ConditionalBatchNorm, ConditionalDiscriminator, _Slot
from gan_lab.nets.mlp import MLPDiscriminator
from gan_lab.regularizers.base import Judged
from gan_lab.regularizers.gp import GradientPenalty
from gan_lab.regularizers.r1 import R1
from gan_lab.systems.conditioning import ClassConditional
from gan_lab.train import train
from tests.conftest import compose_cfg, interrupted_then_resumed, run_cli

ARCHITECTURES = {
    "mlp": ["model=mlp", "model.hidden=[32,32]", "model.g_norm=batch"],
    "dcgan": ["model=dcgan", "model.width=8"],
    "resnet": ["model=resnet", "model.g_width=16", "model.g_max_width=16", "model.d_width=16",
               "model.d_max_width=16"],
}
# the parameters only each mode has, which its training must move
CONDITIONING = {"concat": "discriminator.net.", "projection": "discriminator.embed.weight",
                "acgan": "discriminator.classifier.weight"}  # concat: the label inputs of D's first layer, below


def _state(run_dir) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


def _initial(cfg) -> dict[str, torch.Tensor]:
    L.seed_everything(cfg.seed, verbose=False)
    system = build_system(cfg, build_components(cfg))
    return {k: v.clone() for k, v in system.state_dict().items()}


# networks that condition on the class themselves (NATIVE_CONDITIONING): their own label parameters must learn
NATIVE = {
    "stylegan2": (["model=stylegan2", "model.channel_max=16", "model.channel_base=64", "model.w_dim=16",
                   "model.z_dim=16", "model.mapping_layers=2"], ("generator.mapping.embed.", "discriminator.mapping.")),
    "r3gan": (["model=r3gan", "model.widths=[16]", "model.group_size=8"], ("generator.embed.", "discriminator.embed.")),
}


@pytest.mark.parametrize("arch", sorted(NATIVE))
def test_native_projection_conditioning_trains_the_networks_own_label_parameters(arch, tmp_path):
    overrides, label_params = NATIVE[arch]
    cfg = compose_cfg("debug=tiny", "dataset=digits", *overrides, "model.conditional=projection", "eval.at_end=true",
                      "eval.samples=60")
    before = _initial(cfg)
    assert not any(k.startswith(("generator.net.", "discriminator.net.")) for k in before)  # not the lab's wrappers
    summary = train(cfg, tmp_path)
    assert summary["status"] == "finished"
    assert 0.0 <= summary["metrics"]["val/class_accuracy_60_digits_classifier"] <= 1.0
    after = _state(tmp_path)
    for prefix in label_params:
        keys = [k for k in before if k.startswith(prefix)]
        assert keys and any(not torch.equal(before[k], after[k]) for k in keys), prefix


@pytest.mark.parametrize("mode", sorted(CONDITIONING))
@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_every_mode_trains_every_architecture(arch, mode, tmp_path):
    cfg = compose_cfg("debug=tiny", "dataset=digits", *ARCHITECTURES[arch], f"model.conditional={mode}")
    before = _initial(cfg)
    summary = train(cfg, tmp_path)
    assert summary["status"] == "finished" and summary["iterations"] == 4
    after = _state(tmp_path)
    assert set(after) == set(before)
    moved = [k for k in before if k.startswith(CONDITIONING[mode]) and not torch.equal(before[k], after[k])]
    assert moved, f"no {CONDITIONING[mode]}* parameter changed"
    if mode == "projection":  # G's class-conditional batch norms learn a scale and shift per class
        gammas = [k for k in before if k.endswith("gamma.weight")]
        assert gammas and any(not torch.equal(before[k], after[k]) for k in gammas)
    if mode == "concat":  # D's first layer reads 1 image channel + 10 label channels
        name = next(k for k, v in after.items() if k.startswith("discriminator.net.") and v.dim() >= 2)
        first = after[name]
        assert first.shape[1] in (11, 11 * 64)  # conv: 11 channels; mlp: 11 planes of 8×8 flattened
        label_inputs = slice(1, None) if first.dim() == 4 else slice(64, None)  # after the image's channel/plane
        assert not torch.equal(before[name][:, label_inputs], first[:, label_inputs]), "D's label weights did not learn"
    if mode == "acgan":
        assert summary["metrics"]["train/d_aux"] > 0 and "train/g_aux" in summary["metrics"]


@pytest.mark.parametrize("parts", [
    ["model.conditional=acgan", "regularizer=[r1,r2]", "tricks.diffaug=[color,translation]", "train.k=2"],
    ["model.conditional=projection", "loss=wasserstein", "regularizer=gp", "tricks.instance_noise=0.1",
     "tricks.historical_averaging=0.01"],
    ["model.conditional=concat", "loss=ragan", "regularizer=[sn,lecam]", "tricks.ema=0.9"],
], ids=["acgan+r1r2+diffaug+k2", "projection+wgan_gp+noise+averaging", "concat+ragan+sn_lecam+ema"])
def test_losses_penalties_and_tricks_train_with_labels(parts, tmp_path):
    summary = train(compose_cfg("debug=tiny", "dataset=digits", "model.width=8", *parts), tmp_path)
    assert summary["status"] == "finished"
    assert all(math.isfinite(v) for k, v in summary["metrics"].items() if k.startswith("train/"))


def test_mix_gan_members_draw_and_judge_with_labels(tmp_path):
    """MIX+GAN with a projection D per member: every member's class embedding learns, samples keep their labels."""
    cfg = compose_cfg("debug=tiny", "dataset=digits", "model.width=8", "model.conditional=projection",
                      "mixture.generators=2", "mixture.discriminators=2", "eval.at_end=true", "eval.samples=60")
    before = _initial(cfg)
    summary = train(cfg, tmp_path)
    after = _state(tmp_path)
    for j in (0, 1):
        key = f"discriminator.members.{j}.embed.weight"
        assert not torch.equal(before[key], after[key]), key
    assert 0.0 <= summary["metrics"]["val/class_accuracy_60_digits_classifier"] <= 1.0


def test_projection_output_equals_its_formula():
    torch.manual_seed(0)
    spec = DataSpec("toy", (3,), "points")
    d = ConditionalDiscriminator(MLPDiscriminator((3,), [5], "none"), 4, "projection", spec)
    x, y = torch.randn(6, 3), torch.tensor([0, 1, 2, 3, 1, 0])
    phi = F.leaky_relu(x @ d.net.body[0].weight.T + d.net.body[0].bias, 0.2)
    psi = phi @ d.net.head.weight[0] + d.net.head.bias[0]
    expected = psi + (d.embed.weight[y] * phi).sum(1)
    torch.testing.assert_close(d(x, y), expected, rtol=1e-6, atol=1e-6)
    # only the class term depends on y: changing y moves the output by <embed(y') - embed(y), phi>
    y2 = (y + 1) % 4
    torch.testing.assert_close(d(x, y2) - d(x, y), ((d.embed.weight[y2] - d.embed.weight[y]) * phi).sum(1))


def test_acgan_aux_loss_is_the_weighted_cross_entropy():
    cfg = compose_cfg("debug=tiny", "dataset=digits", "model.width=8", "model.conditional=acgan",
                      "loss.aux_weight=0.5")
    system = build_system(cfg, build_components(cfg))
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [math.log(3.0), 0.0, 0.0, 0.0]])
    y = torch.tensor([2, 0])
    # sample 1: -log(1/4); sample 2: -log(3/6) = log 2; mean, times the weight
    expected = 0.5 * (math.log(4.0) + math.log(2.0)) / 2
    aux, stats = system.conditioning.g_class_terms(logits, y, system.loss.aux_weight)
    assert aux.item() == pytest.approx(expected, rel=1e-6, abs=1e-7) and stats == {"g_aux": aux}
    assert system.conditioning.g_class_terms(None, y, system.loss.aux_weight) == (None, {})  # concat, projection
    d_aux, d_stats = system.conditioning.d_class_terms(logits, y, logits, y, system.loss.aux_weight)
    torch.testing.assert_close(d_aux, 2 * aux)  # D classifies the real and the generated images
    assert d_stats["d_class_accuracy_real"].item() == 0.5  # argmax: class 0 twice; right for sample 2 only


def test_conditional_batch_norm_normalises_over_the_batch_then_scales_per_class():
    torch.manual_seed(0)
    slot = _Slot()
    cbn = ConditionalBatchNorm(torch.nn.BatchNorm2d(3), 2, slot)
    with torch.no_grad():
        cbn.gamma.weight.copy_(torch.tensor([[2.0, 2.0, 2.0], [0.5, 0.5, 0.5]]))
        cbn.beta.weight.copy_(torch.tensor([[1.0, 1.0, 1.0], [-3.0, -3.0, -3.0]]))
    x = torch.randn(8, 3, 4, 4) * 5 + 7
    slot.y = torch.tensor([0, 1] * 4)
    out = cbn(x)
    xhat = (x - x.mean((0, 2, 3), keepdim=True)) / torch.sqrt(x.var((0, 2, 3), unbiased=False, keepdim=True) + 1e-5)
    for c, (g, b) in enumerate([(2.0, 1.0), (0.5, -3.0)]):
        torch.testing.assert_close(out[slot.y == c], g * xhat[slot.y == c] + b, rtol=1e-5, atol=1e-5)
    # the statistics are the whole batch's, shared by the classes: the running mean moved toward the batch mean
    assert torch.allclose(cbn.norm.running_mean, 0.1 * x.mean((0, 2, 3)), atol=1e-5)
    slot.y = None
    with pytest.raises(RuntimeError, match="without labels"):
        cbn(x)


def test_penalties_differentiate_with_respect_to_the_images_with_labels_held():
    torch.manual_seed(0)
    spec = DataSpec("toy", (2,), "points")
    d = ConditionalDiscriminator(MLPDiscriminator((4,), [8], "none"), 2, "concat", spec)
    real, fake = torch.randn(5, 2), torch.randn(5, 2)
    y_real, y_fake = torch.tensor([0, 1, 0, 1, 1]), torch.tensor([1, 1, 0, 0, 1])

    def grad_sq(x, y):
        x = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(d(x, y).sum(), x)
        return g.pow(2).sum(1)

    same = lambda x: x  # noqa: E731
    judged = Judged(real, fake, None, None, (real, same), (fake, same), 0, lambda x: d(x, y_real),
                    lambda x: d(x, y_fake))
    r1 = R1(weight=2.0).penalty(judged)
    assert r1.item() == pytest.approx((0.5 * 2.0 * grad_sq(real, y_real).mean()).item(), rel=1e-6)
    r2 = R1(weight=2.0)
    r2.on_fake = True
    assert r2.penalty(judged).item() == pytest.approx(
        grad_sq(fake, y_fake).mean().item(), rel=1e-6)
    torch.manual_seed(1)
    gp = GradientPenalty(weight=10.0).penalty(judged)
    torch.manual_seed(1)
    eps = torch.rand(5, 1)
    x_hat = eps * real + (1 - eps) * fake  # judged with the real batch's labels
    assert gp.item() == pytest.approx((10.0 * (grad_sq(x_hat, y_real).sqrt() - 1).pow(2).mean()).item(), rel=1e-5)


def test_fake_labels_follow_the_label_prior():
    cfg = compose_cfg("debug=tiny", "dataset=digits", "model.width=8", "model.conditional=concat",
                      "model.label_prior=data")
    c = build_components(cfg)
    system = build_system(cfg, c)
    freq = torch.bincount(c.source.labels, minlength=10).double() / len(c.source.labels)
    # digits is nearly balanced (every class within 0.004 of 0.1): check the prior handed over exactly...
    assert torch.equal(system.label_cdf, torch.cumsum(freq, 0).float())
    assert not torch.allclose(system.label_cdf, torch.arange(1, 11).float() / 10)
    # ...and that draws follow a prior far from uniform
    c.conditioning = ClassConditional("concat", 10, torch.arange(1.0, 11.0))
    skewed = build_system(cfg, c)
    torch.manual_seed(0)
    drawn = torch.bincount(skewed.conditioning.fake_labels(skewed, 40_000), minlength=10).double() / 40_000
    assert (drawn - torch.arange(1.0, 11.0).double() / 55).abs().max() < 0.01  # ≈ 4 standard errors
    c.conditioning = ClassConditional("concat", 10, torch.ones(10))
    uniform = build_system(cfg, c)
    labels = uniform.conditioning.eval_labels(uniform, 25, torch.Generator())
    assert labels.tolist() == [i % 10 for i in range(25)]  # every class in turn


def test_frechet_distance_matches_the_closed_form_of_two_gaussians():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(200_000, 2, generator=g, dtype=torch.float64)
    b = torch.randn(200_000, 2, generator=g, dtype=torch.float64) * torch.tensor([2.0, 1.0]) + torch.tensor([1.0, 0.0])
    # ‖μ_a − μ_b‖² + tr(I + diag(4, 1) − 2·diag(2, 1)) = 1 + (1 + 4 − 4) + (1 + 1 − 2) = 2
    assert frechet_distance(a, b) == pytest.approx(2.0, abs=0.03)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)


def test_class_accuracy_and_intra_fid_per_class():
    logits = torch.tensor([[5.0, 0.0], [5.0, 0.0], [0.0, 5.0], [5.0, 0.0]])
    acc, per = class_accuracy(logits, torch.tensor([0, 0, 1, 1]))
    assert acc == 0.75 and per == [1.0, 0.5]
    acc, per = class_accuracy(torch.eye(3)[[0, 0, 2]], torch.tensor([0, 1, 1]))  # class 2 never asked for
    assert acc == pytest.approx(1 / 3) and per[:2] == [1.0, 0.0] and math.isnan(per[2])
    g = torch.Generator().manual_seed(0)
    real = torch.randn(4000, 2, generator=g, dtype=torch.float64)
    real_labels = torch.arange(4000) % 2
    real[real_labels == 1] += 10.0
    fake = real.clone()
    fake[real_labels == 1] += torch.tensor([3.0, 0.0], dtype=torch.float64)  # class 1 drawn 3 off
    mean, per_class = intra_fid(real, real_labels, fake, real_labels, 2)
    assert per_class[0] == pytest.approx(0.0, abs=1e-9) and per_class[1] == pytest.approx(9.0, rel=1e-6)
    assert mean == pytest.approx(4.5, rel=1e-6)


SHORT = ["model.conditional=acgan", "model.width=32", "train.iterations=400", "train.log_every=25",
         "train.sample_every=200", "eval.every=200", "eval.every_samples=200", "eval.samples=500",
         "trainer.enable_progress_bar=false"]


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("acgan")
    return run_dir, train(compose_cfg(*SHORT), run_dir)


def test_a_short_acgan_run_on_mnist5k_draws_the_asked_class(short_run):
    """Seed 0, 400 iterations of a narrow DCGAN with the default evaluation, logging and checkpointing on: the
    mnist5k classifier puts 37 % of the samples in the class they were drawn for (chance: 10 %)."""
    run_dir, summary = short_run
    m = summary["metrics"]
    assert 0.25 <= m["val/class_accuracy_500_mnist5k_classifier"] <= 1.0
    assert 0.0 < m["val/intra_fid_500_mnist5k_classifier"] < 200
    assert 0.1 < m["val/cas_500_mnist5k_heldout500"] < m["val/cas_real_mnist5k_heldout500"]
    assert m["val/cas_real_mnist5k_heldout500"] > 0.9
    stored = json.loads((run_dir / "metrics.json").read_text())
    assert len(stored["per_class"]["val/intra_fid_500_mnist5k_classifier"]) == 10
    assert {"val/class_accuracy_500_mnist5k_classifier", "val/cas_500_mnist5k_heldout500",
            "val/cas_real_mnist5k_heldout500", "val/intra_fid_500_mnist5k_classifier"} <= set(stored["protocols"])
    rows = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows if "val/class_accuracy_200_mnist5k_classifier" in r] == [200, 400]
    assert np.load(run_dir / "samples_labels.npy").tolist()[:12] == [i % 10 for i in range(12)]
    # one row per class, ten columns: (10 × (28 + 2) + 2) × 3 pixels a side
    from PIL import Image

    assert Image.open(run_dir / "samples" / "final.png").size == (906, 906)
    assert "val/intra_fid_500_mnist5k_classifier" in (run_dir / "report.html").read_text()


def test_sampling_by_class(short_run, tmp_path, capsys):
    from gan_lab.sample import main

    run_dir, _ = short_run
    main([f"run={run_dir}", "n=30", "class=7", f"out={tmp_path / 'seven'}"])
    assert set(np.load(tmp_path / "seven" / "samples_labels.npy").tolist()) == {7}
    main([f"run={run_dir}", "n=40", "classes=all", "interpolate=true", "rows=3", "steps=4", f"out={tmp_path / 'all'}"])
    assert np.load(tmp_path / "all" / "samples_labels.npy").tolist()[:11] == [i % 10 for i in range(11)]
    assert (tmp_path / "all" / "interpolation_slerp.png").is_file()
    with pytest.raises(SystemExit) as exit_:
        main([f"run={run_dir}", "class=10"])
    assert exit_.value.code == 2 and "class=10 is not allowed" in capsys.readouterr().err


@pytest.mark.parametrize(("overrides", "key", "words"), [
    (["model=mlp", "dataset=ring"], "model.conditional", ["dataset=ring", "no class labels"]),
    (["model=lapgan"], "model.conditional", ["model=lapgan"]),
    (["mixture.generators=2", "model.conditional=acgan"], "model.conditional", ["mixture.generators"]),
    (["tricks.pack=2"], "tricks.pack", ["model.conditional=concat"]),
    (["tricks.feature_matching=true"], "tricks.feature_matching", ["model.conditional=concat"]),
    (["model=mlp", "model.conditional=projection"], "model.conditional", ["model.g_norm=batch"]),
], ids=["unlabelled", "lapgan", "mixture", "pack", "feature_matching", "projection_without_batch_norm"])
def test_combinations_that_make_no_sense_are_refused_naming_both_keys(overrides, key, words):
    cfg = compose_cfg("debug=tiny", "dataset=digits", "model.conditional=concat", *overrides)
    with pytest.raises(ConfigError) as err:
        build_components(cfg)
    assert err.value.key == key
    for word in words:
        assert word in str(err.value)


def test_aux_weight_belongs_to_acgan_and_sampling_a_class_needs_a_conditional_run(tmp_path, capsys):
    with pytest.raises(ConfigError, match="loss.aux_weight"):
        build_components(compose_cfg("debug=tiny", "model.conditional=concat", "loss.aux_weight=2"))
    with pytest.raises(ConfigError, match="model.conditional"):
        build_components(compose_cfg("debug=tiny", "model.conditional=cgan"))
    from gan_lab.sample import main

    run = tmp_path / "plain"
    train(compose_cfg("debug=tiny", "dataset=digits", "model.width=8"), run)
    with pytest.raises(SystemExit):
        main([f"run={run}", "class=3"])
    assert "class=3 is not allowed" in capsys.readouterr().err


def test_ddp_with_labels_as_the_readme_runs_it(tmp_path):
    """Two processes over gloo, AC-GAN with the default evaluation on: ranks draw their own labelled
    minibatches and end with the same weights; the class metrics are measured once, during and after."""
    proc = run_cli("model.conditional=acgan", "dataset=digits", "model.width=8", "trainer.devices=2",
                   "accelerator=ddp_cpu", "train.iterations=4", "train.log_every=2", "train.checkpoint_every=2",
                   "eval.every=2", "eval.every_samples=100", "eval.samples=200", "trainer.enable_progress_bar=false",
                   f"hydra.run.dir={tmp_path}/run", cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert summary["ddp"]["world_size"] == 2 and summary["ddp"]["in_sync"]
    assert 0.0 <= summary["metrics"]["val/class_accuracy_200_digits_classifier"] <= 1.0
    assert "val/intra_fid_200_digits_classifier" in summary["metrics"]


@pytest.mark.parametrize("arch", sorted(NATIVE))
def test_the_modern_nets_train_class_conditional_under_ddp_and_resume_exactly(arch, tmp_path):
    """StyleGAN2 and R3GAN with their own projection conditioning, two processes over gloo as the README runs DDP,
    the default evaluation, logging and checkpoints on: the ranks end in sync; a resumed run (interrupted after its
    first checkpoint) ends with the uninterrupted run's weights."""
    overrides, _ = NATIVE[arch]
    line = [*overrides, "dataset=digits", "model.conditional=projection", "trainer.devices=2", "accelerator=ddp_cpu",
            "train.batch_size=16", "train.iterations=4", "train.log_every=2", "train.checkpoint_every=2",
            "eval.every=2", "eval.every_samples=100", "eval.samples=200", "trainer.enable_progress_bar=false"]
    proc = run_cli(*line, f"hydra.run.dir={tmp_path}/run", cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert summary["ddp"]["world_size"] == 2 and summary["ddp"]["in_sync"]
    assert 0.0 <= summary["metrics"]["val/class_accuracy_200_digits_classifier"] <= 1.0
    # exact resume, in one process: stopped by Ctrl-C before iteration 3, continued from its checkpoint
    single = [a for a in line if not a.startswith(("trainer.devices", "accelerator"))] + ["logger=none"]
    reference = train(compose_cfg(*single), tmp_path / "reference")
    assert reference["iterations"] == 4
    interrupted_then_resumed(single, tmp_path / "resumed", at=3)
    a, b = _state(tmp_path / "reference"), _state(tmp_path / "resumed")
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a if isinstance(a[k], torch.Tensor))
