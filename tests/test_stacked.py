"""Stacked MNIST: the data set (shape, labels, determinism) and its mode metric against closed forms."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from gan_lab.compose import check_settings
from gan_lab.data.base import DataSpec, TensorSource
from gan_lab.data.images import mnist5k
from gan_lab.data.stacked import mode_of, stacked_mnist
from gan_lab.errors import ConfigError
from gan_lab.metrics.classifier import cache_path
from gan_lab.metrics.features import ImageMetrics, class_coverage, coverage_from_logits
from gan_lab.metrics.stacked import PerChannel
from gan_lab.train import train
from tests.conftest import compose_cfg

LOG_1000 = math.log(1000)


@pytest.fixture(scope="module")
def stacked():
    return stacked_mnist(size=300, holdout=20, seed=0)


def _find(channels: torch.Tensor, pool: torch.Tensor) -> torch.Tensor:
    """The index in ``pool`` (M, 1, H, W) of each of ``channels`` (N, H, W), which must each be one of them."""
    index = torch.cdist(channels.flatten(1), pool.flatten(1)).argmin(dim=1)
    assert torch.equal(pool[index, 0], channels), "a channel is not one of the digits"
    return index


def test_stacked_images_are_three_training_digits_labelled_by_their_classes(stacked):
    digits = stacked.channel_source
    assert stacked.spec.shape == (3, 28, 28) and stacked.spec.eval_samples == 26_000
    assert stacked.data.shape == (300, 3, 28, 28) and stacked.data.dtype == torch.float32
    assert stacked.data.min() >= -1 and stacked.data.max() <= 1
    assert digits.spec.name == "mnist5k" and len(digits) == 4500  # mnist5k's training digits, its classifier's
    index = _find(stacked.data[:50].flatten(0, 1), digits.data).view(50, 3)
    classes = digits.labels[index]  # (50, 3): R, G, B
    assert stacked.labels[:50].tolist() == (100 * classes[:, 0] + 10 * classes[:, 1] + classes[:, 2]).tolist()
    assert 0 <= stacked.labels.min() and stacked.labels.max() <= 999
    assert stacked.heldout.shape == (20, 3, 28, 28)
    _find(stacked.heldout.flatten(0, 1), digits.heldout)  # held-out images stack held-out digits only


def test_mode_encoding_puts_red_first():
    classes = torch.tensor([[1, 2, 3], [9, 0, 0], [0, 0, 7], [9, 9, 9]])
    assert mode_of(classes).tolist() == [123, 900, 7, 999]


def test_stacked_mnist_is_fixed_by_its_seed(stacked):
    again = stacked_mnist(size=300, holdout=20, seed=0)
    assert torch.equal(again.data, stacked.data) and torch.equal(again.labels, stacked.labels)
    assert torch.equal(again.heldout, stacked.heldout)
    no_holdout = stacked_mnist(size=300, holdout=0, seed=0)
    assert torch.equal(no_holdout.data, stacked.data) and no_holdout.heldout is None  # the holdout moves nothing
    other = stacked_mnist(size=300, holdout=20, seed=1)
    assert (other.labels != stacked.labels).float().mean() > 0.9


@pytest.mark.parametrize(("key", "value"), [("dataset.size", 1), ("dataset.holdout", -1), ("dataset.seed", "true")])
def test_bad_settings_are_refused_by_name(key, value):
    with pytest.raises(ConfigError, match=key):
        check_settings(compose_cfg("dataset=stacked_mnist", f"{key}={value}"))


# ---- the mode metric -------------------------------------------------------------------------

class ReadsTheGreyLevel(nn.Module):
    """A stand-in 1-channel classifier: a constant image of grey level v is of class round(4.5·(v + 1))
    (v = 2c/9 − 1 for class c), with certainty; its two features are the mean and the class."""

    num_classes, num_features = 10, 2

    def __init__(self):
        super().__init__()
        self.unused = nn.Linear(1, 1)  # extractors have parameters (their device is read from them)

    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        level = x.mean(dim=(1, 2, 3))
        cls = torch.round(4.5 * (level + 1)).long().clamp(0, 9)
        return torch.stack([level, cls.float()], 1), 30.0 * nn.functional.one_hot(cls, 10).float()


def _constant_images(triples: list[tuple[int, int, int]]) -> torch.Tensor:
    levels = torch.tensor(triples, dtype=torch.float32) * 2 / 9 - 1  # (N, 3)
    return levels[:, :, None, None].expand(-1, -1, 28, 28).contiguous()


def test_per_channel_logits_are_the_joint_log_probabilities_of_the_triples():
    net = PerChannel(ReadsTheGreyLevel())
    feats, logits = net.features_and_logits(_constant_images([(1, 2, 3), (9, 0, 4)]))
    assert feats.shape == (2, 6) and logits.shape == (2, 1000)
    assert feats[:, 1::2].tolist() == [[1, 2, 3], [9, 0, 4]]  # R, G, B features side by side
    torch.testing.assert_close(logits.exp().sum(1), torch.ones(2))
    assert logits.argmax(1).tolist() == [123, 904]


def test_modes_and_reverse_kl_of_a_hand_histogram(tmp_path):
    # q = (0.6 on 123, 0.2 on 904, 0.2 on 0): KL(q ‖ uniform over 1000) = Σ q log(1000 q)
    fake = _constant_images([(1, 2, 3)] * 6 + [(9, 0, 4)] * 2 + [(0, 0, 0)] * 2)
    real = TensorSource(_constant_images([(c, c, c) for c in range(10)]), DataSpec("stub", (3, 28, 28), "image"))
    metrics = ImageMetrics(real, PerChannel(ReadsTheGreyLevel()), "grey_per_channel", cache_dir=tmp_path,
                           kid_subsets=2, kid_subset_size=5)
    out = metrics.compute(fake)
    expected = 0.6 * math.log(600) + 0.2 * math.log(200) + 0.2 * math.log(200)
    assert out["stacked_modes_10_grey_per_channel"] == 3
    torch.testing.assert_close(out["stacked_reverse_kl_10_grey_per_channel"], expected, rtol=0, atol=1e-12)
    assert "classes_covered_10_grey_per_channel" not in out  # the same count, under the literature's name only
    assert "Σ q log(1000 q)" in metrics.describe(10)


@pytest.fixture(scope="module")
def stacked_metrics(stacked):
    return ImageMetrics.per_channel(stacked, stacked.channel_source)


@pytest.fixture(scope="module")
def mnist_per_channel(stacked_metrics):
    return stacked_metrics.classifier


def test_the_mode_classifier_is_the_one_fid_on_mnist5k_uses(stacked_metrics):
    assert stacked_metrics.extractor == "mnist5k_classifier_per_channel"
    assert stacked_metrics.classifier_info["path"] == str(cache_path(mnist5k()))  # the same cached weights


def _stack_classes(digits: TensorSource, triples: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Images (N, 3, 28, 28) whose channels are random training digits of the classes ``triples`` (N, 3)."""
    by_class = [torch.nonzero(digits.labels == c).view(-1) for c in range(10)]
    picks = torch.stack([by_class[c][torch.randint(len(by_class[c]), (), generator=generator)]
                         for c in triples.view(-1).tolist()])
    return digits.data[picks, 0].view(-1, 3, 28, 28)


