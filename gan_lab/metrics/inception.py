"""The FID Inception network (TF 2015-12-05 InceptionV3 graph), reading torch-fidelity's weights file.

FID, KID and IS "with Inception features" mean one specific network: the TensorFlow InceptionV3 graph of
2015-12-05 that Heusel et al. (2017) used, with its quirks (TF1 bilinear resize to 299×299, average pools
that exclude padding, a max pool in the last block, 1008 logits). pytorch-fid and torch-fidelity port it;
torchmetrics runs torch-fidelity's port, which cannot be imported here (it needs torchvision). This module
is our own implementation of the same graph, whose parameter names follow torch-fidelity's so that its
weights file loads unchanged:

    $TORCH_HOME/hub/checkpoints/weights-inception-2015-12-05-6726825d.pth      (torch.hub.get_dir())

or any path given as ``eval.inception_weights``. Nothing is downloaded: an offline user places the file.
The file is read with ``torch.load(weights_only=True)`` (no arbitrary unpickling) and must match the
architecture key for key and shape for shape, else a :class:`~gan_lab.errors.ConfigError` names the file
and the first mismatches.

Input convention (as in every FID implementation): images are quantised to 8 bits first — generated
images in [-1, 1] become the integers round((x + 1)·127.5) in [0, 255] a saved PNG would hold — grey
images are repeated to 3 channels, resized to 299×299 with TF1's bilinear rule (source = dest·in/out,
no half-pixel offset), and mapped to [-1, 1] by (x − 128)/128. Features: the 2048-d average pool
(``fid``/``kid``/precision-recall), logits: ``pool @ fc.weight.T`` (torch-fidelity's
``logits_unbiased``, which its Inception Score uses).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from gan_lab.errors import ConfigError

WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
INPUT_SIZE = 299


def default_weights_path() -> Path:
    """Where torch-fidelity caches the weights: ``$TORCH_HOME/hub/checkpoints/`` (``~/.cache/torch`` by default)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILE


def find_weights(path: str | os.PathLike | None = None) -> Path | None:
    """The weights file to use: ``path`` if given (it must exist), else the torch hub cache's, else None."""
    if path not in (None, ""):
        p = Path(path).expanduser()
        if not p.is_file():
            raise ConfigError("eval.inception_weights", str(path), f"an existing file ({WEIGHTS_FILE} from "
                              "torch-fidelity's v0.2.0 release)", f"{p} does not exist")
        return p
    p = default_weights_path()
    return p if p.is_file() else None


# ---- TF1 bilinear resize -------------------------------------------------------------------------

