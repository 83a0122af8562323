"""The one list of the lab's metric families: every number a run stores (metrics.json, history.jsonl) belongs to
exactly one family here, and every page, table and progress line that picks, orders or judges metrics asks this
module (:func:`lookup`, :func:`direction`, :func:`headline`, :func:`curve_groups`, :func:`band_of`,
:func:`progress_bar`) instead of keeping a list of its own.

A family's ``pattern`` is a glob (``fnmatch``) over the keys it stands for. Keys that carry their protocol
(``val/fid_5k_mnist5k_classifier``: metric, sample count, extractor) are built where they are computed; their
family is the metric's name followed by ``*``. Where a sibling family shares that prefix (``val/kid_*`` would
also match KID's std, ``val/kid_std_…``), the pattern asks for the sample count to follow: ``val/kid_[0-9]*``.

A post-hoc sampler (``gan_lab/filters.py``) measures the same families on its own samples under its prefix
(``drs/toy/modes_captured``): such a key belongs to the family of what follows the prefix.

A new metric is one :class:`Family` below plus the code that computes it.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum, Flag, auto


class Direction(Enum):
    LOWER = "lower is better"
    HIGHER = "higher is better"
    TARGET = "nearest its closed form is better"  # the classics: judged against a value, not an extreme
    NONE = "no better side"  # training statistics, references, spreads


class Stage(Enum):
    EVALUATION = "measured on generated samples"  # the end-of-run evaluation and the in-training one
    TRAINING = "logged while training"
    ANALYSIS = "an end-of-run analysis picture's number"
    SAMPLER = "a post-hoc sampler's own number"


class Report(Flag):
    """Which reports a family heads: the run page's first screen, the sweep page's plots (and the first columns
    of the sweep's and the comparison's tables)."""

    NONE = 0
    RUN = auto()
    SWEEP = auto()


def _is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


@dataclass(frozen=True)
class Family:
    pattern: str  # glob over the keys (module docstring)
    description: str  # what the number is, in one line
    direction: Direction
    computed_by: str  # the dotted path of what produces it, or a line naming the suite
    stage: Stage = Stage.EVALUATION
    rank: int | None = None  # its place among the families heading reports (lower first); None: heads none
    heads: Report = Report.NONE
    curve: str | None = None  # the panel of the training curves it is drawn in (CURVE titles)
    band: str | None = None  # the family of its standard deviation: shown as ± and drawn as a shaded band
    bar: str | None = None  # its short name in the progress bar and the progress lines

    def __post_init__(self) -> None:
        if (self.rank is None) != (self.heads == Report.NONE):
            raise ValueError(f"{self.pattern}: a family heading a report needs a rank, and only such a family")
        if self.curve is not None and _is_glob(self.pattern):
            raise ValueError(f"{self.pattern}: a curve is drawn for one series, not a pattern")


# The panels of the training curves (losses.png and the run page), in this order.
LOSSES, D_OUTPUTS, GRAD_NORMS = "losses", "D outputs", "gradient norms"
# The post-hoc samplers' prefixes (gan_lab/filters.py TITLES): each measures the evaluation families again.
SAMPLERS = ("drs", "jbt", "jbt_drs")

_SUITE = "gan_lab.metrics.features.ImageMetrics.from_features"  # FID/KID/IS/class coverage on one extractor
_PRDC = "gan_lab.metrics.neighbors.precision_recall_density_coverage"
_TOY = "gan_lab.metrics.toy.mode_metrics"
_ONE_D = "gan_lab.metrics.toy.toy_metrics"
_CONDITIONAL = "gan_lab.measure.conditional_metrics"
_MEMO = "gan_lab.measure.memorization"
_D_STEP, _G_STEP = "gan_lab.systems.gan.GAN.d_step", "gan_lab.systems.gan.GAN.update_generator"
_RUN, _SWEEP, _BOTH = Report.RUN, Report.SWEEP, Report.RUN | Report.SWEEP
L, H, T, N = Direction.LOWER, Direction.HIGHER, Direction.TARGET, Direction.NONE
TRAIN, ANALYSIS = Stage.TRAINING, Stage.ANALYSIS

FAMILIES: tuple[Family, ...] = (
    # ---- images: one feature extractor's suite, keys {metric}_{n}_{extractor}
    Family("val/fid_*", "Fréchet distance between the real and the generated images' features (FID)", L, _SUITE,
           rank=10, heads=_BOTH),
    Family("val/kid_[0-9]*", "kernel distance (KID, cubic polynomial kernel), mean over subsets", L, _SUITE,
           rank=20, heads=_RUN, band="val/kid_std_*"),
    Family("val/kid_std_*", "KID's standard deviation over its subsets", N, _SUITE),
    Family("val/is_[0-9]*", "Inception Score on the extractor's class logits, mean over splits", H, _SUITE,
           rank=30, heads=_RUN, band="val/is_std_*"),
    Family("val/is_std_*", "the Inception Score's standard deviation over its splits", N, _SUITE),
    Family("val/classes_covered_*", "classes the extractor predicts for at least one sample", H, _SUITE),
    Family("val/class_kl_*", "KL(histogram of the predicted classes ‖ uniform), nats", L, _SUITE),
    Family("val/stacked_modes_*", "Stacked MNIST: class triples some sample has, of 1,000", H,
           "gan_lab.metrics.stacked.PerChannel, read by " + _SUITE, rank=80, heads=_BOTH),
    Family("val/stacked_reverse_kl_*", "Stacked MNIST: KL(histogram of the samples' triples ‖ uniform), nats", L,
           "gan_lab.metrics.stacked.PerChannel, read by " + _SUITE, rank=90, heads=_SWEEP),
    # ---- class-conditional runs
    Family("val/class_accuracy_*", "share of samples G(z, y) the domain classifier assigns to y", H,
           "gan_lab.measure.class_accuracy_of", rank=40, heads=_BOTH),
    Family("val/intra_fid_*", "FID per class between real images and samples drawn for it, mean over classes", L,
           _CONDITIONAL, rank=50, heads=_RUN),
    Family("val/cas_[0-9]*", "Classification Accuracy Score: a classifier trained on the samples, tested on "
           "held-out real images", H, _CONDITIONAL, rank=60, heads=_RUN),
    Family("val/cas_real_*", "the same recipe trained on the real images: the score CAS is read against", N,
           _CONDITIONAL, rank=70, heads=_RUN),
    # ---- k-NN fidelity and diversity, on an extractor's features or on the points themselves (_raw)
    Family("val/precision_*", "share of samples inside the real k-NN manifold (improved precision)", H, _PRDC,
           rank=140, heads=_RUN),
    Family("val/recall_*", "share of real points inside the samples' k-NN manifold (improved recall)", H, _PRDC,
           rank=150, heads=_RUN),
    Family("val/density_*", "how many real k-NN balls hold each sample, on average, over k", H, _PRDC),
    Family("val/coverage_*", "share of real points whose k-NN ball holds a sample", H, _PRDC),
    # ---- likelihood and memorization
    Family("val/kde_loglik_[0-9]*", "Parzen-window log-likelihood of held-out real data under the samples", H,
           "gan_lab.metrics.density.kde_log_likelihood"),
    Family("val/kde_loglik_sem_*", "the Parzen log-likelihood's standard error of the mean", N,
           "gan_lab.metrics.density.kde_log_likelihood"),
    Family("memorization/nn_l2_median", "median L2 distance of a sample to its nearest training image", N, _MEMO),
    Family("memorization/duplicate_rate_*", "share of samples with a near-duplicate among s samples", L,
           "gan_lab.metrics.memorization.birthday_test"),
    Family("memorization/real_duplicate_rate_*", "the same among s real images: the rate the samples' is read "
           "against", N, "gan_lab.metrics.memorization.birthday_test"),
    # ---- toy laws: 2-D mixtures (PacGAN/VEEGAN conventions), 1-D laws exactly
    Family("toy/modes_captured", "modes nearest to at least one high-quality sample", H, _TOY,
           rank=100, heads=_BOTH),
    Family("toy/modes_total", "modes of the mixture", N, _TOY),
    Family("toy/high_quality_pct", "% of samples within 3σ of their nearest mode", H, _TOY, rank=110, heads=_RUN),
    Family("toy/reverse_kl", "KL(histogram of high-quality samples over modes ‖ uniform), nats", L, _TOY,
           rank=120, heads=_BOTH),
    Family("toy/w1", "Wasserstein-1 distance of the samples to the true 1-D law", L,
           "gan_lab.metrics.univariate.wasserstein1_to_law", rank=130, heads=_BOTH),
    Family("toy/ks", "Kolmogorov–Smirnov statistic of the samples against the true 1-D law", L,
           "gan_lab.metrics.univariate.ks_statistic"),
    # ---- post-hoc samplers
    Family("*/acceptance_rate", "share of G's samples the sampler kept", N, "gan_lab.filters.select",
           stage=Stage.SAMPLER),
    # ---- training statistics, averaged over each logged row
    Family("train/d_loss", "D's loss", N, _D_STEP, TRAIN, rank=170, heads=_SWEEP, curve=LOSSES, bar="d_loss"),
    Family("train/g_loss", "G's loss", N, _G_STEP, TRAIN, rank=180, heads=_SWEEP, curve=LOSSES, bar="g_loss"),
    Family("train/d_penalty", "the regularizer's penalty on D", N, _D_STEP, TRAIN, curve=LOSSES),
    Family("train/d_aux", "AC-GAN: D's class cross-entropy", N, _D_STEP, TRAIN, curve=LOSSES),
    Family("train/g_aux", "AC-GAN: G's class cross-entropy", N,
           "gan_lab.systems.conditioning.ClassConditional.g_class_terms", TRAIN, curve=LOSSES),
    Family("train/d_real", "D's mean output on real data (a probability for a sigmoid loss)", N, _D_STEP, TRAIN,
           curve=D_OUTPUTS, bar="D(x)"),
    Family("train/d_fake", "D's mean output on G's samples", N, _D_STEP, TRAIN, curve=D_OUTPUTS, bar="D(G(z))"),
    Family("train/wasserstein_estimate", "E_P[V] − E_Q[V]: the critic's lower bound on K·W1", N,
           "gan_lab.losses.wasserstein.Wasserstein.estimates", TRAIN, rank=160, heads=_SWEEP, curve=D_OUTPUTS,
           bar="W"),
    Family("train/divergence_estimate", "f-GAN's variational lower bound on the f-divergence", N,
           "gan_lab.losses.fgan.FGAN.estimates", TRAIN, curve=D_OUTPUTS),
    Family("train/grad_norm_d", "L2 norm of D's gradient", N, "gan_lab.systems.gan.GAN.d_grad_norms", TRAIN,
           curve=GRAD_NORMS),
    Family("train/grad_norm_g", "L2 norm of G's gradient", N, _G_STEP, TRAIN, curve=GRAD_NORMS),
    Family("train/d_class_accuracy_real", "AC-GAN: D's class accuracy on real images", N, _D_STEP, TRAIN),
    Family("train/lr_[dg]", "the scheduled learning rate of D or G (schedules, optimizer.lr_decay)", N,
           "gan_lab.schedules.Schedules.row", TRAIN),
    Family("schedule/*", "a scheduled setting's value at the row's iteration (schedules.<key>)", N,
           "gan_lab.schedules.Schedules.row", TRAIN),
    Family("train/g/*", "a small generator's reported parameter (θ, ∂L/∂θ; loc, scale)", N, _G_STEP, TRAIN),
    Family("train/ada_*", "adaptive augmentation: its probability p and the overfitting heuristic r_t", N,
           "gan_lab.tricks.diffaug.DiffAugment.log_row", TRAIN),
    Family("train/pl_*", "path-length regularization: its penalty (unweighted) and the running mean of the lengths",
           N, "gan_lab.tricks.path_length.PathLength.g_term", TRAIN),
    Family("train/instance_noise_sigma", "the instance noise's σ at the row's iteration", N,
           "gan_lab.tricks.noise.InstanceNoise.log_row", TRAIN),
    Family("train/resolution", "progressive growing: the resolution trained", N,
           "gan_lab.systems.progressive.ProgressiveGAN.training_step", TRAIN),
    Family("train/alpha", "progressive growing: the fade-in weight of the newest block", N,
           "gan_lab.systems.progressive.ProgressiveGAN.training_step", TRAIN),
    Family("train/mixture/*", "MIX+GAN: the entropy of the players' mixture weights", N,
           "gan_lab.systems.mixture.MixtureGAN.d_step", TRAIN),
    Family("train/level[0-9]*/*", "LAPGAN: one level's own loss, D outputs, penalty or gradient norm", N,
           "gan_lab.systems.lapgan.LAPGAN.d_step", TRAIN),
    Family("perf/iterations_per_s", "generator iterations per second over the row", N,
           "gan_lab.systems.statistics.Statistics.flush", TRAIN),
    # ---- the classics' end-of-run analyses (gan_lab/callbacks/analysis.py), read against closed forms
    Family("optimal_d/*_abs_error", "|σ(V(x)) − p/(p+q)| where the densities have mass: mean or max", L,
           "gan_lab.callbacks.analysis.OptimalDiscriminatorPlot.on_train_end", ANALYSIS),
    Family("g/final_*", "a small generator's last reported parameter (θ, ∂L/∂θ)", T,
           "gan_lab.callbacks.analysis.GeneratorParameterPlot.on_train_end", ANALYSIS),
    Family("fit/*", "the affine generator's fitted Gaussian: loc and scale", T,
           "gan_lab.callbacks.analysis.DensityFitPlot.on_train_end", ANALYSIS),
)


def matches(pattern: str, key: str) -> bool:
    """Whether ``key`` is one of ``pattern``'s keys (a glob; an exact key matches itself)."""
    return fnmatch.fnmatchcase(key, pattern)


