"""A small CNN trained on a labelled 1-channel image set: the domain feature extractor for FID/KID/IS.

Inception weights cannot be downloaded here, so image metrics are computed on the features of this
"domain classifier" instead (docs/science.md, Evaluation): its 128-d penultimate layer for FID/KID, its
class logits for the Inception Score and the class-coverage (mode-collapse) count. Numbers computed
with it are comparable only with numbers computed with the *same* trained weights: the weights are
cached on disk, keyed by data set name and a hash of the training settings, and every metric name
carries the extractor's name.

The network works for any image side ≥ 8 (MNIST 28×28, scikit-learn digits 8×8): three conv blocks,
two 2× max-pools, then an adaptive pool to 2×2, so the layer shapes do not depend on the side.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import os
import time
import warnings
import weakref
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gan_lab.errors import ConfigError, check_int, check_range

VERSION = 1  # bump when the architecture or the training recipe changes: old caches are then ignored
FEATURE_DIM = 128


class DomainClassifier(nn.Module):
    """[Conv3×3 ‖ BN ‖ ReLU] ×3 with two 2× max-pools, 2×2 adaptive average pool, FC → 128, FC → K.

    Widths ``w, 2w, 4w``; with ``w = 16`` about 60k parameters. Inputs are images in [-1, 1] of shape
    (N, C, H, W) with H, W ≥ 8: 28×28 ends on a 7×7 map, 8×8 on 2×2, both pooled to 2×2, so the same
    layers serve every side. ``features`` is the 128-d penultimate layer (after its ReLU), ``forward``
    the K class logits; ``features`` are divided by ``feature_scale`` (a buffer, saved with the
    weights). Use it in eval mode for metrics (``load_or_train`` returns it so): batch norm
    then uses its running statistics and an image's features do not depend on its batch.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 16):
        super().__init__()
        self.in_channels, self.num_classes = in_channels, num_classes
        self.num_features = FEATURE_DIM  # read by torchmetrics' FID instead of a dummy 3×299×299 forward
        w = width

        def block(c_in: int, c_out: int) -> list[nn.Module]:
            return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]

        self.body = nn.Sequential(*block(in_channels, w), nn.MaxPool2d(2), *block(w, 2 * w), nn.MaxPool2d(2),
                                  *block(2 * w, 4 * w), nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.fc = nn.Linear(16 * w, FEATURE_DIM)
        self.head = nn.Linear(FEATURE_DIM, num_classes)
        # Set after training to the RMS of the training images' activations, so that features have
        # unit mean square per dimension: KID's cubic kernel (x·y/d + 1)³ then sees O(1) values, as
        # with Inception features, instead of values in the thousands.
        self.register_buffer("feature_scale", torch.ones(()))

    def penultimate(self, x: torch.Tensor) -> torch.Tensor:
        """The 128-d activations the head reads, unscaled."""
        return F.relu(self.fc(self.body(x)))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) images in [-1, 1] → (N, 128) penultimate activations / ``feature_scale``."""
        return self.penultimate(x) / self.feature_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) → (N, K) class logits."""
        return self.head(self.penultimate(x))

    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.penultimate(x)
        return h / self.feature_scale, self.head(h)