def _tf1_axis(n_in: int, n_out: int, device, dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source indices (lo, hi) and weights of the upper neighbour for one axis: src = dst·n_in/n_out."""
    src = torch.arange(n_out, device=device, dtype=dtype) * torch.tensor(n_in / n_out, dtype=torch.float32)
    lo = src.long()
    hi = (lo + 1).clamp_max(n_in - 1)
    return lo, hi, src - lo.to(dtype)


def resize_bilinear_tf1(x: torch.Tensor, size: int) -> torch.Tensor:
    """``tf.image.resize_bilinear(align_corners=False)`` of TF 1.x, which the FID graph starts with.

    out[i, j] interpolates the input at (i·H/size, j·W/size), clamping the upper neighbour at the edge;
    unlike ``F.interpolate(mode="bilinear")`` there is no half-pixel shift.
    """
    if x.dim() != 4 or not torch.is_floating_point(x):
        raise ValueError(f"expected a float batch (N, C, H, W), got {tuple(x.shape)} {x.dtype}")
    ylo, yhi, dy = _tf1_axis(x.shape[2], size, x.device, x.dtype)
    xlo, xhi, dx = _tf1_axis(x.shape[3], size, x.device, x.dtype)
    top, bottom = x.index_select(2, ylo), x.index_select(2, yhi)
    rows = top + (bottom - top) * dy.view(1, 1, -1, 1)
    left, right = rows.index_select(3, xlo), rows.index_select(3, xhi)
    return left + (right - left) * dx.view(1, 1, 1, -1)


# ---- the graph ----------------------------------------------------------------------------------

class BasicConv2d(nn.Module):
    """conv (no bias) → batch norm (eps 1e-3, TF's) → ReLU."""

    def __init__(self, c_in: int, c_out: int, **conv):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, bias=False, **conv)
        self.bn = nn.BatchNorm2d(c_out, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg3(x: torch.Tensor) -> torch.Tensor:
    """TF's 3×3 average pool, stride 1, 'SAME' padding that does not count the padded zeros."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    def __init__(self, c_in: int, pool_features: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(c_in, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(c_in, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(c_in, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(c_in, pool_features, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1x1(x),
                          self.branch5x5_2(self.branch5x5_1(x)),
                          self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                          self.branch_pool(_avg3(x))], 1)


class InceptionB(nn.Module):
    def __init__(self, c_in: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(c_in, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(c_in, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch3x3(x),
                          self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                          F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionC(nn.Module):
    def __init__(self, c_in: int, channels_7x7: int):
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(c_in, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(c_in, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(c_in, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(c_in, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dbl = x
        for i in range(1, 6):
            dbl = getattr(self, f"branch7x7dbl_{i}")(dbl)
        return torch.cat([self.branch1x1(x),
                          self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x))),
                          dbl,
                          self.branch_pool(_avg3(x))], 1)


class InceptionD(nn.Module):
    def __init__(self, c_in: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(c_in, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(c_in, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), b7, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionE(nn.Module):
    """Mixed_7b (average pool branch) and Mixed_7c (``max_pool``: the TF graph's max pool there)."""

    def __init__(self, c_in: int, max_pool: bool):
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = BasicConv2d(c_in, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(c_in, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(c_in, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(c_in, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        dbl = torch.cat([self.branch3x3dbl_3a(dbl), self.branch3x3dbl_3b(dbl)], 1)
        pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1) if self.max_pool else _avg3(x)
        return torch.cat([self.branch1x1(x), b3, dbl, self.branch_pool(pooled)], 1)


class FIDInceptionV3(nn.Module):
    """The FID InceptionV3 as a feature extractor: images in [-1, 1] → (2048 pool features, 1008 logits).

    Offers what :class:`~gan_lab.metrics.features.ImageMetrics` asks of an extractor:
    ``features_and_logits``, ``num_features`` and ``num_classes``.
    """

    num_features = 2048
    num_classes = 1008
    counts_classes = False  # its 1008 classes are ImageNet's: no class coverage of the data set's classes
    description = "the 2048-d pool features and the 1008 bias-free logits (8-bit input, TF1 resize to 299²)"

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, max_pool=False)
        self.Mixed_7c = InceptionE(2048, max_pool=True)
        self.fc = nn.Linear(2048, 1008)
        self.requires_grad_(False)
        self.eval()

    @staticmethod
    def preprocess(images: torch.Tensor) -> torch.Tensor:
        """[-1, 1] images (N, 1|3, H, W) → the graph's input: 8-bit values, 3 channels, 299², (x − 128)/128."""
        if images.dim() != 4 or images.shape[1] not in (1, 3):
            raise ConfigError("images", tuple(images.shape), "a batch (N, C, H, W) with 1 or 3 channels",
                              "the Inception network reads grey or RGB images")
        x = ((images.float() + 1.0) * 127.5).round().clamp(0.0, 255.0)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return (resize_bilinear_tf1(x, INPUT_SIZE) - 128.0) / 128.0

    def pool_features(self, x: torch.Tensor) -> torch.Tensor:
        """The graph from its (preprocessed) 299×299 input to the 2048-d average pool."""
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{name}")(x)
        return x.mean(dim=(2, 3))

    def features_and_logits(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pool = self.pool_features(self.preprocess(images))
        return pool, pool @ self.fc.weight.T  # logits without the bias: torch-fidelity's logits_unbiased

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.features_and_logits(images)[0]


def load_inception(path: str | os.PathLike) -> FIDInceptionV3:
    """The network with the weights in ``path`` (torch-fidelity's file format: a plain state dict)."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated, not a torch file, or a pickle asking for arbitrary objects
        raise ConfigError("eval.inception_weights", str(path), f"a readable state dict ({WEIGHTS_FILE})",
                          f"torch.load(weights_only=True) failed: {type(err).__name__}: {err}") from err
    if not isinstance(state, dict):
        raise ConfigError("eval.inception_weights", str(path), f"a state dict ({WEIGHTS_FILE})",
                          f"the file holds a {type(state).__name__}")
    net = FIDInceptionV3()
    expected = net.state_dict()
    optional = {k for k in expected if k.endswith("num_batches_tracked")}  # unused in eval mode
    missing = sorted(set(expected) - set(state) - optional)
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if tuple(state[k].shape) != tuple(expected[k].shape))
    if missing or unexpected or wrong:
        parts = [f"{label}: {', '.join(keys[:3])}{' …' if len(keys) > 3 else ''} ({len(keys)})"
                 for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if keys]
        raise ConfigError("eval.inception_weights", str(path), "the FID InceptionV3 weights of torch-fidelity "
                          f"({WEIGHTS_FILE})", "the file does not match the network: " + "; ".join(parts))
    net.load_state_dict(state, strict=False)
    return net.eval()
