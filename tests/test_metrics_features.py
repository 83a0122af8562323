"""Domain classifier, FID / KID / IS on its features, class coverage, and the on-disk caches.

Fast tests use scikit-learn's 8×8 digits (the classifier trains in about a second); the mnist5k
classifier is trained once in this module (≈ 10 s on 2 idle cores).
"""

from __future__ import annotations

import math
import sys
import time

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from gan_lab.data.base import DataSpec, TensorSource
from gan_lab.data.images import digits, mnist5k
from gan_lab.errors import ConfigError
from gan_lab.metrics import classifier as clf_mod
from gan_lab.metrics import features as feat_mod
from gan_lab.metrics.classifier import DomainClassifier, default_cache_dir, load_or_train
from gan_lab.metrics.features import (
    ImageMetrics,
    class_coverage,
    extract,
    metric_key,
    n_tag,
)


class _OnImages(nn.Module):
    """``feature=`` module that makes torchmetrics run the classifier on raw images itself: the
    reference our path (features extracted once, cached, handed over) must match."""

    def __init__(self, fn, num_features: int):
        super().__init__()
        self.fn, self.num_features = fn, int(num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x.float())


DIGITS_MIN_ACC = 0.95  # measured 0.989 (seed 0, default settings)
MNIST5K_MIN_ACC = 0.95  # measured 0.986 (seed 0, default settings)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("gan_lab_cache")


@pytest.fixture(scope="module")
def digit_set():
    return digits(holdout=0)


@pytest.fixture(scope="module")
def digit_clf(digit_set, cache):
    return load_or_train(digit_set, cache, seed=0)


@pytest.fixture(scope="module")
def digit_metrics(digit_set, digit_clf, cache):
    model, info = digit_clf
    return ImageMetrics(digit_set, model, info["extractor"], cache_dir=cache, n_real=1000,
                        kid_subsets=5, kid_subset_size=1000)


# ---- the classifier --------------------------------------------------------------------------

@pytest.mark.parametrize("side", [8, 28])
def test_classifier_shapes(side):
    model = DomainClassifier(1, 10).eval()
    x = torch.rand(3, 1, side, side) * 2 - 1
    assert model.features(x).shape == (3, 128) and model(x).shape == (3, 10)
    f, z = model.features_and_logits(x)
    torch.testing.assert_close(f, model.features(x))
    torch.testing.assert_close(z, model(x))
    assert model.num_features == 128


def test_digits_classifier_accuracy(digit_clf):
    model, info = digit_clf
    assert info["dataset"] == "digits" and info["extractor"] == "digits_classifier"
    assert info["val_accuracy"] >= DIGITS_MIN_ACC, info
    assert info["n_val"] == round(0.1 * 1797) and not model.training
    assert info["feature_scale"] > 0


def test_mnist5k_classifier_accuracy(tmp_path):
    source = mnist5k(holdout=0)
    start = time.perf_counter()
    model, info = load_or_train(source, tmp_path, seed=0)
    took = time.perf_counter() - start
    print(f"mnist5k classifier: val_accuracy={info['val_accuracy']:.4f}, {took:.1f} s")
    assert info["val_accuracy"] >= MNIST5K_MIN_ACC, info
    assert info["n_val"] == 500 and info["num_classes"] == 10 and not info["cached"]
    # IS of real MNIST on its own classifier: close to the 10 classes it separates
    metrics = ImageMetrics(source, model, info["extractor"], cache_dir=tmp_path, n_real=1000, kid_subsets=2,
                           kid_subset_size=500)
    values = metrics.compute(metrics.real_images())
    assert values["is_1k_mnist5k_classifier"] > 8.0, values
    assert values["classes_covered_1k_mnist5k_classifier"] == 10


