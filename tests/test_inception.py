"""The FID Inception path without a download: our InceptionV3 graph, torch-fidelity's file format, and
FID/KID/IS through it, on a stand-in weights file (the real architecture with random weights whose batch
norm statistics are calibrated on images, saved as a plain state dict where torch-fidelity puts its file).
"""

from __future__ import annotations

import math
import pickle

import pytest
import torch

from gan_lab.data.base import DataSpec, TensorSource
from gan_lab.errors import ConfigError
from gan_lab.metrics import features as feat_mod
from gan_lab.metrics.inception import (
    INPUT_SIZE,
    WEIGHTS_FILE,
    FIDInceptionV3,
    default_weights_path,
    find_weights,
    load_inception,
    resize_bilinear_tf1,
)


def _tf1_reference(x: torch.Tensor, size: int) -> torch.Tensor:
    """TF 1.x resize_bilinear(align_corners=False), pixel by pixel: in(i·H/size, j·W/size), edge-clamped."""
    n, c, h, w = x.shape
    out = torch.empty(n, c, size, size, dtype=torch.float64)
    for i in range(size):
        sy = i * h / size
        y0 = math.floor(sy)
        y1, wy = min(y0 + 1, h - 1), sy - y0
        for j in range(size):
            sx = j * w / size
            x0 = math.floor(sx)
            x1, wx = min(x0 + 1, w - 1), sx - x0
            top = (1 - wx) * x[:, :, y0, x0] + wx * x[:, :, y0, x1]
            bottom = (1 - wx) * x[:, :, y1, x0] + wx * x[:, :, y1, x1]
            out[:, :, i, j] = (1 - wy) * top + wy * bottom
    return out


@pytest.mark.parametrize("h, w, size", [(5, 5, 7), (8, 6, 13), (28, 28, 40), (9, 9, 4)])
def test_tf1_resize_matches_the_pixelwise_rule(h, w, size):
    x = torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(h * w), dtype=torch.float64)
    torch.testing.assert_close(resize_bilinear_tf1(x, size), _tf1_reference(x, size), rtol=0, atol=1e-6)


def test_tf1_resize_closed_forms():
    ramp = torch.arange(4.0).view(1, 1, 1, 4).expand(1, 1, 4, 4)
    # src = j·4/8: 0, .5, 1, …, 3, then clamped at the last pixel (no half-pixel shift)
    torch.testing.assert_close(resize_bilinear_tf1(ramp, 8)[0, 0, 0], torch.tensor([0, .5, 1, 1.5, 2, 2.5, 3, 3.0]))
    const = torch.full((1, 1, 28, 28), 0.3)
    torch.testing.assert_close(resize_bilinear_tf1(const, INPUT_SIZE), torch.full((1, 1, 299, 299), 0.3))
    half_pixel = torch.nn.functional.interpolate(ramp, size=8, mode="bilinear", align_corners=False)
    assert not torch.allclose(half_pixel, resize_bilinear_tf1(ramp, 8))  # TF1's rule is not torch's default


def test_preprocess_quantises_to_8_bits_and_repeats_grey():
    x = torch.tensor([-1.0, 1.0, 0.0, 0.001]).view(1, 1, 2, 2)
    out = FIDInceptionV3.preprocess(x)
    assert out.shape == (1, 3, INPUT_SIZE, INPUT_SIZE)
    # −1 → 0 → (0 − 128)/128 = −1;  1 → 255 → 127/128;  0 → round(127.5) = 128 → 0 (and 0.001 too)
    corners = out[0, 0, [0, 0, 150, 150], [0, 150, 0, 150]]
    torch.testing.assert_close(corners, torch.tensor([-1.0, 127 / 128, 0.0, 0.0]))
    assert torch.equal(out[0, 0], out[0, 1]) and torch.equal(out[0, 1], out[0, 2])
    with pytest.raises(ConfigError, match="1 or 3 channels"):
        FIDInceptionV3.preprocess(torch.zeros(1, 2, 8, 8))


def _stand_in(images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Random InceptionV3 weights whose batch norms are calibrated on ``images`` (cumulative averages),
    so activations keep their scale through the 94 layers: a state dict in torch-fidelity's format."""
    torch.manual_seed(0)
    net = FIDInceptionV3()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # cumulative moving average over the calibration pass
    net.train()
    with torch.no_grad():
        net.pool_features(net.preprocess(images))
    return net.state_dict()


@pytest.fixture(scope="module")
def digit_images():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.from_numpy(bunch.data).float().view(-1, 1, 8, 8) / 8.0 - 1.0
    return images, torch.from_numpy(bunch.target)


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory, digit_images):
    home = tmp_path_factory.mktemp("torch_home")
    path = home / "hub" / "checkpoints" / WEIGHTS_FILE
    path.parent.mkdir(parents=True)
    torch.save(_stand_in(digit_images[0][:16]), path)
    return home, path


def test_weights_are_found_where_torch_fidelity_caches_them(weights_file, monkeypatch, tmp_path):
    home, path = weights_file
    monkeypatch.setenv("TORCH_HOME", str(home))
    assert default_weights_path() == path and find_weights() == path
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert find_weights() is None
    assert find_weights(str(path)) == path  # an explicit path wins
    with pytest.raises(ConfigError, match="eval.inception_weights"):
        find_weights(str(tmp_path / "nope.pth"))


