"""The lab's FID Inception (gan_lab/metrics/inception.py) against torch-fidelity's, on the same weights file.

An external check, kept: the lab's network with random weights (batch norms calibrated, tests/test_inception.py)
is saved in torch-fidelity's format and loaded into both; their 2048-d features and bias-free logits, and FID
through each library's own arithmetic, must agree. Runs where torch-fidelity and torchvision import, on a GPU:
``pytest -m gpu tests/test_fidelity.py`` (torch-fidelity 0.4.0: features and logits agreed to 6e-7 relative).
"""

from __future__ import annotations

import pytest
import torch

from gan_lab.data.base import DataSpec, TensorSource
from gan_lab.metrics.features import ImageMetrics
from gan_lab.metrics.inception import WEIGHTS_FILE, load_inception

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]
torch_fidelity = pytest.importorskip("torch_fidelity")
pytest.importorskip("torchvision")


@pytest.fixture(autouse=True)
def _no_tf32():
    """Full fp32 convolutions and matmuls on both sides: TF32 would round their inputs to 10 bits."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    from tests.test_inception import _stand_in

    path = tmp_path_factory.mktemp("fidelity") / WEIGHTS_FILE
    torch.save(_stand_in(torch.rand(16, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1), path)
    return path


def _images(n: int, channels: int, side: int, high: int = 256, seed: int = 0) -> torch.Tensor:
    """8-bit images (n, C, side, side), uint8 as torch-fidelity takes them."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, high, (n, channels, side, side), generator=g, dtype=torch.uint8)


def _signed(images: torch.Tensor) -> torch.Tensor:
    """uint8 → [-1, 1] as the lab takes them; its 8-bit quantisation gives the same integers back."""
    return images.float() / 127.5 - 1.0


def _relative(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    return float((ours.double() - theirs.double()).norm() / theirs.double().norm())


class _Dataset(torch.utils.data.Dataset):
    def __init__(self, images: torch.Tensor):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


@pytest.mark.parametrize(("channels", "side"), [(1, 28), (3, 32), (3, 64)], ids=["grey28", "rgb32", "rgb64"])
def test_features_and_logits_match_torch_fidelity(weights, channels, side):
    ours = load_inception(weights).cuda()
    theirs = torch_fidelity.FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                                        feature_extractor_weights_path=str(weights)).cuda()
    images = _images(16, channels, side, seed=side)
    with torch.no_grad():
        feats, logits = ours.features_and_logits(_signed(images).cuda())
        ref_feats, ref_logits = theirs(images.expand(-1, 3, -1, -1).contiguous().cuda())  # grey: RGB, equal channels
    assert feats.shape == ref_feats.shape == (16, 2048) and logits.shape == ref_logits.shape == (16, 1008)
    assert float(ref_feats.std()) > 0
    assert _relative(feats, ref_feats) < 1e-5 and _relative(logits, ref_logits) < 1e-5


def test_fid_matches_torch_fidelity(weights, tmp_path):
    real, fake = _images(2000, 3, 32, seed=1), _images(2000, 3, 32, high=128, seed=2)  # fakes: darker noise
    theirs = torch_fidelity.calculate_metrics(input1=_Dataset(fake), input2=_Dataset(real), cuda=True, fid=True,
                                              feature_extractor_weights_path=str(weights), batch_size=200,
                                              cache=False, verbose=False)[torch_fidelity.KEY_METRIC_FID]
    source = TensorSource(_signed(real), DataSpec("noise", (3, 32, 32), "image"))
    metrics = ImageMetrics.inception(source, weights, cache_dir=tmp_path, kid_subsets=2, kid_subset_size=100)
    ours = metrics.compute(_signed(fake))["fid_2k_inception"]
    assert theirs > 1.0 and ours == pytest.approx(theirs, rel=1e-4)
