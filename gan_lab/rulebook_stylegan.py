"""The rulebook's entries for StyleGAN2-ADA's training parts (gan_lab/rulebook.py imports them after its own and
gan_lab/rulebook_late.py's, so they come last in the table): the EMA's half-life, path-length regularization, and
the regularizers that act by wrapping D's layers."""

from __future__ import annotations

from gan_lab.errors import ConfigError
from gan_lab.rules import Setup, rule

SMALL_STYLEGAN2 = ("model=stylegan2", "dataset=digits", "model.z_dim=32", "model.w_dim=32", "model.mapping_layers=2",
                   "model.channel_max=32")


# ---------------------------------------------------------------- the parts

@rule("the EMA's decay and its half-life together", ("dataset=digits", "tricks.ema=0.999", "tricks.ema_kimg=10"),
      "tricks.ema_kimg")
def _ema_decay_or_half_life(s: Setup):
    ema, kimg = s.tricks.ema, s.tricks.ema_kimg
    if ema and kimg:
        return ConfigError("tricks.ema_kimg", kimg, f"0 with tricks.ema={ema}",
                           "tricks.ema fixes β per G update, tricks.ema_kimg derives it from a half-life in images: "
                           "set one of them (tricks.ema=0 to use the half-life).")


@rule("the EMA's ramp-up without a half-life", ("dataset=digits", "tricks.ema=0.999", "tricks.ema_rampup=0.05"),
      "tricks.ema_rampup")
def _ema_rampup(s: Setup):
    rampup = s.tricks.ema_rampup
    if rampup is not None and not s.tricks.ema_kimg:
        return ConfigError("tricks.ema_rampup", rampup, "null with tricks.ema_kimg=0",
                           "the ramp-up caps the half-life in images (tricks.ema_kimg), which this run does not set.")


@rule("multipliers for ADA's bgc pipeline on a run that does not run it",
      ("dataset=digits", "tricks.diffaug=translation", "tricks.ada_strengths={cutout:1}"), "tricks.ada_strengths")
def _strengths_without_bgc(s: Setup):
    part = s.trick("diffaug")
    if s.tricks.ada_strengths and not (part and part.gated and part.pipeline == "bgc"):
        return ConfigError("tricks.ada_strengths", s.tricks.ada_strengths, "null on this run, or with "
                           "tricks.ada_target or tricks.augment_p gating the bgc pipeline",
                           "the multipliers scale the probabilities of ADA's bgc pipeline, which this run does not "
                           "use (tricks.diffaug's transforms have none).")


@rule("mirrored copies of a set that is not a finite set of images", ("model=mlp", "dataset=ring", "train.mirror=true"),
      "train.mirror")
def _mirror_images(s: Setup):
    if s.settings.train.mirror and not (s.spec.is_image and s.source.size is not None):
        what = "a law sampled afresh" if s.source.size is None else f"{s.spec.kind}, not images"
        return ConfigError("train.mirror", True, f"false with dataset={s.spec.name}",
                           f"a left-right flip mirrors the images of a finite set; dataset={s.spec.name} is {what}.")


# ---------------------------------------------------------------- the networks, once built

@rule("path-length regularization with a G without mapping and synthesis networks",
      ("dataset=digits", "model.width=8", "tricks.pl_weight=2"), "tricks.pl_weight", "networks")
def _path_length_generator(s: Setup):
    if not s.trick("path_length"):
        return None
    g = s.generator
    if not all(hasattr(g, name) for name in ("mapping", "styles", "synthesis")):
        system = "" if s.system_option in ("Algorithm 1", f"model={s.model}") else f", {s.system_option}"
        return ConfigError("tricks.pl_weight", s.tricks.pl_weight, f"0 with model={s.model}{system}",
                           "path-length regularization differentiates G's image with respect to its intermediate "
                           "latents w: it needs a G made of a mapping z → w and a synthesis w → image "
                           "(model=stylegan2, unconditional or model.conditional=projection).")


@rule("a regularizer that wraps D's layers, with a D that has none it wraps", (*SMALL_STYLEGAN2, "regularizer=sn"),
      "regularizer", "networks")
def _layers_to_wrap(s: Setup):
    if s.regularizer.caps.wraps_layers and not s.regularizer.layers(s.discriminator):
        return ConfigError("regularizer", s.regularizer.name, f"one that does not wrap D's layers with model={s.model}",
                           f"regularizer={s.regularizer.name} wraps torch's nn.Linear and nn.Conv layers; this D has "
                           "none (model=stylegan2's equalized-learning-rate layers scale a raw weight at run time), so "
                           "it would train unregularized. Use regularizer=r1 (StyleGAN2's).")


@rule("deterministic algorithms with ADA's bgc pipeline on a GPU",
      ("dataset=digits", "tricks.ada_target=0.6", "trainer.accelerator=gpu", "trainer.deterministic=true"),
      "trainer.deterministic")
def _deterministic_bgc_on_cuda(s: Setup):
    part = s.trick("diffaug")
    accelerator = s.settings.trainer.accelerator
    if s.settings.trainer.deterministic and accelerator in ("gpu", "cuda") and part and part.gated \
            and part.pipeline == "bgc":
        return ConfigError("trainer.deterministic", True, f"false with tricks.{part.switch} (ADA's bgc pipeline) on "
                           f"trainer.accelerator={accelerator}",
                           "the pipeline's grid_sample and reflection padding have no deterministic CUDA backward, "
                           "so PyTorch would stop the run at its first step; CPU runs repeat bit for bit either way.")


RUNNING_AVERAGES = {"ema": "G's EMA", "phema": "the post-hoc EMA's averages", "path_length": "the path-length mean",
                    "historical_averaging": "the historical average"}


@rule("half-precision weights with running averages",
      ("dataset=digits", "model.width=8", "tricks.ema=0.999", "trainer.precision=bf16-true"), "trainer.precision")
def _half_weights_with_averages(s: Setup):
    precision = str(s.settings.trainer.precision)
    if precision not in ("16-true", "bf16-true"):
        return None
    kept = [what for name, what in RUNNING_AVERAGES.items() if s.trick(name)]
    kept += ["ADA's p"] if s.tricks.ada_target else []
    kept += ["StyleGAN2's w_avg"] if s.model == "stylegan2" else []
    if kept:
        return ConfigError("trainer.precision", precision, f"32-true or bf16-mixed with {', '.join(kept)}",
                           f"{precision} keeps every weight and buffer in half precision, where a running average "
                           "moves by steps below the format's resolution and stops (ADA's p sticks at 0.125; an EMA "
                           "at β 0.999 stalls a quarter of the way to its target); bf16-mixed computes in bf16 and "
                           "keeps weights and state in float32.")