def test_loads_the_file_key_for_key(weights_file):
    _, path = weights_file
    state = torch.load(path, weights_only=True)
    assert len(state) > 450 and all(not k.startswith("module.") for k in state)
    net = load_inception(path)
    for key, value in net.state_dict().items():
        torch.testing.assert_close(value, state[key])
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    assert sum(p.numel() for p in net.parameters()) == 23_850_960  # pytorch-fid / torch-fidelity's graph


def test_wrong_files_are_named_and_refused(weights_file, tmp_path):
    _, path = weights_file
    state = torch.load(path, weights_only=True)
    broken = dict(state)
    broken.pop("Mixed_7c.branch_pool.conv.weight")
    broken["fc.weight"] = broken["fc.weight"][:1000]
    torch.save(broken, tmp_path / "broken.pth")
    with pytest.raises(ConfigError, match="missing: Mixed_7c.branch_pool.conv.weight.*wrong shape: fc.weight"):
        load_inception(tmp_path / "broken.pth")
    (tmp_path / "truncated.pth").write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ConfigError, match="eval.inception_weights.*torch.load"):
        load_inception(tmp_path / "truncated.pth")


class _Exploit:
    def __reduce__(self):
        import os

        return (os.system, ("touch EXPLOITED",))


def test_a_pickle_that_runs_code_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open(tmp_path / "evil.pth", "wb") as f:
        pickle.dump({"fc.weight": _Exploit()}, f)
    with pytest.raises(ConfigError, match="weights_only"):
        load_inception(tmp_path / "evil.pth")
    assert not (tmp_path / "EXPLOITED").exists()


def test_features_and_logits(weights_file, digit_images):
    net = load_inception(weights_file[1])
    images = digit_images[0][:3]
    with torch.no_grad():
        feats, logits = net.features_and_logits(images)
        rgb_feats, _ = net.features_and_logits(images.expand(-1, 3, -1, -1))
    assert feats.shape == (3, 2048) and logits.shape == (3, 1008)
    assert torch.isfinite(feats).all() and feats.std() > 0 and (feats >= 0).all()  # after ReLU and the average
    torch.testing.assert_close(rgb_feats, feats)  # grey images are RGB with equal channels
    torch.testing.assert_close(logits, feats @ net.fc.weight.T)  # no bias: torch-fidelity's logits_unbiased
    assert net.num_features == 2048 and not net.counts_classes


def test_fid_kid_is_through_inception(weights_file, digit_images, tmp_path, monkeypatch):
    """The whole path: weights found in $TORCH_HOME, metrics named ``*_inception``, FID of real images
    against themselves ≈ 0 and growing with noise, and real statistics cached on disk."""
    home, _ = weights_file
    monkeypatch.setenv("TORCH_HOME", str(home))
    real = digit_images[0][:24]
    source = TensorSource(real, DataSpec("digits", (1, 8, 8), "image"))  # unlabelled: Inception only
    (inception,) = feat_mod.image_metric_suites(source, "auto", cache_dir=tmp_path, kid_subsets=3,
                                                kid_subset_size=12)
    assert inception.extractor == "inception" and inception.n_real == 24
    same = inception.compute(real)
    assert same["fid_24_inception"] == pytest.approx(0.0, abs=1e-3)
    assert abs(same["kid_24_inception"]) <= 3 * same["kid_std_24_inception"]  # unbiased MMD²: 0 within its noise
    assert "classes_covered_24_inception" not in same  # ImageNet's 1008 classes say nothing about digits
    g = torch.Generator().manual_seed(0)
    noisy = [inception.compute((real + s * torch.randn(24, 1, 8, 8, generator=g)).clamp(-1, 1)) for s in (0.25, 1.0)]
    fids = [m["fid_24_inception"] for m in noisy]
    assert 0.0 < fids[0] < fids[1], fids
    assert noisy[1]["kid_24_inception"] > noisy[0]["kid_24_inception"]
    assert inception.real_stats_path.is_file() and "inception" in inception.real_stats_path.name
    assert "2048-d pool features" in inception.describe(24)


def test_inception_settings(weights_file, digit_images, tmp_path, monkeypatch):
    images, labels = digit_images
    source = TensorSource(images[:40], DataSpec("digits", (1, 8, 8), "image"), labels[:40])
    unlabelled = TensorSource(images[:40], DataSpec("faces", (1, 8, 8), "image"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # no weights there
    assert [s.extractor for s in feat_mod.image_metric_suites(source, "auto", cache_dir=tmp_path)] == \
        ["digits_classifier"]
    assert feat_mod.image_metric_suites(unlabelled, "auto", cache_dir=tmp_path) == []
    with pytest.raises(ConfigError, match="eval.inception.*not at .*" + WEIGHTS_FILE):
        feat_mod.image_metric_suites(source, "true", cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="eval.inception='maybe'"):
        feat_mod.image_metric_suites(source, "maybe", cache_dir=tmp_path)
    monkeypatch.setenv("TORCH_HOME", str(weights_file[0]))
    # on a CPU, auto skips the slow network unless the caller allows it; true always uses it
    assert [s.extractor for s in feat_mod.image_metric_suites(unlabelled, "auto", allow_cpu_inception=False,
                                                               cache_dir=tmp_path)] == []
    assert [s.extractor for s in feat_mod.image_metric_suites(unlabelled, "true", allow_cpu_inception=False,
                                                               cache_dir=tmp_path)] == ["inception"]
    assert feat_mod.image_metric_suites(source, "false", cache_dir=tmp_path)[0].extractor == "digits_classifier"