def matching(key: str) -> list[Family]:
    """The families whose pattern matches ``key`` itself (no sampler prefix read): one for a declared key."""
    return [f for f in FAMILIES if matches(f.pattern, key)]


def sampler_of(key: str) -> str | None:
    """The post-hoc sampler whose measurement ``key`` is (``drs`` for ``drs/toy/w1``), or None."""
    head, _, rest = key.partition("/")
    if head in SAMPLERS and rest and any(f.stage is Stage.EVALUATION for f in matching(rest)):
        return head
    return None


def lookup(key: str) -> Family | None:
    """The family of a metric key (a sampler's measurement: the family it measured again), or of a family's own
    pattern; None for a key no family declares."""
    for family in FAMILIES:
        if family.pattern == key:
            return family
    found = matching(key)
    if found:
        return found[0]  # tests/test_metric_registry.py: no emitted key matches two
    sampler = sampler_of(key)
    return matching(key.partition("/")[2])[0] if sampler else None


def family(key: str) -> Family:
    """:func:`lookup`, refusing a key no family declares."""
    found = lookup(key)
    if found is None:
        raise KeyError(f"{key!r} belongs to no metric family in gan_lab/metrics/registry.py")
    return found


def direction(key: str) -> Direction:
    return family(key).direction


def is_measurement(key: str) -> bool:
    """Whether ``key`` is a number measured on generated samples (a sampler's too, and its acceptance rate)."""
    found = lookup(key)
    return found is not None and found.stage in (Stage.EVALUATION, Stage.SAMPLER)


