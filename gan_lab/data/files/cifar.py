"""CIFAR-10 from its Python pickles, loaded whole into memory, read by a restricted unpickler that can only
rebuild numpy arrays: a pickle that asks for any other global is refused, never run.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch

from gan_lab.data import download as dl
from gan_lab.data.base import DataSpec, TensorSource
from gan_lab.data.files.common import DataDir, Download, _bad_file, _missing, resolve_dir
from gan_lab.data.images import _to_signed_unit


class _Refused(pickle.UnpicklingError):
    def __init__(self, module: str, name: str):
        super().__init__(f"{module}.{name}")
        self.what = f"{module}.{name}"


def _reconstruct_fn():
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


def _allowed_globals() -> dict[tuple[str, str], Any]:
    import codecs

    reconstruct = _reconstruct_fn()
    return {("numpy.core.multiarray", "_reconstruct"): reconstruct,
            ("numpy._core.multiarray", "_reconstruct"): reconstruct,
            ("numpy", "ndarray"): np.ndarray,
            ("numpy", "dtype"): np.dtype,
            ("_codecs", "encode"): codecs.encode}  # how protocol-2 pickles written by Python 3 store bytes


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild numpy arrays and nothing else: any other global is refused, never imported.

    Plain ``pickle.load`` on a downloaded file runs whatever callable the file names (``os.system``, ...).
    """

    def find_class(self, module: str, name: str) -> Any:
        allowed = _allowed_globals().get((module, name))
        if allowed is None:
            raise _Refused(module, name)
        return allowed


def load_pickle(path: Path) -> Any:
    """Read ``path`` with :class:`SafeUnpickler` (``encoding="bytes"``: the CIFAR files are Python-2 pickles)."""
    with open(path, "rb") as f:
        return SafeUnpickler(f, encoding="bytes").load()


CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST = ("test_batch",)


def _cifar_batch(path: Path, root: Path) -> tuple[np.ndarray, np.ndarray]:
    what = "CIFAR-10"
    try:
        batch = load_pickle(path)
    except _Refused as err:
        raise _bad_file(root, what, f"{path} is refused: it asks to load {err.what}, which a CIFAR-10 batch never "
                                    "needs (unpickling it could run arbitrary code)") from err
    except Exception as err:  # truncated or not a pickle: EOFError, UnpicklingError, ValueError, ...
        raise _bad_file(root, what, f"{path} is not a readable CIFAR-10 batch ({type(err).__name__}: {err})") from err
    if not isinstance(batch, dict):
        raise _bad_file(root, what, f"{path} holds a {type(batch).__name__}, not a CIFAR-10 batch dict")
    batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    data, labels = batch.get("data"), batch.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise _bad_file(root, what, f"{path}: 'data' should be an N×3072 uint8 array, got {got}")
    try:
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    except (TypeError, ValueError) as err:
        raise _bad_file(root, what, f"{path}: 'labels' is not a list of integers ({err})") from err
    if len(labels) != len(data) or (len(labels) and (labels.min() < 0 or labels.max() > 9)):
        raise _bad_file(root, what, f"{path}: 'labels' should be {len(data)} integers in 0..9")
    return data, labels


def cifar10(data_dir: DataDir = "data",
            split: Annotated[Literal["train", "test", "all"], "train (data_batch_1..5) | test (test_batch) | all"]
            = "train", download: Download = False) -> TensorSource:
    """CIFAR-10 (50,000 train / 10,000 test), 3×32×32 RGB, from ``<data_dir>/cifar-10-batches-py/``.

    ``split``: train (data_batch_1..5) | test (test_batch) | all; with split=train the test images, when
    present, are the source's ``heldout`` set. ``download``: fetch and unpack torchvision's archive when
    files are missing. The pickles are read by :class:`SafeUnpickler`.
    """
    root = resolve_dir(data_dir)
    folder = root / dl.CIFAR10_FOLDER
    names = {"train": CIFAR10_TRAIN, "test": CIFAR10_TEST, "all": CIFAR10_TRAIN + CIFAR10_TEST}[split]
    missing = [n for n in names if not (folder / n).is_file()]
    if missing and download:
        try:
            dl.download_cifar10(root)
        except dl.DownloadError as err:
            raise _missing(root, "CIFAR-10", [str(folder / n) for n in missing], True, f"{err}. ") from err
        missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise _missing(root, "CIFAR-10", [str(folder / n) for n in missing], True)
    batches = [_cifar_batch(folder / n, root) for n in names]
    pixels = np.concatenate([b[0] for b in batches]).reshape(-1, 3, 32, 32)  # rows hold the R, G, B planes
    labels = torch.from_numpy(np.concatenate([b[1] for b in batches]))
    heldout = heldout_labels = None
    if split == "train" and all((folder / n).is_file() for n in CIFAR10_TEST):
        tests = [_cifar_batch(folder / n, root) for n in CIFAR10_TEST]
        held = np.concatenate([b[0] for b in tests]).reshape(-1, 3, 32, 32)
        heldout, heldout_labels = _to_signed_unit(held, 255.0), torch.from_numpy(np.concatenate([b[1] for b in tests]))
    spec = DataSpec("cifar10", (3, 32, 32), "image")
    return TensorSource(_to_signed_unit(pixels, 255.0), spec, labels, heldout=heldout, heldout_labels=heldout_labels)
