"""Every metric that applies to a generator's samples, measured once and stored in its run folder
(the library behind ``python -m gan_lab.evaluate`` and the end of every run).

Toy points: mode metrics (2-D mixtures), exact W1/KS (1-D), precision/recall/density/coverage and
the Parzen log-likelihood against fresh draws from the law (truly held-out). Images: the
memorization checks (nearest training neighbours, birthday duplicates) with their pictures, and
the feature-space metrics of :mod:`gan_lab.metrics.features` where a domain feature extractor exists.
Every number is stored under a name that carries its protocol, with the protocol text beside it.
Under DDP the ranks measure together (:func:`evaluate_system`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import NamedTuple

import torch

from gan_lab.distributed import Ranks
from gan_lab.errors import ConfigError
from gan_lab.metrics.conditional import class_accuracy, classification_accuracy_score, intra_fid
from gan_lab.metrics.density import kde_log_likelihood
from gan_lab.metrics.features import image_metric_suites, n_tag
from gan_lab.metrics.memorization import DEFINITION as MEMO_DEFINITION
from gan_lab.metrics.memorization import birthday_test, nearest_neighbours
from gan_lab.metrics.neighbors import DEFINITION as PRDC_DEFINITION
from gan_lab.metrics.neighbors import precision_recall_density_coverage
from gan_lab.metrics.toy import toy_metrics
from gan_lab.run_folder import write_summary
from gan_lab.viz import image_grid, save_png

PRDC_SEED = 0  # the draw of the real subset precision/recall/density/coverage use: fixed, so a number repeats


def prdc_reals(real_features: torch.Tensor, n: int, seed: int = PRDC_SEED) -> torch.Tensor:
    """n of the real features for precision/recall/density/coverage against n fakes: a random subset drawn
    with ``seed`` (the cached features keep the data set's order, and mnist5k is stored sorted by class, so
    its first n are a few classes), or all of them when n ≥ their number."""
    if n >= real_features.shape[0]:
        return real_features
    order = torch.randperm(real_features.shape[0], generator=torch.Generator().manual_seed(seed))
    return real_features[order[:n]]


def default_samples(spec) -> int:
    return spec.eval_samples or (5000 if spec.is_image else 2500)


def point_metrics(fake: torch.Tensor, source, g: torch.Generator) -> tuple[dict, dict]:
    n = fake.shape[0]
    real, val, test = source.sample(n, g), source.sample(n, g), source.sample(n, g)
    out, protocols = toy_metrics(fake, source)
    prdc = precision_recall_density_coverage(real, fake, k=5)
    out.update({f"val/{k}_{n_tag(n)}_raw": v for k, v in prdc.items()})
    protocols[f"val/*_{n_tag(n)}_raw"] = f"{n} real vs {n} fake points, k=5; {PRDC_DEFINITION}"
    scale = float(real.std())
    kde = kde_log_likelihood(fake, val, test, sigmas=torch.logspace(-3, 1, 21) * scale)
    out[f"val/kde_loglik_{n_tag(n)}"], out[f"val/kde_loglik_sem_{n_tag(n)}"] = kde["log_likelihood"], kde["sem"]
    protocols[f"val/kde_loglik_{n_tag(n)}"] = (f"Parzen window on {n} fake samples, bandwidth {kde['bandwidth']:.4g} "
                                                f"chosen on {n} fresh real samples, mean ± SEM over {n} more")
    return out, protocols


def memorization(fake: torch.Tensor, train_images: torch.Tensor, run_dir: Path, g: torch.Generator,
                 shown: int = 32, s: int = 400) -> tuple[dict, dict]:
    index, dist = nearest_neighbours(fake[:shown], train_images)
    pairs = torch.stack([fake[:shown], train_images[index]], dim=1).flatten(0, 1)  # fake, nearest, …
    side = fake.shape[-1]
    save_png(image_grid(pairs, nrow=8, scale=max(1, 64 // side)), run_dir / "memorization.png")
    real = train_images[torch.randperm(len(train_images), generator=g)[:s]]
    b = birthday_test(fake[:s], real, pairs=16)
    closest = torch.stack([fake[b["closest_pairs"][:, 0]], fake[b["closest_pairs"][:, 1]]], dim=1).flatten(0, 1)
    save_png(image_grid(closest, nrow=8, scale=max(1, 64 // side)), run_dir / "duplicates.png")
    out = {"memorization/nn_l2_median": float(dist.median()),
           f"memorization/duplicate_rate_{s}": b["duplicate_rate"],
           f"memorization/real_duplicate_rate_{s}": b["real_duplicate_rate"]}
    protocols = {"memorization/*": f"{shown} samples vs {len(train_images)} training images (memorization.png: "
                                   f"sample, nearest training image); birthday test on s={s} (duplicates.png: the 16 "
                                   f"closest pairs); {MEMO_DEFINITION}"}
    return out, protocols


class Drawn(NamedTuple):
    """Samples drawn by every rank together: ``fake`` all n of them on rank 0 (None on the other ranks), ``local``
    this rank's share, ``labels`` the n labels they were drawn for (None unless class-conditional)."""

    fake: torch.Tensor | None
    local: torch.Tensor
    labels: torch.Tensor | None
    n: int


