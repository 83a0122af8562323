"""What each kind of part can do, declared as data: the rulebook (gan_lab/rules.py) decides every "A is not
allowed with B" from these, never from names or types. Each part class carries one as ``caps``.

Nothing here imports the lab: systems, losses, regularizers, tricks, conditioning and the post-hoc samplers
import this module, and the rulebook reads what they declare.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The hooks a trick may act through (gan_lab/tricks/base.py), in the order of Algorithm 1's step.
HOOKS = ("networks", "attach", "d_input", "observe_d", "d_term", "after_d_step", "g_loss", "critic", "g_term",
         "after_g_step", "log_row")


@dataclass(frozen=True)
class SystemCaps:
    """What a system's training step does (gan_lab/systems)."""

    hooks: frozenset[str] = frozenset(HOOKS)  # the trick hooks its step runs
    summary: str = ""  # why it runs fewer hooks or judges otherwise, for refusals
    refused_tricks: tuple[tuple[str, str], ...] = ()  # (trick name, why) the step runs but cannot use
    one_critic: bool = True  # one D judging each sample once per update (stateful regularizers need it)
    many_critics: str = ""  # why no single D judges single samples ("" = one does; DRS needs it)
    not_z_alone: str = ""  # why G's sample is not a function of z alone ("" = it is; JBT needs it)
    real_logits_in_g: bool = True  # its G step gives g_loss D's outputs on real data when the loss asks
    capturable: bool = True  # train.cuda_graphs may capture its updates
    labels: bool = True  # model.conditional: its steps pass the labels
    acgan: str = ""  # why its step cannot train AC-GAN's class head ("" = it can)
    mixture: bool = True  # MIX+GAN may mix its networks (it is Algorithm 1's step)


@dataclass(frozen=True)
class LossCaps:
    """What an adversarial objective needs (gan_lab/losses)."""

    sigmoid_output: bool = False  # D's output read as a probability σ(v) rather than a raw critic score
    label_smoothing: bool = False  # one-sided label smoothing applies (the sigmoid-BCE objectives)
    g_needs_real: bool = False  # G's loss reads D's outputs on real data (the relativistic losses)


@dataclass(frozen=True)
class RegularizerCaps:
    """What a constraint or penalty on D needs (gan_lab/regularizers)."""

    preferred_d_norm: str = "batch"  # D's normalisation under model.d_norm=auto
    forbids_batch_norm: bool = False  # a per-sample penalty is meaningless through batch norm
    input_gradients: bool = False  # a penalty on ∇ₓD (a double backward): beyond an unrolled copy of D
    one_critic: bool = False  # keeps state about one D across updates (LeCam's anchors)
    images_only: bool = False  # augments images
    augments_per_sample: bool = False  # draws its own augmentation of each sample D judges (CR)
    capture_blocker: str = ""  # why its D update cannot be captured as a CUDA graph ("" = it can)
    wraps_layers: bool = False  # acts by wrapping D's layers of known kinds (SN): nothing without such a layer


@dataclass(frozen=True)
class TrickCaps:
    """What a technique of the step needs beyond its hooks (gan_lab/tricks)."""

    images_only: bool = False
    capture_blocker: str = ""  # why a step with it on cannot be captured ("" = it can)
    extra: dict = field(default_factory=dict)  # trick-specific facts a rule reads (e.g. the unrolled optimiser)