def followable(key: str) -> bool:
    """Whether ``key`` names a measurement of G's own samples with a better side (lower or higher): one
    ``eval.best`` can follow (a sampler's, drs/… or jbt/…, is never measured during training)."""
    found = lookup(key)
    return found is not None and found.stage == Stage.EVALUATION and found.direction in (Direction.LOWER,
                                                                                         Direction.HIGHER)


def headline(keys: Iterable[str], report: Report = Report.RUN) -> list[str]:
    """Of ``keys``, those whose family heads ``report``, in the families' rank order (keys of one family in the
    order given). A sampler's measurement heads nothing: its page section shows it beside G's own."""
    ranked = [(family.rank, i, key) for i, key in enumerate(keys)
              if (family := _own_family(key)) is not None and report & family.heads]
    return [key for _, _, key in sorted(ranked)]


def _own_family(key: str) -> Family | None:
    found = matching(key)
    return found[0] if found else None


def curve_groups() -> dict[str, tuple[str, ...]]:
    """The panels of the training curves: title → the series drawn in it, in the registry's order."""
    groups: dict[str, tuple[str, ...]] = {}
    for family in FAMILIES:
        if family.curve is not None:
            groups[family.curve] = (*groups.get(family.curve, ()), family.pattern)
    return groups


def band_of(key: str) -> str | None:
    """The key holding ``key``'s standard deviation (``val/kid_std_5k_x`` for ``val/kid_5k_x``), or None."""
    family = _own_family(key)
    if family is None or family.band is None:
        return None
    own, spread = _literal_head(family.pattern), _literal_head(family.band)
    return spread + key[len(own):]  # both families' keys share what follows their literal head


def is_band(key: str) -> bool:
    """Whether ``key`` is another metric's standard deviation (drawn as its band, not as a curve)."""
    family = _own_family(key)
    return family is not None and any(f.band == family.pattern for f in FAMILIES)


def _literal_head(pattern: str) -> str:
    cut = min((i for i, c in enumerate(pattern) if c in "*?["), default=len(pattern))
    return pattern[:cut]


def progress_bar() -> dict[str, str]:
    """Series shown in the progress bar and the progress lines: key → short name, in the registry's order."""
    return {f.pattern: f.bar for f in FAMILIES if f.bar is not None}
