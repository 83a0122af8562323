"""FID, KID and IS on a feature extractor, with real statistics cached on disk.

Protocol (every number is reported under a name that states it)::

    {metric}_{n_fake}_{extractor}      e.g. fid_10k_inception, fid_5k_mnist5k_classifier, kid_std_1k_digits_classifier

``n_fake`` is written ``1k``/``5k``/``10k`` for whole thousands, else exactly (``fid_500_…``).
Two extractors (:func:`image_metric_suites` picks them):

- ``inception``: the FID InceptionV3 (:mod:`gan_lab.metrics.inception`; 2048-d pool features for
  FID/KID, 1008 bias-free logits for IS), when torch-fidelity's weights file is on disk. Numbers
  comparable with the literature's.
- ``{dataset}_classifier``: the data set's domain classifier (:mod:`gan_lab.metrics.classifier`;
  128-d penultimate features, class logits for IS and the class coverage), trained once and cached,
  for labelled sets. Comparable only with numbers from the same cached weights. A set whose channels
  are each an image of a labelled set (Stacked MNIST) is read by that set's classifier channel by channel:
  ``{channel set}_classifier_per_channel`` (:mod:`gan_lab.metrics.stacked`), which adds its mode coverage.

The arithmetic is torchmetrics' (``FrechetInceptionDistance``, ``KernelInceptionDistance``,
``InceptionScore``): we extract the features ourselves, in batches and without gradients, and hand
them to the torchmetrics objects through a pass-through ``feature=`` module, so those objects hold
no weights at all.

Real features are computed once per (data set, extractor weights, n_real, real_seed) and stored
under ``<cache_dir>/real_stats/`` (never in a checkpoint); ``ImageMetrics`` is a plain object, not
an ``nn.Module``, so holding one on a LightningModule puts nothing into its ``state_dict``.

torchmetrics 1.9 facts this relies on (checked in its source and in tests/test_metrics_features.py):

- ``feature=`` may be any ``nn.Module`` mapping a batch to (N, d). FID sizes its state from an int
  ``num_features`` attribute if the module has one, else it runs a dummy forward on
  ``input_img_size`` (default (3, 299, 299); uint8 unless ``normalize=True``) — which a 1-channel
  net cannot take, hence ``num_features`` on every module here. KID and IS need no size.
- With a custom module, FID and KID pass images through unchanged (``normalize`` is ignored), but
  IS still maps ``imgs * 255`` to uint8 when ``normalize=True``: keep ``normalize=False`` for IS.
- FID accumulates sums in float64 and computes Tr√(Σ₁Σ₂) from ``eigvals(Σ₁Σ₂)``;
  ``reset_real_features=False`` keeps the real sums across ``reset()``.
- KID draws its subsets and IS its split permutation from the global torch RNG; both are run here
  under a forked RNG seeded with ``seed``, so results are reproducible and the caller's RNG is untouched.
  KID's std is over subsets (``unbiased=False``); IS's std is over splits.
"""

from __future__ import annotations

import hashlib
import math
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gan_lab.errors import ConfigError, check_int
from gan_lab.metrics.classifier import default_cache_dir, labelled_in_memory, load_or_train
from gan_lab.metrics.stacked import PerChannel

REAL_STATS_VERSION = 1
# torchmetrics objects never meet other processes on their own (their default under DDP is a sync in
# compute(), which deadlocks when only some ranks measure): the lab gathers features itself.
NO_SYNC = {"sync_on_compute": False, "dist_sync_on_step": False}


def n_tag(n: int) -> str:
    """5000 → ``5k``, 10000 → ``10k``, 1234 → ``1234``: the sample-count part of a metric's name."""
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


def metric_key(metric: str, n_fake: int, extractor: str) -> str:
    return f"{metric}_{n_tag(n_fake)}_{extractor}"


def weights_hash(model: nn.Module) -> str:
    """A short hash of a module's parameters and buffers: the extractor id in cache keys."""
    h = hashlib.sha1()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(-1).to(torch.float64).numpy().tobytes())
    return h.hexdigest()[:10]