def test_unlabelled_source_is_a_config_error(tmp_path):
    images = torch.zeros(20, 1, 8, 8)
    with pytest.raises(ConfigError, match="labelled"):
        load_or_train(TensorSource(images, DataSpec("blank", (1, 8, 8), "image")), tmp_path)
    points = TensorSource(torch.zeros(20, 2), DataSpec("pts", (2,), "points"), torch.zeros(20))
    with pytest.raises(ConfigError):
        load_or_train(points, tmp_path)


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("GAN_LAB_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("GAN_LAB_CACHE")
    assert str(default_cache_dir()).endswith(".cache/gan_lab")


def test_second_load_does_not_train_and_uses_weights_only(digit_set, digit_clf, cache, monkeypatch):
    model, info = digit_clf
    assert info["path"].startswith(str(cache))

    def no_training(*args, **kwargs):
        raise AssertionError("trained again instead of loading the cache")

    loads = []
    real_load = torch.load

    def spy_load(*args, **kwargs):
        loads.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(clf_mod, "train_classifier", no_training)
    monkeypatch.setattr(torch, "load", spy_load)
    again, info2 = load_or_train(digit_set, cache, seed=0)
    assert info2["cached"] and info2["val_accuracy"] == info["val_accuracy"]
    assert loads == [True]
    for k, v in model.state_dict().items():
        torch.testing.assert_close(again.state_dict()[k], v)
    # other settings or another seed are another cache entry
    assert clf_mod.cache_path(digit_set, cache, seed=1) != clf_mod.cache_path(digit_set, cache, seed=0)
    assert clf_mod.cache_path(digit_set, cache, epochs=3) != clf_mod.cache_path(digit_set, cache)


def test_unreadable_cache_is_retrained(digit_set, tmp_path):
    path = clf_mod.cache_path(digit_set, tmp_path, epochs=1)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning, match="unreadable classifier cache"):
        _, info = load_or_train(digit_set, tmp_path, epochs=1)
    assert not info["cached"] and info["settings"]["epochs"] == 1
    assert load_or_train(digit_set, tmp_path, epochs=1)[1]["cached"]


# ---- FID / KID / IS ---------------------------------------------------------------------------

def test_protocol_names():
    assert [n_tag(n) for n in (1000, 5000, 10000, 50000, 500, 1234)] == ["1k", "5k", "10k", "50k", "500", "1234"]
    assert metric_key("fid", 5000, "mnist5k_classifier") == "fid_5k_mnist5k_classifier"
    assert metric_key("kid_std", 1000, "digits_classifier") == "kid_std_1k_digits_classifier"


def test_fid_kid_zero_on_itself_and_growing_with_noise(digit_metrics):
    real = digit_metrics.real_images()
    gen = torch.Generator().manual_seed(1)
    noise = torch.randn(real.shape, generator=gen)
    fid, kid = [], []
    for sigma in (0.0, 0.1, 0.3, 0.6):
        values = digit_metrics.compute((real + sigma * noise).clamp(-1, 1))
        fid.append(values["fid_1k_digits_classifier"])
        kid.append(values["kid_1k_digits_classifier"])
    assert abs(fid[0]) < 1e-3 * fid[-1] and abs(fid[0]) < 1e-4, fid
    # KID's unbiased estimator of a set against itself is -2/(m-1)·(mean k(x,x) − mean k(x,y)): ≈ 0, not exactly
    assert abs(kid[0]) < 0.1 * kid[-1], kid
    assert all(a < b for a, b in zip(fid, fid[1:])), fid
    assert all(a < b for a, b in zip(kid, kid[1:])), kid
    # the 797 digits left out of the real subset: another sample of the same law, KID ≈ 0 (unbiased)
    chosen = torch.zeros(len(digit_metrics.real.data), dtype=torch.bool)
    chosen[torch.randperm(len(chosen), generator=torch.Generator().manual_seed(digit_metrics.real_seed))[:1000]] = True
    torch.testing.assert_close(digit_metrics.real.data[chosen].sum(), real.sum())  # the same subset
    held_out = digit_metrics.compute(digit_metrics.real.data[~chosen])
    print("held-out digits:", held_out, "noise:", fid, kid)
    assert abs(held_out["kid_797_digits_classifier"]) < 0.2 * kid[2]
    assert held_out["fid_797_digits_classifier"] < fid[2]