def test_every_triple_once_covers_the_modes_up_to_the_classifiers_errors(stacked, mnist_per_channel):
    """Closed form: 1,000 modes, KL 0. The classifier reads ~98 % of these (training) digits right, so a
    fraction e ≈ 5 % of the images (≤ 10 % allowed) lands on another triple: about 1000·e modes are lost
    (a lost triple has no other image) and as many doubled, KL ≈ 2e·log 2 ≈ 1.4 e, in [0, 0.15]."""
    triples = torch.cartesian_prod(*[torch.arange(10)] * 3)  # (1000, 3), m = 100·R + 10·G + B in order
    images = _stack_classes(stacked.channel_source, triples, torch.Generator().manual_seed(0))
    _, logits = mnist_per_channel.features_and_logits(images)
    assert (logits.argmax(1) == mode_of(triples)).float().mean().item() == pytest.approx(0.95, abs=0.05)
    out = coverage_from_logits(logits, 1000)
    assert 900 <= out["classes_covered"] <= 1000
    assert out["class_kl_to_uniform"] == pytest.approx(0.075, abs=0.075)


def test_one_triple_is_one_mode_up_to_the_classifiers_errors(stacked, mnist_per_channel):
    """Closed form: 1 mode, KL = log 1000. 100 images of (3, 7, 1) from different digits, a fraction e
    misread (≤ 10 %) onto other modes: KL ≥ (1 − e) log(1000 (1 − e)) + e log 10 ≈ log 1000 − 0.55."""
    images = _stack_classes(stacked.channel_source, torch.tensor([[3, 7, 1]] * 100), torch.Generator().manual_seed(1))
    out = class_coverage(images, mnist_per_channel)
    assert 1 <= out["classes_covered"] <= 10
    assert out["class_kl_to_uniform"] == pytest.approx(LOG_1000 - 0.3, abs=0.3)


def test_a_dcgan_run_on_stacked_mnist_writes_the_mode_metric(tmp_path):
    cfg = compose_cfg("debug=tiny", "model=dcgan", "model.width=8", "dataset=stacked_mnist", "dataset.size=500",
                      "dataset.holdout=40", "logger=csv", "eval.at_end=true", "eval.samples=60", "eval.every=4",
                      "eval.every_samples=40")
    summary = train(cfg, tmp_path)
    tag = "mnist5k_classifier_per_channel"
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["evaluation"]["samples"] == 60 and (tmp_path / "checkpoints" / "last.ckpt").is_file()
    m = written["metrics"]
    assert 1 <= m[f"val/stacked_modes_60_{tag}"] <= 60
    assert 0 <= m[f"val/stacked_reverse_kl_60_{tag}"] <= LOG_1000 + 1e-9
    assert {f"val/{k}_60_{tag}" for k in ("fid", "kid", "is", "precision")} <= set(m) and "val/kde_loglik_60" in m
    assert "stacked_reverse_kl = KL(q ‖ uniform)" in written["protocols"][f"val/*_60_{tag}"]
    rows = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows if f"val/stacked_modes_40_{tag}" in r] == [4]  # measured in training
    assert f"val/stacked_modes_40_{tag}" in (tmp_path / "logs" / "csv" / "metrics.csv").read_text()
    assert summary["status"] == "finished"