class _Given(nn.Module):
    """Pass-through ``feature=`` module: torchmetrics receives features already extracted (and cached)."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


@contextmanager
def full_precision(device: torch.device) -> Iterator[None]:
    """Feature extraction in full float32: no autocast, and on a GPU no TF32 in convolutions or matmuls (TF32
    rounds their inputs to 10 mantissa bits; the agreement with torch-fidelity, tests/test_fidelity.py, holds with
    it off). The caller's settings are restored afterwards."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        with torch.autocast(device.type, enabled=False):
            yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@torch.no_grad()
def extract(classifier: nn.Module, images: torch.Tensor, batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """(features (N, 128), logits (N, K)) of ``images``, float32 on the CPU, classifier in eval mode, in full
    float32 (:func:`full_precision`)."""
    was_training = classifier.training
    classifier.eval()
    device = next(classifier.parameters()).device
    feats, logits = [], []
    try:
        with full_precision(device):
            for i in range(0, images.shape[0], batch_size):
                f, z = classifier.features_and_logits(images[i:i + batch_size].to(device=device, dtype=torch.float32))
                feats.append(f.float().cpu())
                logits.append(z.float().cpu())
    finally:
        classifier.train(was_training)
    return torch.cat(feats), torch.cat(logits)


def coverage_from_logits(logits: torch.Tensor, num_classes: int) -> dict[str, float]:
    """The histogram of the argmax classes of ``logits`` (N, K): see :func:`class_coverage`."""
    counts = torch.bincount(logits.argmax(dim=1), minlength=num_classes).double()
    p = counts / counts.sum()
    nz = p[p > 0]
    return {"classes_covered": int((counts > 0).sum()),
            "class_kl_to_uniform": float((nz * (nz * num_classes).log()).sum())}


def class_coverage(fake_images: torch.Tensor, classifier: nn.Module, batch_size: int = 500) -> dict[str, float]:
    """Mode collapse for images: the histogram of the classifier's argmax classes over ``fake_images``.

    ``classes_covered``: classes predicted at least once; ``class_kl_to_uniform``: KL(histogram ‖
    uniform over the K classes) in nats — 0 for a balanced set, log K when every image is one class.
    """
    if fake_images.shape[0] < 1:
        raise ConfigError("fake_images", tuple(fake_images.shape), "at least one image")
    _, logits = extract(classifier, fake_images, batch_size)
    return coverage_from_logits(logits, int(classifier.num_classes))


def _torchmetrics_image():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torchmetrics.image.fid import FrechetInceptionDistance
        from torchmetrics.image.inception import InceptionScore
        from torchmetrics.image.kid import KernelInceptionDistance
    return FrechetInceptionDistance, KernelInceptionDistance, InceptionScore


class ImageMetrics:
    """FID / KID (mean, std) / IS / class coverage of generated images against one real data set.

    ``real``: a TensorSource (``.data`` (N, C, H, W) in [-1, 1], ``.spec.name``); ``classifier``: a
    :class:`~gan_lab.metrics.classifier.DomainClassifier` (or any module with ``features_and_logits``,
    ``num_features``, ``num_classes``); ``extractor``: the name in the metric keys. ``n_real`` real
    images (default: all, at most 10,000) are drawn with ``real_seed``; their features are cached in
    ``cache_dir/real_stats`` keyed by data set, extractor name + weights hash, ``n_real`` and
    ``real_seed``. A plain object on purpose: keep it off ``nn.Module`` state.
    """

    def __init__(self, real, classifier: nn.Module, extractor: str | None = None, *,
                 cache_dir: str | os.PathLike | None = None, n_real: int | None = None, real_seed: int = 0,
                 kid_subsets: int = 100, kid_subset_size: int = 1000, is_splits: int = 10,
                 batch_size: int = 500, seed: int = 0):
        spec = getattr(real, "spec", None)
        self.dataset = getattr(spec, "name", "real")
        if spec is None or not spec.is_image or len(real) < 2:
            raise ConfigError("dataset", self.dataset, "an image set of at least 2 images")
        self.real = real
        self.classifier = classifier.eval()
        self.extractor = extractor or f"{self.dataset}_classifier"
        self.extractor_id = f"{self.extractor}-{weights_hash(classifier)}"
        self.n_real = check_int("metrics.n_real", n_real if n_real is not None else min(len(real), 10_000), 2)
        self.real_seed = real_seed
        self.kid_subsets = check_int("metrics.kid_subsets", kid_subsets)
        self.kid_subset_size = check_int("metrics.kid_subset_size", kid_subset_size, 2)
        self.is_splits = check_int("metrics.is_splits", is_splits)
        self.batch_size = check_int("metrics.batch_size", batch_size)
        self.seed = seed
        self.image_shape = tuple(spec.shape)
        root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        self.real_stats_path = root / "real_stats" / (
            f"{self.dataset}__{self.extractor_id}__n{self.n_real}__s{self.real_seed}.pt")
        self.real_from_cache: bool | None = None  # set when the real features are first needed
        self._real: dict[str, torch.Tensor] | None = None
        self._fid = None
        self.last_fake_features: torch.Tensor | None = None
        self.classifier_info: dict[str, Any] | None = None

    @classmethod
    def for_source(cls, source, cache_dir: str | os.PathLike | None = None, classifier_seed: int = 0,
                   **kwargs: Any) -> ImageMetrics:
        """Metrics on ``source``'s own domain classifier (trained once, then loaded from the cache; a streamed set's
        on the images :func:`~gan_lab.metrics.classifier.labelled_in_memory` decodes); ``kwargs`` go to the
        constructor (``n_real``, ``seed``, KID/IS settings)."""
        classifier, info = load_or_train(labelled_in_memory(source), cache_dir, seed=classifier_seed)
        metrics = cls(source, classifier, info["extractor"], cache_dir=cache_dir, **kwargs)
        metrics.classifier_info = info
        return metrics

    @classmethod
    def per_channel(cls, source, channel_source, cache_dir: str | os.PathLike | None = None, classifier_seed: int = 0,
                    **kwargs: Any) -> ImageMetrics:
        """Metrics on ``channel_source``'s domain classifier read on each channel of ``source``'s images
        (Stacked MNIST: the mnist5k classifier, the one FID on mnist5k uses), with its mode coverage
        (:mod:`gan_lab.metrics.stacked`)."""
        classifier, info = load_or_train(channel_source, cache_dir, seed=classifier_seed)
        net = PerChannel(classifier, source.spec.shape[0])
        metrics = cls(source, net, f"{info['extractor']}_per_channel", cache_dir=cache_dir, **kwargs)
        metrics.classifier_info = info
        return metrics

    @classmethod
    def inception(cls, source, weights: str | os.PathLike, cache_dir: str | os.PathLike | None = None,
                  **kwargs: Any) -> ImageMetrics:
        """Metrics on the FID InceptionV3 loaded from ``weights`` (on the GPU when there is one)."""
        from gan_lab.metrics.inception import load_inception

        net = load_inception(weights).to("cuda" if torch.cuda.is_available() else "cpu")
        kwargs.setdefault("batch_size", 200 if torch.cuda.is_available() else 50)
        metrics = cls(source, net, "inception", cache_dir=cache_dir, **kwargs)
        metrics.classifier_info = {"weights": str(weights)}
        return metrics

    # ---- real statistics ---------------------------------------------------------------------
    def real_images(self) -> torch.Tensor:
        """The ``n_real`` real images the statistics are computed on (a seeded draw from the set)."""
        gen = torch.Generator().manual_seed(self.real_seed)
        data = getattr(self.real, "data", None)  # in memory; a streaming source decodes a seeded draw
        if data is not None and self.n_real == data.shape[0]:
            return data
        return self.real.sample(self.n_real, gen)

    def real_labels(self) -> torch.Tensor | None:
        """The class labels of :meth:`real_images`, row for row (None when the set has none or they cannot be
        matched to the drawn images)."""
        labels = getattr(self.real, "labels", None)
        if labels is None:
            return None
        data = getattr(self.real, "data", None)
        if data is not None and self.n_real == data.shape[0]:
            return labels
        if hasattr(self.real, "sample_indices"):  # the draw real_images makes, repeated
            return labels[self.real.sample_indices(self.n_real, torch.Generator().manual_seed(self.real_seed))]
        return None

    def real_stats(self) -> dict[str, torch.Tensor]:
        """``{"features", "logits"}`` of the real images, from the disk cache when present."""
        if self._real is not None:
            return self._real
        path = self.real_stats_path
        if path.is_file():
            try:
                blob = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as err:  # unreadable: recompute and overwrite
                warnings.warn(f"ignoring unreadable real statistics {path}: {err}", stacklevel=2)
                blob = {}
            meta = blob.get("meta", {})
            if (meta.get("version") == REAL_STATS_VERSION and meta.get("extractor_id") == self.extractor_id
                    and blob["features"].shape[0] == self.n_real):
                self._real, self.real_from_cache = {"features": blob["features"], "logits": blob["logits"]}, True
                return self._real
        feats, logits = extract(self.classifier, self.real_images(), self.batch_size)
        meta = {"version": REAL_STATS_VERSION, "dataset": self.dataset, "extractor": self.extractor,
                "extractor_id": self.extractor_id, "n_real": self.n_real, "real_seed": self.real_seed,
                "image_shape": list(self.image_shape)}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        torch.save({"features": feats, "logits": logits, "meta": meta}, tmp)
        os.replace(tmp, path)  # atomic under concurrent sweep jobs
        self._real, self.real_from_cache = {"features": feats, "logits": logits}, False
        return self._real

    # ---- metrics -----------------------------------------------------------------------------
    def describe(self, n_fake: int) -> str:
        """One line naming the protocol behind the numbers, for reports."""
        what = getattr(self.classifier, "description", "the 128-d penultimate features and the class logits")
        text = (f"FID/KID/IS on {what} of {self.extractor} "
                f"(weights {self.extractor_id.rsplit('-', 1)[-1]}); n_fake={n_fake}, n_real={self.n_real} "
                f"from {self.dataset} (seed {self.real_seed}); KID: cubic polynomial kernel, "
                f"{self.kid_subsets} subsets of {min(self.kid_subset_size, n_fake, self.n_real)}; "
                f"IS: {min(self.is_splits, n_fake)} splits; torchmetrics arithmetic")
        definition = getattr(self.classifier, "definition", None)  # an extractor's own measure (Stacked MNIST's modes)
        return f"{text}; {definition}" if definition else text

    def features(self, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(features (N, d), logits (N, K)) of ``fake`` (N, C, H, W) in [-1, 1]: the per-sample half of
        :meth:`compute`, which each rank of a distributed evaluation runs on its own share."""
        if tuple(fake.shape[1:]) != self.image_shape or fake.shape[0] < 1:
            raise ConfigError("fake images", tuple(fake.shape), f"a batch of images of shape {self.image_shape}")
        return extract(self.classifier, fake.detach(), self.batch_size)

    def compute(self, fake: torch.Tensor) -> dict[str, float]:
        """All metrics of ``fake`` (N, C, H, W) in [-1, 1] as ``{protocol key: value}``."""
        if fake.shape[0] < 2:
            raise ConfigError("fake images", tuple(fake.shape),
                              f"a batch of at least 2 images of shape {self.image_shape}")
        return self.from_features(*self.features(fake))

    def from_features(self, feats: torch.Tensor, logits: torch.Tensor) -> dict[str, float]:
        """The metrics of generated images given their features and logits (from :meth:`features`,
        possibly gathered from several ranks). The torchmetrics objects never sync across processes:
        the lab gathers the features itself (:class:`gan_lab.distributed.Ranks`)."""
        n = int(feats.shape[0])
        if n < 2:
            raise ConfigError("fake images", n, "at least 2 generated images")
        self.last_fake_features = feats  # for precision/recall on the same features, without a second pass
        real = self.real_stats()
        fid_cls, kid_cls, is_cls = _torchmetrics_image()
        d = real["features"].shape[1]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            if self._fid is None:  # real sums accumulated once, kept across reset()
                self._fid = fid_cls(feature=_Given(d), reset_real_features=False, **NO_SYNC)
                self._fid.update(real["features"], real=True)
            self._fid.update(feats, real=False)
            fid = float(self._fid.compute())
            self._fid.reset()

            subset = min(self.kid_subset_size, n, self.n_real)
            kid = kid_cls(feature=_Given(d), subsets=self.kid_subsets, subset_size=subset, **NO_SYNC)
            kid.update(real["features"].double(), real=True)
            kid.update(feats.double(), real=False)
            inception = is_cls(feature=_Given(logits.shape[1]), splits=min(self.is_splits, n), normalize=False,
                               **NO_SYNC)
            inception.update(logits.double())
            with torch.random.fork_rng(devices=[]):  # each metric draws from its own seeded stream
                torch.manual_seed(self.seed)
                kid_mean, kid_std = kid.compute()
                torch.manual_seed(self.seed)
                is_mean, is_std = inception.compute()
        key = lambda m: metric_key(m, n, self.extractor)
        out = {key("fid"): fid, key("kid"): float(kid_mean), key("kid_std"): float(kid_std),
               key("is"): float(is_mean), key("is_std"): float(is_std) if min(self.is_splits, n) > 1 else math.nan}
        if getattr(self.classifier, "counts_classes", True):  # the data set's own classes (not ImageNet's)
            cov = coverage_from_logits(logits, logits.shape[1])
            covered, kl = getattr(self.classifier, "coverage_names", ("classes_covered", "class_kl"))
            out.update({key(covered): cov["classes_covered"], key(kl): cov["class_kl_to_uniform"]})
        return out

    __call__ = compute


INCEPTION_CHOICES = ("auto", "true", "false")


def image_metric_suites(source, inception: str | bool = "auto", inception_weights: str | None = None,
                        allow_cpu_inception: bool = True, cache_dir: str | os.PathLike | None = None,
                        seed: int = 0, **kwargs: Any) -> list[ImageMetrics]:
    """The feature extractors that apply to ``source``: its domain classifier when it has class labels (read
    on each channel when every channel is an image of a labelled set, ``source.channel_source``), and the
    FID Inception network when its weights are found (``inception``: ``auto`` = when found, and on the CPU
    only if ``allow_cpu_inception``; ``true`` = required, a clear error if missing; ``false`` = never).
    ``kwargs`` go to every :class:`ImageMetrics` (``n_real``, KID settings)."""
    from gan_lab.metrics.inception import WEIGHTS_FILE, default_weights_path, find_weights

    setting = str(inception).lower()
    if setting not in INCEPTION_CHOICES:
        raise ConfigError("eval.inception", inception, "one of " + ", ".join(INCEPTION_CHOICES))
    suites = []
    channel_source = getattr(source, "channel_source", None)
    if channel_source is not None:  # each channel an image of a labelled set (Stacked MNIST): its classifier reads them
        suites.append(ImageMetrics.per_channel(source, channel_source, cache_dir, seed=seed, **kwargs))
    elif getattr(source, "labels", None) is not None:  # labelled, in memory or streamed
        suites.append(ImageMetrics.for_source(source, cache_dir, seed=seed, **kwargs))
    if setting != "false":
        weights = find_weights(inception_weights)
        if weights is None and setting == "true":
            raise ConfigError("eval.inception", inception, "false or auto, or the weights file on disk",
                              f"the FID Inception weights are not at {default_weights_path()}: place torch-fidelity's "
                              f"{WEIGHTS_FILE} there (or pass eval.inception_weights=<path>); nothing is downloaded")
        if weights is not None and (setting == "true" or allow_cpu_inception or torch.cuda.is_available()):
            suites.append(ImageMetrics.inception(source, weights, cache_dir, seed=seed, **kwargs))
    return suites