def default_cache_dir() -> Path:
    """``$GAN_LAB_CACHE`` if set, else ``~/.cache/gan_lab``."""
    env = os.environ.get("GAN_LAB_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "gan_lab"


STREAMED_BYTES = 1 << 30  # a streamed set's classifier trains on as many of its images as fit here as float32
_DECODED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # streamed source -> {budget: its decoded set}


def labelled_in_memory(source, budget: int = STREAMED_BYTES):
    """What the domain classifier of a labelled ``source`` trains on: the source itself when its images are in memory;
    for a streamed one (``dataset=zip dataset.in_memory=false``) all of its images, or when they pass ``budget``
    bytes as float32 a fixed draw of as many as fit (sorted, seed 0), decoded once with their labels. Kept per source
    for the life of the process: a run builds its metrics twice (during training and at the end), and the cache key of
    the classifier is a fingerprint of these images, so they are needed even when its weights are cached."""
    from gan_lab.data.base import TensorSource, sample_positions

    if getattr(source, "data", None) is not None or getattr(source, "labels", None) is None:
        return source
    decoded = _DECODED.setdefault(source, {})
    if budget not in decoded:
        n = max(2, min(len(source), budget // (4 * math.prod(source.spec.shape))))
        positions = sample_positions(len(source), n, torch.Generator().manual_seed(0)).sort().values
        decoded[budget] = TensorSource(source.__getitems__(positions.tolist()), source.spec, source.labels[positions])
    return decoded[budget]


def _labelled(source) -> tuple[torch.Tensor, torch.Tensor, str]:
    name = getattr(getattr(source, "spec", None), "name", type(source).__name__)
    data, labels = getattr(source, "data", None), getattr(source, "labels", None)
    if data is None or labels is None:
        raise ConfigError("dataset", name, "a labelled image set (a TensorSource with .labels)",
                          "The domain classifier behind FID/KID/IS is trained on the data set's class labels.")
    if data.dim() != 4 or min(data.shape[-2:]) < 8:
        raise ConfigError("dataset", name, "images (N, C, H, W) with sides >= 8",
                          f"got data of shape {tuple(data.shape)}")
    labels = torch.as_tensor(labels).long().view(-1)
    if labels.numel() != data.shape[0] or labels.min() < 0:
        raise ConfigError("dataset", name, "one non-negative integer label per image")
    return data, labels, name


def _fingerprint(data: torch.Tensor, labels: torch.Tensor) -> str:
    """A cheap content hash, so that a changed data set under the same name does not reuse weights."""
    h = hashlib.sha1()
    h.update(str(tuple(data.shape)).encode())
    h.update(data[:: max(1, data.shape[0] // 256)].float().contiguous().numpy().tobytes())
    h.update(labels.contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


def _shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by an integer offset in [-max_shift, max_shift]², filling with -1 (black)."""
    if max_shift <= 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4, value=-1.0)
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h)[None, :])[:, None, :, None]  # (N, 1, H, 1)
    cols = (dx[:, None] + torch.arange(w)[None, :])[:, None, None, :]  # (N, 1, 1, W)
    idx_n = torch.arange(n)[:, None, None, None]
    return padded[idx_n, torch.arange(x.shape[1])[None, :, None, None], rows, cols]


@torch.no_grad()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000) -> float:
    was_training = model.training
    model.eval()
    correct = 0
    for i in range(0, images.shape[0], batch_size):
        correct += int((model(images[i:i + batch_size]).argmax(1) == labels[i:i + batch_size]).sum())
    model.train(was_training)
    return correct / max(1, images.shape[0])


def _auto_shift(data: torch.Tensor) -> int:
    return min(data.shape[-2:]) // 16


def _settings(epochs: int, seed: int, batch_size: int, lr: float, val_fraction: float, width: int,
              max_shift: int) -> dict[str, Any]:
    return {"version": VERSION, "epochs": epochs, "seed": seed, "batch_size": batch_size, "lr": lr,
            "val_fraction": val_fraction, "width": width, "max_shift": max_shift}


def train_classifier(source, epochs: int = 6, seed: int = 0, batch_size: int = 128, lr: float = 3e-3,
                     val_fraction: float = 0.1, width: int = 16, max_shift: int | None = None,
                     verbose: bool = False) -> tuple[DomainClassifier, dict[str, Any]]:
    """Train a :class:`DomainClassifier` on ``source.data`` / ``source.labels``.

    A seeded ``val_fraction`` of the images is held out; the returned info carries the accuracy on it
    (``val_accuracy``), the training time and the settings. Adam with a one-cycle learning rate (15 %
    warm-up, cosine decay) and random ±``max_shift`` pixel translations (default: side // 16, i.e.
    1 px at 28×28, none at 8×8).
    The global RNG is left untouched. Defaults: mnist5k ≈ 0.98 validation accuracy, digits ≈ 0.99.
    """
    data, labels, name = _labelled(source)
    max_shift = _auto_shift(data) if max_shift is None else max_shift
    check_int("classifier.max_shift", max_shift, minimum=0)
    check_int("classifier.epochs", epochs, minimum=1)
    check_int("classifier.batch_size", batch_size, minimum=1)
    check_range("classifier.lr", lr, low=0.0, low_open=True)
    check_range("classifier.val_fraction", val_fraction, low=0.0, high=1.0, high_open=True)
    settings = _settings(epochs, seed, batch_size, lr, val_fraction, width, max_shift)
    start = time.perf_counter()

    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(data.shape[0], generator=gen)
    n_val = int(round(val_fraction * data.shape[0]))
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    x_train, y_train = data[train_idx].float(), labels[train_idx]
    x_val, y_val = data[val_idx].float(), labels[val_idx]
    num_classes = int(labels.max()) + 1

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DomainClassifier(data.shape[1], num_classes, width)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps_per_epoch = math.ceil(x_train.shape[0] / batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch,
                                                pct_start=0.15)
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(x_train.shape[0], generator=gen)
        total = 0.0
        for i in range(0, x_train.shape[0], batch_size):
            idx = order[i:i + batch_size]
            x = _shift(x_train[idx], max_shift, gen)
            loss = F.cross_entropy(model(x), y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * idx.numel()
        if verbose:
            acc = accuracy(model, x_val, y_val) if n_val else float("nan")
            print(f"epoch {epoch + 1}/{epochs} loss {total / x_train.shape[0]:.4f} val_acc {acc:.4f}")
    model.eval()
    with torch.no_grad():
        sq = sum(float(model.penultimate(x_train[i:i + 1000]).square().sum()) for i in range(0, len(x_train), 1000))
        model.feature_scale.fill_(max(math.sqrt(sq / (x_train.shape[0] * FEATURE_DIM)), 1e-6))
    info = {
        "dataset": name, "version": VERSION, "extractor": f"{name}_classifier",
        "val_accuracy": accuracy(model, x_val, y_val) if n_val else float("nan"),
        "train_accuracy": accuracy(model, x_train, y_train),
        "n_train": int(x_train.shape[0]), "n_val": int(n_val), "num_classes": num_classes,
        "in_channels": int(data.shape[1]), "image_shape": list(data.shape[1:]),
        "feature_scale": float(model.feature_scale), "train_seconds": time.perf_counter() - start, "settings": settings,
        "data_fingerprint": _fingerprint(data, labels),
    }
    return model, info


def settings_hash(source, **overrides: Any) -> str:
    """The cache key's hash: training settings, classifier version and a fingerprint of the data."""
    data, labels, _ = _labelled(source)
    unknown = set(overrides) - set(_TRAIN_DEFAULTS) - {"seed"}
    if unknown:
        raise ConfigError("classifier settings", sorted(unknown), "any of " + ", ".join(sorted(_TRAIN_DEFAULTS)))
    chosen = {**_TRAIN_DEFAULTS, **overrides}
    if chosen["max_shift"] is None:
        chosen["max_shift"] = _auto_shift(data)
    blob = json.dumps({**_settings(**chosen), "data": _fingerprint(data, labels)}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:10]


# the training defaults, read once from the signature so that the cache key follows them
_TRAIN_DEFAULTS = {k: p.default for k, p in inspect.signature(train_classifier).parameters.items()
                   if k not in ("source", "verbose")}


def cache_path(source, cache_dir: str | os.PathLike | None = None, **settings: Any) -> Path:
    """Where :func:`load_or_train` keeps the weights for ``source`` trained with ``settings``."""
    name = source.spec.name
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return root / "classifiers" / f"{name}-v{VERSION}-{settings_hash(source, **settings)}.pt"


def load_or_train(source, cache_dir: str | os.PathLike | None = None, seed: int = 0,
                  **settings: Any) -> tuple[DomainClassifier, dict[str, Any]]:
    """The domain classifier for ``source``: loaded from the cache if present, else trained and saved.

    The file holds ``{"state_dict", "meta"}`` (``meta``: data set name, accuracy, version, settings)
    written with ``torch.save`` and read back with ``torch.load(weights_only=True)``. ``info["cached"]``
    says whether it was loaded. ``cache_dir`` defaults to ``$GAN_LAB_CACHE`` or ``~/.cache/gan_lab``.
    """
    _labelled(source)  # clear error before anything else
    path = cache_path(source, cache_dir, seed=seed, **settings)
    if path.is_file():
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
            meta = dict(blob["meta"])
            model = DomainClassifier(meta["in_channels"], meta["num_classes"], meta["settings"]["width"])
            model.load_state_dict(blob["state_dict"])
        except Exception as err:  # unreadable or foreign file: train afresh and overwrite it
            warnings.warn(f"ignoring unreadable classifier cache {path}: {err}", stacklevel=2)
        else:
            return model.eval(), {**meta, "cached": True, "path": str(path)}
    model, info = train_classifier(source, seed=seed, **settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save({"state_dict": model.state_dict(), "meta": info}, tmp)
    os.replace(tmp, path)  # atomic: concurrent sweep jobs never read a half-written file
    return model, {**info, "cached": False, "path": str(path)}