def test_inception_score_real_and_collapsed(digit_metrics):
    real = digit_metrics.real_images()
    assert 8.0 < digit_metrics.compute(real)["is_1k_digits_classifier"] <= 10.0
    one = digit_metrics.compute(real[:1].repeat(200, 1, 1, 1))
    assert one["is_200_digits_classifier"] == pytest.approx(1.0, abs=1e-6)
    assert one["classes_covered_200_digits_classifier"] == 1
    assert one["fid_200_digits_classifier"] > 10.0


@pytest.mark.filterwarnings("ignore:Metric .* will save all extracted features")
@pytest.mark.filterwarnings("ignore:Matrix is singular")  # dead ReLU units: rank-deficient covariances
def test_matches_torchmetrics_on_images_and_scipy(digit_metrics):
    """Our pipeline (own batched extraction + cached real features) = torchmetrics fed raw images."""
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.inception import InceptionScore
    from torchmetrics.image.kid import KernelInceptionDistance

    model = digit_metrics.classifier
    real = digit_metrics.real_images()
    fake = (real[:400] + 0.3 * torch.randn(400, 1, 8, 8, generator=torch.Generator().manual_seed(2))).clamp(-1, 1)
    ours = digit_metrics.compute(fake)

    on_features = _OnImages(model.features, model.num_features)  # num_features: no dummy 3×299×299 pass
    fid = FrechetInceptionDistance(feature=on_features)
    fid.update(real, real=True)
    fid.update(fake, real=False)
    assert float(fid.compute()) == pytest.approx(ours["fid_400_digits_classifier"], rel=1e-4)

    kid = KernelInceptionDistance(feature=on_features, subsets=5, subset_size=400)
    kid.update(real, real=True)
    kid.update(fake, real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(digit_metrics.seed)
        kid_mean, kid_std = kid.compute()
    # same subsets (same seed); torchmetrics here works in float32, ours in float64
    assert float(kid_mean) == pytest.approx(ours["kid_400_digits_classifier"], rel=1e-3, abs=1e-6)

    inception = InceptionScore(feature=_OnImages(model, model.num_classes), splits=10)
    inception.update(fake)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(digit_metrics.seed)
        is_mean, _ = inception.compute()
    assert float(is_mean) == pytest.approx(ours["is_400_digits_classifier"], rel=1e-4)

    # FID arithmetic cross-checked with scipy's matrix square root
    f_real, _ = extract(model, real)
    f_fake, _ = extract(model, fake)
    a, b = f_real.double().numpy(), f_fake.double().numpy()
    mu1, mu2, s1, s2 = a.mean(0), b.mean(0), np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    ref = float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))
    assert ours["fid_400_digits_classifier"] == pytest.approx(ref, rel=1e-3)
    assert "torchvision" not in sys.modules and "torch_fidelity" not in sys.modules


