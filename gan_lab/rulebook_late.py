"""The rulebook's later entries (gan_lab/rulebook.py holds the rest and imports these after its own, so the order
of the rules is the rulebook's): the post-hoc samplers, the networks once built, and every reason a step stays eager
under CUDA graphs."""

from __future__ import annotations

import re

import torch

from gan_lab.errors import ConfigError
from gan_lab.rules import Setup, eager_rule, rule

HALF_TRUE = ("16-true", "bf16-true")  # weights in half precision


# ---------------------------------------------------------------- the post-hoc samplers (eval.drs, eval.jbt)

def _drs(s: Setup) -> str | None:
    """Why DRS cannot judge this run's samples one by one: it needs one D judging one sample."""
    if s.system.many_critics:
        return s.system.many_critics
    if s.conditional != "none":
        return "a class-conditional D judges (sample, label) pairs"
    if s.tricks.pack > 1:
        return f"with tricks.pack={s.tricks.pack} D judges packs of {s.tricks.pack} samples, not one sample"
    if s.trick("minibatch_discrimination"):
        return "with tricks.minibatch_discrimination D's logit of a sample depends on the rest of its batch"
    return None


def _jbt(s: Setup) -> str | None:
    """Why JBT cannot truncate this run's samples: it needs one G of a latent z alone, in fp32."""
    precision = str(s.settings.trainer.precision)
    if s.system.not_z_alone:
        return s.system.not_z_alone
    if s.conditional != "none":
        return "a class-conditional G draws (sample, label) pairs"
    if precision in HALF_TRUE:
        return (f"with trainer.precision={precision} G's weights are half precision, too coarse for its finite "
                "differences (a -mixed precision keeps them fp32)")
    return None


@rule("eval.best naming a metric the in-training measurement does not report",
      ("eval.best=val/fid_5k_mnist5k_classifier",), "eval.best")
def _best_followed(s: Setup):
    """eval.best follows the in-training measurement: it needs one (eval.every > 0), and a named metric must carry
    that measurement's sample count (eval.every_samples) in its name, as val/fid_1k_… for 1,000."""
    ev = s.settings.eval
    if ev.best in (None, "auto"):
        return None
    if not ev.every:
        return ConfigError("eval.best", ev.best, "auto or null with eval.every=0", "eval.best follows the "
                           "in-training measurement: set eval.every (e.g. 500) to measure during training")
    from gan_lab.metrics.features import n_tag

    tag = re.search(r"_(\d+k?)_", ev.best)
    if tag and tag.group(1) != n_tag(ev.every_samples):
        return ConfigError("eval.best", ev.best, f"a metric of the in-training measurement, on eval.every_samples="
                           f"{ev.every_samples} samples (..._{n_tag(ev.every_samples)}_...)")
    return None


SAMPLERS = {"drs": ("eval.drs.enabled", "Discriminator rejection sampling", _drs),
            "jbt": ("eval.jbt.enabled", "Jacobian-based truncation", _jbt)}


def sampler_refusal(s: Setup, name: str) -> ConfigError | None:
    """The refusal of the post-hoc sampler ``name`` (drs, jbt) for this run's samples, or None (asked when a run
    enables one, and by ``python -m gan_lab.evaluate drs=true`` of a finished run)."""
    key, title, why = SAMPLERS[name]
    reason = why(s)
    return ConfigError(key, True, "false for this run", f"{title}: {reason}.") if reason else None


@rule("DRS with a step of many discriminators, packs or batch features",
      ("model=lapgan", "dataset=digits", "eval.drs.enabled=true"), "eval.drs.enabled")
def _drs_rule(s: Setup):
    return _sampler_rule(s, "drs")


@rule("JBT with a G of more than z, or half-precision weights", ("model.conditional=concat", "eval.jbt.enabled=true"),
      "eval.jbt.enabled")
def _jbt_rule(s: Setup):
    return _sampler_rule(s, "jbt")


def _sampler_rule(s: Setup, name: str) -> ConfigError | None:
    return sampler_refusal(s, name) if getattr(s.settings.eval, name).enabled else None


@rule("a post-hoc sampler in a multi-process run", ("accelerator=ddp_cpu", "eval.drs.enabled=true"),
      "eval.drs.enabled")
def _samplers_one_process(s: Setup):
    chosen = [name for name in SAMPLERS if getattr(s.settings.eval, name).enabled]
    if chosen and s.processes > 1:
        flags = " ".join(f"{name}=true" for name in chosen)
        return ConfigError(SAMPLERS[chosen[0]][0], True, f"false with {s.processes} processes",
                           f"the sample filters measure in one process: run python -m gan_lab.evaluate "
                           f"run=<run folder> {flags} after the run.")


# ---------------------------------------------------------------- the networks, once built

@rule("virtual batch norm with a G without batch norms",
      ("model=mlp", "dataset=ring", "tricks.virtual_batchnorm=true"), "tricks.virtual_batchnorm", "networks")
def _vbn_norms(s: Setup):
    norms = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)
    if s.trick("virtual_batchnorm") and not any(isinstance(m, norms) for m in s.generator.modules()):
        return ConfigError("tricks.virtual_batchnorm", True, "false for a generator without batch norm",
                           "With model=mlp set model.g_norm=batch to give G batch-norm layers to virtualise.")


@rule("projection conditioning with a G without batch norms",
      ("model=mlp", "dataset=digits", "model.conditional=projection"), "model.conditional", "networks")
def _projection_norms(s: Setup):
    if s.conditional == "projection" and getattr(s.generator, "norms", None) == 0:
        return ConfigError("model.conditional", "projection", "concat or acgan with this generator (or "
                                                              "model.g_norm=batch)",
                           "projection conditions G's batch norms on the class; this G has none.")


# ---------------------------------------------------------------- what keeps the step from CUDA graphs
# (name, overrides whose step stays eager, the system -> why it stays eager or nothing)
_EAGER = [
    ("a system with its own step", ("model=progressive",),
     lambda s: not s.caps.capturable and f"the {type(s).__name__} system runs its own step"),
    ("several processes", ("accelerator=ddp_cpu",),
     lambda s: s.trainer.world_size > 1 and "multi-process runs stay eager (DDP's gradient all-reduce is not "
                                            "captured here)"),
    ("class labels", ("dataset=digits", "model.width=8", "model.conditional=concat"),
     lambda s: s.conditional != "none" and f"model.conditional={s.conditional}: the labelled step is not captured "
                                           "(yet)"),
    ("simultaneous updates", ("train.simultaneous=true",),
     lambda s: s.schedule.simultaneous and "train.simultaneous=true: G's update holds its gradient across D's "
                                           "updates (they would be captured inside G's graph)"),
    ("a schedule", ("optimizer.lr_decay=linear",),
     lambda s: bool(s.clock.schedules) and f"{', '.join(x.key for x in s.clock.schedules.schedules)} change every "
                                          "iteration (schedules, optimizer.lr_decay; a captured update would replay "
                                          "the first one's)"),
    ("a regularizer deciding on the host", ("regularizer=r1", "regularizer.every=4"),
     lambda s: s.regularizer.caps.capture_blocker),
    ("a trick deciding on the host", ("tricks.historical_averaging=0.1",),
     lambda s: "; ".join(f"{p.option()}: {p.caps.capture_blocker}" for p in s.tricks.parts if p.caps.capture_blocker)),
]
for _name, _example, _check in _EAGER:
    eager_rule(_name, _example)(_check)