def draw(system, n: int, g: torch.Generator, ranks: Ranks, to: torch.device | str = "cpu"
         ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(This rank's share of n samples G(z), on ``to``; all n labels they were drawn for or None): z (then the
    labels of a class-conditional run, gan_lab/systems/conditioning.py) are drawn from ``g`` exactly as one process
    draws them, and each rank generates its contiguous part, so the gathered samples are the single-process ones."""
    z = system.sample_z(n, g).cpu()
    labels = system.conditioning.eval_labels(system, n, g)
    share = ranks.share(n)
    return system.generate(z[share], system.conditioning.take(labels, share), to=to), labels


def conditions_suite(suite, n_classes: int) -> bool:
    """Whether ``suite``'s extractor is the data set's own classifier over its ``n_classes`` classes (what class
    accuracy and intra-class FID read; not Inception's ImageNet classes, not Stacked MNIST's per-channel digits)."""
    return suite.extractor == f"{suite.dataset}_classifier" and suite.classifier.num_classes == n_classes


def class_accuracy_of(suite, logits: torch.Tensor, labels: torch.Tensor) -> tuple[str, float, list[float]]:
    """(its key, the class accuracy of samples drawn for ``labels`` whose logits on ``suite`` are ``logits``, the
    same per class); the key carries the sample count and the extractor."""
    acc, per = class_accuracy(logits, labels)
    return f"val/class_accuracy_{n_tag(len(labels))}_{suite.extractor}", acc, per


def conditional_metrics(suite, feats: torch.Tensor, logits: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor,
                        source, seed: int = 0) -> tuple[dict, dict, dict]:
    """Class accuracy, intra-class FID and CAS of samples drawn for ``labels`` (gan_lab/metrics/conditional.py):
    (metrics, protocols, per-class lists)."""
    n, k = fake.shape[0], source.num_classes
    if not conditions_suite(suite, k):
        return {}, {}, {}
    tag = f"{n_tag(n)}_{suite.extractor}"
    key, acc, acc_per = class_accuracy_of(suite, logits, labels)
    out, per_class = {key: acc}, {key: acc_per}
    protocols = {key: f"share of {n} samples G(z, y) ({n // k} or so per class) that {suite.extractor} "
                      f"(weights {suite.extractor_id.rsplit('-', 1)[-1]}) assigns to the class y they were drawn for"}
    real_labels = suite.real_labels()
    if real_labels is not None:
        mean, per = intra_fid(suite.real_stats()["features"], real_labels, feats, labels, k)
        out[f"val/intra_fid_{tag}"] = mean
        per_class[f"val/intra_fid_{tag}"] = per
        protocols[f"val/intra_fid_{tag}"] = (f"Fréchet distance per class between the {suite.n_real} real images' and "
                                            f"the {n} samples' 128-d features on {suite.extractor}, each class's real "
                                            "images against the samples drawn for it; mean over the classes")
    cas = classification_accuracy_score(fake, labels, source, suite.classifier, seed)
    if cas is not None:
        held = len(source.heldout)
        key = f"val/cas_{n_tag(n)}_{suite.dataset}_heldout{held}"
        real_key = f"val/cas_real_{suite.dataset}_heldout{held}"
        out[key], out[real_key] = cas["cas"], cas["cas_real"]
        protocols[real_key] = (f"the domain classifier {suite.extractor} (trained on the real training images) on the "
                               f"{held} held-out real images: the score CAS is read against")
        protocols[key] = (f"Classification Accuracy Score (Ravuri & Vinyals 2019): a classifier trained with the "
                          f"domain classifier's recipe on the {n} samples and their requested labels (a tenth kept for "
                          f"validation), its accuracy on the {held} held-out real images; cas_real: the same recipe "
                          f"trained on the real training images ({suite.extractor})")
    return out, protocols, per_class


def shared_features(suites: list, local: torch.Tensor, ranks: Ranks) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(features, logits) of every rank's samples on each suite's extractor, extracted where the samples
    are and gathered once, in rank order. Every rank must measure with the same extractors and weights:
    rank 0's list is checked and its weights copied once."""
    if ranks.world > 1:
        names = ranks.broadcast([s.extractor for s in suites], "the extractor list")
        if names != [s.extractor for s in suites]:
            raise ConfigError("eval.inception", [s.extractor for s in suites], f"rank 0's extractors {names}",
                              f"rank {ranks.rank} found other feature extractors than rank 0 (is the Inception "
                              "weights file on every node?)")
    out = []
    for suite in suites:
        if ranks.world > 1 and not getattr(suite, "synced", False):
            ranks.broadcast_state(suite.classifier, "state")
            suite.synced = True
        if local.shape[0]:
            feats, logits = suite.features(local)
        else:  # more ranks than samples: this rank has no share
            feats, logits = (t[:0] for t in suite.features(torch.zeros(1, *suite.image_shape)))
        out.append((ranks.gather(feats, "features"), ranks.gather(logits, "logits")))
    return out


def suite_metrics(suite, feats: torch.Tensor, logits: torch.Tensor) -> dict[str, float]:
    """FID, KID, IS and class coverage of samples whose features and logits on ``suite`` are given, each under its
    ``val/`` key (the registry's families val/fid_*, val/kid_*, …): the end-of-run and the in-training evaluation
    name them alike."""
    return {f"val/{k}": v for k, v in suite.from_features(feats, logits).items()}


def feature_metrics(suites: list, features: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[dict, dict]:
    """FID, KID, IS, class coverage and precision/recall/density/coverage on every feature extractor
    that applies (:func:`gan_lab.metrics.features.image_metric_suites`: the data set's domain classifier,
    trained once and cached as are the real features, and the FID Inception network when its weights
    are on disk), from the generated images' ``features`` on each."""
    out, protocols = {}, {}
    for image_metrics, (feats, logits) in zip(suites, features):
        n = feats.shape[0]
        out.update(suite_metrics(image_metrics, feats, logits))
        real_features = image_metrics.real_stats()["features"]
        reals = prdc_reals(real_features, max(n, 2))
        prdc = precision_recall_density_coverage(reals, feats, k=5)
        total = real_features.shape[0]
        against = (f"{reals.shape[0]} of the {total} real images drawn at random (seed {PRDC_SEED})"
                   if reals.shape[0] < total else f"all {total} real images")
        tag = f"{n_tag(n)}_{image_metrics.extractor}"
        out.update({f"val/{k}_{tag}": v for k, v in prdc.items()})
        info = image_metrics.classifier_info or {}
        origin = (f"classifier validation accuracy {info['val_accuracy']:.3f}" if "val_accuracy" in info
                  else f"weights {info.get('weights', 'unknown')}")
        protocols[f"val/*_{tag}"] = (f"{image_metrics.describe(n)}; {origin}; precision/recall/density/coverage "
                                     f"with k=5 on the same features, against {against}")
    return out, protocols


def image_kde(fake: torch.Tensor, heldout: torch.Tensor) -> tuple[dict, dict]:
    """Parzen log-likelihood of held-out real images (never trained on) under a KDE on ``fake``:
    pixels mapped to [0, 1] as in Goodfellow 2014 / f-GAN Table 4; σ chosen on the held-out set's first
    half, the mean ± SEM reported on its second half."""
    n, half = fake.shape[0], heldout.shape[0] // 2
    kde = kde_log_likelihood((fake + 1) / 2, (heldout[:half] + 1) / 2, (heldout[half:] + 1) / 2)
    key = f"val/kde_loglik_{n_tag(n)}"
    return ({key: kde["log_likelihood"], f"val/kde_loglik_sem_{n_tag(n)}": kde["sem"]},
            {key: f"Parzen window on {n} generated images (pixels in [0, 1]), bandwidth {kde['bandwidth']:.4g} chosen "
                  f"on {half} held-out real images, mean ± SEM over {heldout.shape[0] - half} more held-out images"})


def evaluate_system(system, source, run_dir: Path, n: int | None = None, seed: int = 0,
                    fake: torch.Tensor | None = None, inception: str = "auto", inception_weights: str | None = None,
                    allow_cpu_inception: bool = True, ranks: Ranks | None = None,
                    labels: torch.Tensor | None = None, drawn: Drawn | None = None) -> dict:
    """Every metric that applies to ``system``'s samples (EMA generator if any), stored in run_dir.
    ``fake``: samples already drawn (e.g. samples.npy's) and, in a class-conditional run, ``labels`` they were
    drawn for; ``drawn``: samples every rank drew together (:class:`Drawn`); else ``n`` are drawn with ``seed``.
    ``inception``/``inception_weights``/``allow_cpu_inception``: see
    :func:`gan_lab.metrics.features.image_metric_suites`.

    ``ranks``: in a multi-process run every rank calls this together. Each generates its share of the
    samples and extracts their features; samples and features are gathered once, rank 0 computes every
    metric and writes metrics.json and the pictures, and every rank returns the same summary."""
    ranks = ranks or Ranks()
    started = time.perf_counter()
    spec = source.spec
    g = torch.Generator().manual_seed(seed)
    if drawn is not None:
        fake, local, labels, n = drawn
    elif fake is None:
        n = n or default_samples(spec)
        local, labels = draw(system, n, g, ranks, to=system.device)  # features are extracted where G made them
        fake = ranks.gather(local)  # rank 0's; the other ranks measure their own share
    else:
        n, local = fake.shape[0], fake[ranks.share(fake.shape[0])]
    suites = features = None
    if spec.is_image:
        suites = image_metric_suites(source, inception, inception_weights, allow_cpu_inception, seed=seed)
        features = shared_features(suites, local, ranks)
    summary = None
    with ranks.alone():
        if ranks.is_main:
            summary = _measure(run_dir, source, fake, g, suites, features, started, labels, seed)
    return ranks.broadcast(summary, "evaluation results")


def _measure(run_dir: Path, source, fake: torch.Tensor, g: torch.Generator, suites: list | None,
             features: list | None, started: float, labels: torch.Tensor | None = None, seed: int = 0) -> dict:
    """Rank 0's part of :func:`evaluate_system`: every metric from the gathered samples and features."""
    if not source.spec.is_image:
        results, protocols = point_metrics(fake, source, g)
        return _store(run_dir, results, protocols, fake.shape[0], time.perf_counter() - started)
    train_images = source.data if getattr(source, "data", None) is not None else source.sample(10_000, g)
    results, protocols = memorization(fake, train_images, run_dir, g)
    parts = [feature_metrics(suites, features)]
    if getattr(source, "heldout", None) is not None and source.heldout.shape[0] >= 4:
        parts.append(image_kde(fake, source.heldout))
    per_class = {}
    if labels is not None and suites:
        more, more_protocols, per_class = conditional_metrics(suites[0], *features[0], fake, labels, source, seed)
        parts.append((more, more_protocols))
    for more, more_protocols in parts:
        results.update(more)
        protocols.update(more_protocols)
    return _store(run_dir, results, protocols, fake.shape[0], time.perf_counter() - started, per_class)


def merge_summary(run_dir: Path, results: dict, protocols: dict, per_class: dict | None = None,
                  drop_prefix: str | None = None, **blocks) -> dict:
    """metrics.json with ``results`` and their ``protocols`` added (after dropping every metric and protocol
    named ``drop_prefix``…, when given), ``per_class`` merged into its per-class values, and each of ``blocks``
    set as a top-level entry; written, and returned."""
    path = run_dir / "metrics.json"
    summary = json.loads(path.read_text()) if path.is_file() else {"metrics": {}, "protocols": {}}
    for key, new in (("metrics", results), ("protocols", protocols)):
        part = summary.setdefault(key, {})
        for name in [k for k in part if drop_prefix and k.startswith(drop_prefix)]:
            del part[name]
        part.update(new)
    if per_class:  # class-conditional runs: each metric's value per class, class 0 first
        summary.setdefault("per_class", {}).update(per_class)
    summary.update(blocks)
    write_summary(run_dir, summary)
    return summary


def _store(run_dir: Path, results: dict, protocols: dict, n: int, seconds: float,
           per_class: dict | None = None) -> dict:
    return merge_summary(run_dir, results, protocols, per_class,
                         evaluation={"samples": n, "seconds": round(seconds, 2)})