def test_fid_without_num_features_runs_a_3x299x299_dummy():
    """torchmetrics' fact behind ``num_features``: without it FID feeds the module a (1, 3, 299, 299) image."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    seen = []

    class Probe(nn.Module):
        def forward(self, x):
            seen.append((tuple(x.shape), x.dtype))
            return torch.zeros(x.shape[0], 7)

    FrechetInceptionDistance(feature=Probe())
    assert seen == [((1, 3, 299, 299), torch.uint8)]


# ---- class coverage ----------------------------------------------------------------------------

def test_class_coverage(digit_set, digit_clf):
    model, _ = digit_clf
    with torch.no_grad():
        pred = model.eval()(digit_set.data).argmax(1)
    correct = pred == digit_set.labels
    threes = digit_set.data[correct & (digit_set.labels == 3)]
    one = class_coverage(threes, model)
    assert one["classes_covered"] == 1
    assert one["class_kl_to_uniform"] == pytest.approx(math.log(10), abs=1e-9)
    balanced = torch.cat([digit_set.data[correct & (digit_set.labels == c)][:50] for c in range(10)])
    full = class_coverage(balanced, model)
    assert full["classes_covered"] == 10
    assert full["class_kl_to_uniform"] == pytest.approx(0.0, abs=1e-9)


# ---- real statistics cache -------------------------------------------------------------------

def test_real_stats_written_once_and_reused(digit_set, digit_clf, tmp_path, monkeypatch):
    model, info = digit_clf
    kwargs = dict(cache_dir=tmp_path, n_real=300, kid_subsets=2, kid_subset_size=100)
    first = ImageMetrics(digit_set, model, info["extractor"], **kwargs)
    fake = digit_set.data[:150]
    v1 = first.compute(fake)
    path = first.real_stats_path
    assert path.is_file() and first.real_from_cache is False
    assert path.parent == tmp_path / "real_stats" and "digits__digits_classifier-" in path.name
    assert "n300" in path.name
    stamp = path.stat().st_mtime_ns
    blob = torch.load(path, weights_only=True)
    assert blob["features"].shape == (300, 128) and blob["meta"]["n_real"] == 300

    calls = []
    real_extract = feat_mod.extract

    def counting_extract(classifier, images, *args, **kwargs):
        calls.append(images.shape[0])
        return real_extract(classifier, images, *args, **kwargs)

    monkeypatch.setattr(feat_mod, "extract", counting_extract)
    second = ImageMetrics(digit_set, model, info["extractor"], **kwargs)
    v2 = second.compute(fake)
    assert second.real_from_cache is True and calls == [150]  # only the fake images went through the net
    assert path.stat().st_mtime_ns == stamp
    assert v2 == pytest.approx(v1)
    second.compute(fake)
    assert calls == [150, 150]  # and the real features stay in memory too

    other = ImageMetrics(digit_set, model, info["extractor"], **{**kwargs, "n_real": 200})
    assert other.real_stats_path != path


def test_for_source_uses_the_cached_classifier(digit_set, digit_clf, cache):
    metrics = ImageMetrics.for_source(digit_set, cache, n_real=300, kid_subsets=2, kid_subset_size=100)
    assert metrics.classifier_info["cached"] and metrics.extractor == "digits_classifier"
    assert metrics.extractor_id == f"digits_classifier-{feat_mod.weights_hash(digit_clf[0])}"
    assert set(metrics.compute(digit_set.data[:100])) == {
        f"{m}_100_digits_classifier" for m in ("fid", "kid", "kid_std", "is", "is_std", "classes_covered", "class_kl")}


def test_metrics_stay_out_of_module_state(digit_metrics):
    assert not isinstance(digit_metrics, nn.Module)
    holder = nn.Module()
    holder.metrics = digit_metrics
    assert holder.state_dict() == {} and list(holder.parameters()) == []


def test_wrong_shape_is_a_config_error(digit_metrics):
    with pytest.raises(ConfigError, match="fake images"):
        digit_metrics.compute(torch.zeros(4, 1, 28, 28))


class _Recording(nn.Module):
    """An extractor that records, on each call, whether TF32 and autocast were on."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 3)
        self.num_classes, self.seen = 3, []

    def features_and_logits(self, x: torch.Tensor):
        self.seen.append((torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32,
                          torch.is_autocast_enabled("cpu"), x.dtype))
        h = self.lin(x.flatten(1))
        return h, h


def test_features_are_extracted_in_full_float32_and_the_callers_settings_come_back():
    """TF32 (a GPU's default for convolutions) and an enclosing autocast are off while features are extracted,
    whatever the caller had set, and back as the caller had them afterwards."""
    net = _Recording()
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            feats, _ = feat_mod.extract(net, torch.rand(5, 1, 2, 2), batch_size=2)
            assert torch.is_autocast_enabled("cpu")
        assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == (True, True)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
    assert net.seen == [(False, False, False, torch.float32)] * 3
    assert feats.dtype == torch.float32 and feats.shape == (5, 3)
