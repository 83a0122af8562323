"""The field's dataset layout (stylegan2-ada-pytorch's dataset_tool.py): ``python -m gan_lab.dataset_tool`` writing
it from every source kind, ``dataset=zip`` reading it (archives built here with zipfile + Pillow, independent of the
tool), the one-line errors, training on it, and Fashion-MNIST found where Debian installs it."""

from __future__ import annotations

import gzip
import io
import json
import pickle
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gan_lab import dataset_tool
from gan_lab.data import files
from gan_lab.data.base import TensorSource
from gan_lab.data.files import idx as idx_module
from gan_lab.data.layout import archive_name
from gan_lab.data.module import eight_bit
from gan_lab.errors import ConfigError
from tests.conftest import compose_cfg, interrupted_then_resumed, run_cli, state_digest
from tests.test_data_files import idx_bytes

# --------------------------------------------------------------------------------------------
# Sources and archives, built here


def ramp(n: int, side: int, channels: int = 1, offset: int = 0, width: int | None = None) -> list[np.ndarray]:
    """``n`` distinct uint8 images, H×W (gray) or H×W×3: pixel values (17 i + 3 y + 5 x + 11 c) mod 256."""
    width = side if width is None else width
    y, x = np.mgrid[:side, :width]
    out = []
    for i in range(offset, offset + n):
        planes = [(17 * i + 3 * y + 5 * x + 11 * c) % 256 for c in range(channels)]
        out.append(np.stack(planes, -1).astype(np.uint8) if channels == 3 else planes[0].astype(np.uint8))
    return out


def png(image: np.ndarray, **save) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, format="png", **save)
    return out.getvalue()


def write_reference_zip(path: Path, images: list[np.ndarray], labels: list[int] | None,
                        extra: dict[str, bytes] | None = None, json_text: str | None = None,
                        compression: int = zipfile.ZIP_STORED) -> list[str]:
    """A zip in the reference layout written with zipfile + Pillow alone (not the lab's writer)."""
    names = [f"{i:08d}"[:5] + f"/img{i:08d}.png" for i in range(len(images))]
    with zipfile.ZipFile(path, "w", compression=compression) as z:
        for name, image in zip(names, images):
            z.writestr(name, png(image, compress_level=0))
        for name, blob in (extra or {}).items():
            z.writestr(name, blob)
        if json_text is None:
            json_text = json.dumps({"labels": None if labels is None else [[n, c] for n, c in zip(names, labels)]})
        z.writestr("dataset.json", json_text)
    return names


def read_archive(path: Path) -> tuple[list[str], list[np.ndarray], object]:
    """(image names, decoded images, dataset.json's labels) of an archive, read with zipfile + Pillow."""
    with zipfile.ZipFile(path) as z:
        infos = z.infolist()
        assert all(i.compress_type == zipfile.ZIP_STORED for i in infos)  # uncompressed, as the reference
        names = sorted(i.filename for i in infos if i.filename.endswith(".png"))
        images = [np.asarray(Image.open(io.BytesIO(z.read(n)))) for n in names]
        labels = json.loads(z.read("dataset.json"))["labels"]
    return names, images, labels


def signed(images: list[np.ndarray]) -> torch.Tensor:
    """The lab's pixel values of H×W / H×W×3 images: (N, C, H, W), q / 127.5 − 1."""
    arr = np.stack(images)
    arr = arr[:, None] if arr.ndim == 3 else arr.transpose(0, 3, 1, 2)
    return torch.from_numpy(arr.astype(np.float32)) / 127.5 - 1.0


def tool(*args: str) -> int:
    return dataset_tool.main([*map(str, args), "--quiet"])


def write_idx(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray, gz: bool):
    folder.mkdir(parents=True, exist_ok=True)
    for kind, arr in (("images-idx3", images), ("labels-idx1", labels)):
        blob = idx_bytes(arr)
        name = f"{prefix}-{kind}-ubyte"
        (folder / (name + ".gz" if gz else name)).write_bytes(gzip.compress(blob) if gz else blob)


def write_cifar_tarball(path: Path, per_batch: int = 2) -> dict[str, tuple[np.ndarray, list[int]]]:
    """CIFAR-10's python tarball in miniature: cifar-10-batches-py/data_batch_1..5 and test_batch, protocol-2
    pickles with bytes keys, rows holding the R, G, B planes (as the real files)."""
    batches = {}
    with tarfile.open(path, "w:gz") as tar:
        for b, name in enumerate([*files.CIFAR10_TRAIN, "test_batch"]):
            chw = np.stack([np.stack([img[..., c] for c in range(3)]) for img in ramp(per_batch, 32, 3, 10 * b)])
            labels = [(b + i) % 10 for i in range(per_batch)]
            blob = pickle.dumps({b"batch_label": b"x", b"data": chw.reshape(per_batch, 3072), b"labels": labels},
                                protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
            batches[name] = (chw.transpose(0, 2, 3, 1), labels)
    return batches


# --------------------------------------------------------------------------------------------
# The tool, one source kind at a time


def test_archive_names_hold_a_thousand_per_folder():
    assert archive_name(0) == "00000/img00000000.png" and archive_name(999) == "00000/img00000999.png"
    assert archive_name(1000) == "00001/img00001000.png" and archive_name(49999) == "00049/img00049999.png"


def test_folder_with_classes_round_trips_pixels_and_labels(tmp_path):
    cats, dogs = ramp(3, 8, 3), ramp(2, 8, 3, offset=3)
    (tmp_path / "src" / "cat").mkdir(parents=True)
    (tmp_path / "src" / "dog").mkdir()
    for i, image in enumerate(cats):
        Image.fromarray(image).save(tmp_path / "src" / "cat" / f"{i}.png")
    for i, image in enumerate(dogs):
        Image.fromarray(image).save(tmp_path / "src" / "dog" / f"{i}.bmp")
    assert tool("--source", tmp_path / "src", "--dest", tmp_path / "out.zip") == 0
    names, images, labels = read_archive(tmp_path / "out.zip")
    assert names == [archive_name(i) for i in range(5)]
    assert labels == [[archive_name(i), c] for i, c in enumerate([0, 0, 0, 1, 1])]  # classes sorted: cat 0, dog 1
    for got, want in zip(images, cats + dogs):
        np.testing.assert_array_equal(got, want)  # PNG is lossless; RGB stays H×W×3
    src = files.image_zip(tmp_path / "out.zip")
    assert isinstance(src, TensorSource) and src.spec.shape == (3, 8, 8) and src.num_classes == 2
    torch.testing.assert_close(src.data, signed(cats + dogs), rtol=0, atol=0)
    assert src.labels.tolist() == [0, 0, 0, 1, 1]


def test_folder_without_classes_writes_null_labels_and_gray_as_mode_l(tmp_path):
    grays = ramp(3, 6)
    (tmp_path / "src").mkdir()
    for i, image in enumerate(grays):
        Image.fromarray(image).save(tmp_path / "src" / f"{i}.png")
    assert tool("--source", tmp_path / "src", "--dest", tmp_path / "out.zip") == 0
    names, images, labels = read_archive(tmp_path / "out.zip")
    assert labels is None and len(names) == 3
    with zipfile.ZipFile(tmp_path / "out.zip") as z:
        assert Image.open(io.BytesIO(z.read(names[0]))).mode == "L"
    for got, want in zip(images, grays):
        np.testing.assert_array_equal(got, want)
    src = files.image_zip(tmp_path / "out.zip")
    assert src.labels is None and src.spec.shape == (1, 6, 6)


def test_an_unpacked_archive_keeps_its_own_labels_not_its_numbered_folders(tmp_path):
    images = ramp(3, 4)
    write_reference_zip(tmp_path / "in.zip", images, [5, 0, 5])
    with zipfile.ZipFile(tmp_path / "in.zip") as z:
        z.extractall(tmp_path / "unpacked")  # 00000/img0000000i.png + dataset.json
    assert tool("--source", tmp_path / "unpacked", "--dest", tmp_path / "out.zip") == 0
    _, got, labels = read_archive(tmp_path / "out.zip")
    assert [c for _, c in labels] == [5, 0, 5]  # not class 0 for the folder "00000"
    np.testing.assert_array_equal(np.stack(got), np.stack(images))


def test_progress_is_throttled_and_says_how_far(tmp_path):
    out = io.StringIO()
    bar = dataset_tool.Progress(200, stream=out, every_s=3600.0)
    bar(50)
    assert out.getvalue() == ""  # within the interval: nothing
    bar.every = 0.0
    bar(50)
    line = out.getvalue()
    assert line.startswith("gan_lab: 50/200 images (25 %)") and line.endswith("left\n") and line.count("\n") == 1


def test_cifar10_tarball_round_trips_channels_labels_and_splits(tmp_path):
    batches = write_cifar_tarball(tmp_path / "cifar-10-python.tar.gz")
    assert tool("--source", tmp_path / "cifar-10-python.tar.gz", "--dest", tmp_path / "train.zip") == 0
    _, images, labels = read_archive(tmp_path / "train.zip")
    want = [img for name in files.CIFAR10_TRAIN for img in batches[name][0]]
    assert len(images) == 10 and [c for _, c in labels] == [c for n in files.CIFAR10_TRAIN for c in batches[n][1]]
    for got, expected in zip(images, want):
        np.testing.assert_array_equal(got, expected)  # R, G, B planes land as H×W×3
    assert tool("--source", tmp_path / "cifar-10-python.tar.gz", "--dest", tmp_path / "test.zip", "--split", "test",
                "--max-images", 1) == 0
    _, images, labels = read_archive(tmp_path / "test.zip")
    np.testing.assert_array_equal(images[0], batches["test_batch"][0][0])
    assert labels == [[archive_name(0), batches["test_batch"][1][0]]]


@pytest.mark.parametrize("gz", [False, True])
def test_idx_files_round_trip_from_a_folder_or_the_images_file(tmp_path, gz):
    train, test = np.stack(ramp(5, 28)), np.stack(ramp(2, 28, offset=9))
    write_idx(tmp_path / "raw", "train", train, np.arange(5, dtype=np.uint8) % 3, gz)
    write_idx(tmp_path / "raw", "t10k", test, np.array([7, 8], dtype=np.uint8), gz)
    assert tool("--source", tmp_path / "raw", "--dest", tmp_path / "train.zip") == 0
    _, images, labels = read_archive(tmp_path / "train.zip")
    np.testing.assert_array_equal(np.stack(images), train)
    assert [c for _, c in labels] == [0, 1, 2, 0, 1]
    image_file = tmp_path / "raw" / ("t10k-images-idx3-ubyte" + (".gz" if gz else ""))
    assert tool("--source", image_file, "--dest", tmp_path / "test.zip") == 0
    _, images, labels = read_archive(tmp_path / "test.zip")
    np.testing.assert_array_equal(np.stack(images), test)
    assert [c for _, c in labels] == [7, 8]
    assert tool("--source", tmp_path / "raw", "--dest", tmp_path / "all.zip", "--split", "all") == 0
    assert len(read_archive(tmp_path / "all.zip")[1]) == 7


def test_pad_to_adds_zero_borders_and_resolution_resizes(tmp_path):
    digits = np.stack(ramp(2, 28, offset=1))
    write_idx(tmp_path / "raw", "train", digits, np.array([1, 2], dtype=np.uint8), gz=True)
    assert tool("--source", tmp_path / "raw", "--dest", tmp_path / "pad.zip", "--pad-to", 32) == 0
    padded = np.stack(read_archive(tmp_path / "pad.zip")[1])
    assert padded.shape == (2, 32, 32)
    np.testing.assert_array_equal(padded[:, 2:30, 2:30], digits)  # 2 pixels per side, the digit untouched
    border = np.ones((32, 32), bool)
    border[2:30, 2:30] = False
    assert (padded[:, border] == 0).all()
    assert tool("--source", tmp_path / "raw", "--dest", tmp_path / "r32.zip", "--resolution", 32) == 0
    resized = np.stack(read_archive(tmp_path / "r32.zip")[1])
    expected = [np.asarray(Image.fromarray(d).resize((32, 32), Image.Resampling.LANCZOS)) for d in digits]
    np.testing.assert_array_equal(resized, np.stack(expected))


def test_resolution_centre_crops_a_wide_image(tmp_path):
    wide = np.zeros((8, 12), np.uint8)
    wide[:, 2:10] = np.arange(64, dtype=np.uint8).reshape(8, 8) + 100  # the centre 8×8 square
    (tmp_path / "src").mkdir()
    Image.fromarray(wide).save(tmp_path / "src" / "a.png")
    assert tool("--source", tmp_path / "src", "--dest", tmp_path / "out.zip", "--resolution", 8) == 0
    np.testing.assert_array_equal(read_archive(tmp_path / "out.zip")[1][0], wide[:, 2:10])  # crop only, no resize


def test_zip_to_zip_keeps_pixels_and_labels_and_is_reproducible(tmp_path):
    images = ramp(4, 8, 3)
    write_reference_zip(tmp_path / "in.zip", images, [3, 1, 4, 1])
    for name in ("a.zip", "b.zip"):
        assert tool("--source", tmp_path / "in.zip", "--dest", tmp_path / name) == 0
    _, got, labels = read_archive(tmp_path / "a.zip")
    np.testing.assert_array_equal(np.stack(got), np.stack(images))
    assert [c for _, c in labels] == [3, 1, 4, 1]
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()


def _images_in(folder: Path, *images: np.ndarray | bytes) -> Path:
    folder.mkdir()
    for i, image in enumerate(images):
        (folder / f"{i}.png").write_bytes(image if isinstance(image, bytes) else png(image))
    return folder


SOURCE_ERRORS = {  # case: (what the source folder holds, words the one-line error must say)
    "missing": (lambda p: p / "absent", ["--source", "absent does not exist"]),
    "unknown kind": (lambda p: (p / "notes.txt", (p / "notes.txt").write_text("hi"))[0], ["unknown kind", "notes.txt"]),
    "not square": (lambda p: _images_in(p / "s", ramp(1, 6)[0], ramp(1, 6, width=7)[0]),
                   ["1.png is 7×6, not square", "--resolution"]),
    "mixed sizes": (lambda p: _images_in(p / "s", ramp(1, 6)[0], ramp(1, 8)[0]), ["1.png is 8×8 but", "0.png is 6×6"]),
    "mixed channels": (lambda p: _images_in(p / "s", ramp(1, 6)[0], ramp(1, 6, 3)[0]),
                       ["1.png is colour", "--channels"]),
    "broken png": (lambda p: _images_in(p / "s", ramp(1, 6)[0], b"\x89PNG broken"), ["1.png cannot be decoded"]),
    "16-bit png": (lambda p: _images_in(p / "s", ramp(1, 6)[0], _png16()), ["1.png has I;16 pixels", "8 bits"]),
}


def _png16() -> bytes:
    """A 16-bit gray PNG (values up to 1000, which converting to 8 bits would clip, not scale)."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.full((6, 6), 1000, dtype=np.uint16)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("case", sorted(SOURCE_ERRORS))
def test_tool_errors_are_one_line_naming_the_file_and_leave_nothing(tmp_path, capsys, case):
    make, words = SOURCE_ERRORS[case]
    source = make(tmp_path)
    assert tool("--source", source, "--dest", tmp_path / "out" / "d.zip") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gan_lab: error: ") and "\n" not in err
    assert all(w in err for w in words), err
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())  # no zip, no .part left


def test_an_existing_dest_is_refused_unless_overwrite(tmp_path, capsys):
    write_reference_zip(tmp_path / "in.zip", ramp(2, 4), None)
    (tmp_path / "out.zip").write_bytes(b"keep me")
    assert tool("--source", tmp_path / "in.zip", "--dest", tmp_path / "out.zip") == 2
    assert "exists: pass --overwrite" in capsys.readouterr().err
    assert (tmp_path / "out.zip").read_bytes() == b"keep me"
    assert tool("--source", tmp_path / "in.zip", "--dest", tmp_path / "out.zip", "--overwrite") == 0
    assert len(read_archive(tmp_path / "out.zip")[1]) == 2


# --------------------------------------------------------------------------------------------
# The lab's reader (dataset=zip), on archives written with zipfile + Pillow


@pytest.mark.parametrize("labelled", [True, False])
def test_the_lab_reads_the_reference_layout_in_memory_and_streamed(tmp_path, labelled):
    images, labels = ramp(6, 8, 3), [2, 0, 1, 2, 0, 1]
    write_reference_zip(tmp_path / "set.zip", images, labels if labelled else None)
    memory = files.image_zip(tmp_path / "set.zip", in_memory="auto")
    stream = files.image_zip(tmp_path / "set.zip", in_memory=False)
    assert isinstance(memory, TensorSource) and isinstance(stream, files.ZipImagesSource)
    assert memory.spec.shape == stream.spec.shape == (3, 8, 8) and memory.spec.is_image and stream.size == 6
    torch.testing.assert_close(memory.data, signed(images), rtol=0, atol=0)
    torch.testing.assert_close(stream.__getitems__([4, 0, 4]), signed([images[4], images[0], images[4]]), rtol=0,
                               atol=0)
    assert eight_bit(memory.data) is not None  # the data module keeps it as uint8 on the device, bit for bit
    for src in (memory, stream):
        assert (src.labels.tolist() == labels and src.num_classes == 3) if labelled else src.labels is None


def test_labels_are_matched_by_name_and_compressed_members_still_read(tmp_path):
    images = ramp(3, 4)
    names = [archive_name(i) for i in range(3)]
    shuffled = json.dumps({"labels": [[names[2], 9], [names[0], 7], [names[1], 8]]})
    write_reference_zip(tmp_path / "set.zip", images, None, json_text=shuffled, compression=zipfile.ZIP_DEFLATED)
    for in_memory in (True, False):
        src = files.image_zip(tmp_path / "set.zip", in_memory=in_memory)
        assert src.labels.tolist() == [7, 8, 9] and src.spec.shape == (1, 4, 4)
        torch.testing.assert_close(src.__getitems__([0, 1, 2]), signed(images), rtol=0, atol=0)


def _flip_inside_first_png(path: Path):
    """Change one pixel byte of the first image in the file, leaving the zip's directory intact."""
    blob = bytearray(path.read_bytes())
    at = blob.index(b"IDAT") + 20
    blob[at] ^= 0xFF
    path.write_bytes(bytes(blob))


def palette_png() -> bytes:
    out = io.BytesIO()
    Image.fromarray(ramp(1, 4, 3)[0]).convert("P").save(out, format="png")
    return out.getvalue()


GOOD = ramp(3, 4)
NAMES = [archive_name(i) for i in range(3)]
ARCHIVE_ERRORS = {  # case: (build the archive at p, words the one-line error must say)
    "not a zip": (lambda p: p.write_bytes(b"PK but not really"), ["is not a readable zip archive"]),
    "no image": (lambda p: zipfile.ZipFile(p, "w").close(), ["holds no image"]),
    "png that fails to decode": (lambda p: write_reference_zip(p, GOOD, None, extra={"00000/img00000003.png":
                                                                                      b"\x89PNG\r\n\x1a\n junk"}),
                                 ["00000/img00000003.png cannot be decoded", "Pillow recognises no image"]),
    "a changed byte (CRC)": (lambda p: (write_reference_zip(p, GOOD, None), _flip_inside_first_png(p)),
                             ["00000/img00000000.png cannot be decoded", "CRC"]),
    "json naming a missing file": (lambda p: write_reference_zip(p, GOOD, None, json_text=json.dumps(
        {"labels": [[n, 0] for n in NAMES] + [["00000/img00000007.png", 1]]})),
        ["dataset.json names 00000/img00000007.png", "not an image of the archive"]),
    "label count mismatch": (lambda p: write_reference_zip(p, GOOD, None, json_text=json.dumps(
        {"labels": [[n, 0] for n in NAMES[:2]]})), ["dataset.json labels 2 of the 3 images", NAMES[2]]),
    "json not json": (lambda p: write_reference_zip(p, GOOD, None, json_text="{labels"), ["dataset.json is not JSON"]),
    "vector labels": (lambda p: write_reference_zip(p, GOOD, None, json_text=json.dumps(
        {"labels": [[n, [0.5, 0.5]] for n in NAMES]})), ["dataset.json: the entry", "class index"]),
    "mixed sizes": (lambda p: write_reference_zip(p, [*GOOD, ramp(1, 6)[0]], None),
                    ["00000/img00000003.png is 6×6 with 1 channel, but 00000/img00000000.png is 4×4"]),
    "mixed modes": (lambda p: write_reference_zip(p, [*GOOD, ramp(1, 4, 3)[0]], None),
                    ["00000/img00000003.png is 4×4 with 3 channels"]),
    "not square": (lambda p: write_reference_zip(p, ramp(2, 4, width=5), None), ["is 5×4, not square"]),
    "palette png": (lambda p: write_reference_zip(p, GOOD, None, extra={"00000/img00000003.png": palette_png()}),
                    ["00000/img00000003.png is not 8-bit gray (L) or RGB"]),
}


@pytest.mark.parametrize("in_memory", [True, False])
@pytest.mark.parametrize("case", sorted(ARCHIVE_ERRORS))
def test_a_corrupt_or_mismatched_archive_is_one_line_naming_the_file(tmp_path, case, in_memory):
    build, words = ARCHIVE_ERRORS[case]
    build(tmp_path / "bad.zip")
    with pytest.raises(ConfigError) as err:
        files.image_zip(tmp_path / "bad.zip", in_memory=in_memory)  # streamed: every header is read at once
    text = str(err.value)
    assert err.value.key == "dataset.path" and "\n" not in text and str(tmp_path / "bad.zip") in text
    assert all(w in text for w in words), text


# --------------------------------------------------------------------------------------------
# Training on an archive


def tiny_set(path: Path, labelled: bool = True) -> Path:
    """24 gray 8×8 images in 3 classes (a bright square whose place says the class), reference layout."""
    images, labels = [], []
    for i in range(24):
        c = i % 3
        image = ramp(1, 8, offset=i)[0] // 4
        image[2 * c:2 * c + 3, 2 * c:2 * c + 3] = 255
        images.append(image)
        labels.append(c)
    write_reference_zip(path, images, labels if labelled else None)
    return path


RUN = ["model=dcgan", "model.width=8", "train.iterations=4", "train.batch_size=4", "train.log_every=2",
       "train.checkpoint_every=2", "train.sample_every=2", "eval.every=2", "eval.every_samples=40", "eval.samples=60",
       "trainer.enable_progress_bar=false"]


@pytest.mark.parametrize("conditional", ["none", "projection"])
def test_training_on_an_archive_from_the_command_line(tmp_path, conditional):
    """The default config's evaluation, CSV logging and checkpoints on; projection conditioning reads the labels. The
    unconditional run streams the archive (its real images for the evaluation come from the zip too)."""
    archive = tiny_set(tmp_path / "set.zip")
    streamed = "dataset.in_memory=false" if conditional == "none" else "dataset.in_memory=true"
    proc = run_cli("dataset=zip", f"dataset.path={archive}", streamed, f"model.conditional={conditional}", *RUN,
                   f"hydra.run.dir={tmp_path}/run", cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "run"
    summary = json.loads((run / "metrics.json").read_text())
    assert summary["status"] == "finished" and summary["iterations"] == 4
    assert summary["evaluation"]["samples"] == 60 and "memorization/nn_l2_median" in summary["metrics"]
    # the domain classifier's metrics, streamed or in memory (a streamed set's classifier trains on its decoded images)
    assert any(k.startswith("val/fid_60_") and k.endswith("_classifier") for k in summary["metrics"])
    assert (run / "checkpoints" / "last.ckpt").is_file() and (run / "logs" / "csv" / "metrics.csv").is_file()
    samples = np.load(run / "samples.npy")
    assert samples.shape[1:] == (1, 8, 8) and samples.min() >= -1 and samples.max() <= 1
    if conditional != "none":
        assert np.load(run / "samples_labels.npy").max() == 2  # the 3 classes of dataset.json


def test_a_streamed_labelled_archive_trains_its_classifier_on_the_images_that_fit(tmp_path):
    from gan_lab.data.files.zipped import image_zip
    from gan_lab.metrics.classifier import labelled_in_memory

    archive = tiny_set(tmp_path / "set.zip")
    streamed, whole = image_zip(archive, in_memory=False), image_zip(archive, in_memory=True)
    assert getattr(streamed, "data", None) is None and labelled_in_memory(whole) is whole
    everything = labelled_in_memory(streamed)  # all 24 fit: the same images and labels as the set held in memory
    assert torch.equal(everything.data, whole.data) and torch.equal(everything.labels, whole.labels)
    assert labelled_in_memory(streamed) is everything  # decoded once per source, however often the metrics are built
    part = labelled_in_memory(streamed, budget=10 * 4 * 64)  # room for 10 images of 1×8×8 as float32
    assert part.data.shape == (10, 1, 8, 8) and part.spec == streamed.spec
    rows = [next(i for i in range(24) if torch.equal(whole.data[i], image)) for image in part.data]
    assert rows == sorted(set(rows)) and part.labels.tolist() == whole.labels[rows].tolist()


def test_an_unlabelled_archive_refuses_a_conditional_model(tmp_path):
    from gan_lab.compose import build_components

    archive = tiny_set(tmp_path / "set.zip", labelled=False)
    with pytest.raises(ConfigError, match="model.conditional='concat'.*carries no class labels"):
        build_components(compose_cfg("debug=tiny", "dataset=zip", f"dataset.path={archive}", "model.width=8",
                                     "model.conditional=concat"))


def test_a_streamed_archive_resumes_exactly(tmp_path):
    """Decoded per minibatch through the DataLoader: stopped at iteration 3 and resumed, the same final weights as
    the uninterrupted run."""
    from gan_lab.train import train

    archive = tiny_set(tmp_path / "set.zip")
    args = ["debug=tiny", "dataset=zip", f"dataset.path={archive}", "dataset.in_memory=false", "model.width=8",
            "model.conditional=concat", "train.iterations=6", "train.batch_size=4", "train.checkpoint_every=1"]
    train(compose_cfg(*args), tmp_path / "whole")
    summary = interrupted_then_resumed(args, tmp_path / "run", at=3)
    assert summary["status"] == "finished" and summary["iterations"] == 6
    assert state_digest(tmp_path / "run") == state_digest(tmp_path / "whole")


def test_streamed_with_workers_and_in_memory_train_to_the_same_weights(tmp_path):
    """Decoded per minibatch in 2 DataLoader workers (each maps the zip itself) or held in memory (uint8 codes on
    the device, gathered from indices): the same minibatches, so the same weights bit for bit."""
    from gan_lab.train import train

    archive = tiny_set(tmp_path / "set.zip")
    args = ["debug=tiny", "dataset=zip", f"dataset.path={archive}", "model.width=8", "train.batch_size=4",
            "model.conditional=concat"]
    train(compose_cfg(*args, "dataset.in_memory=false", "train.num_workers=2"), tmp_path / "workers")
    train(compose_cfg(*args, "dataset.in_memory=true"), tmp_path / "memory")
    assert state_digest(tmp_path / "workers") == state_digest(tmp_path / "memory")


def test_ddp_on_a_streamed_labelled_archive(tmp_path):
    """Two processes over gloo, each decoding its own minibatches from the zip: they end in sync."""
    archive = tiny_set(tmp_path / "set.zip")
    proc = run_cli("dataset=zip", f"dataset.path={archive}", "dataset.in_memory=false", "model.conditional=concat",
                   *RUN, "trainer.devices=2", "accelerator=ddp_cpu", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path,
                   timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert summary["ddp"]["world_size"] == 2 and summary["ddp"]["in_sync"] and summary["iterations"] == 4


# --------------------------------------------------------------------------------------------
# Fashion-MNIST where Debian's dataset-fashion-mnist installs it


def test_fashion_mnist_is_found_in_the_system_folder_after_the_data_dir(tmp_path, monkeypatch):
    system = tmp_path / "system"
    write_idx(system, "train", np.stack(ramp(3, 28)), np.array([0, 1, 2], np.uint8), gz=True)
    write_idx(system, "t10k", np.stack(ramp(2, 28)), np.array([3, 4], np.uint8), gz=True)
    monkeypatch.setattr(idx_module, "FASHION_MNIST_SYSTEM_DIR", system)
    src = files.fashion_mnist(tmp_path / "empty")
    assert src.size == 3 and src.heldout.shape == (2, 1, 28, 28) and src.labels.tolist() == [0, 1, 2]
    write_idx(tmp_path / "mine" / "FashionMNIST" / "raw", "train", np.stack(ramp(5, 28)), np.zeros(5, np.uint8), False)
    assert files.fashion_mnist(tmp_path / "mine").size == 5  # the data_dir comes first
    monkeypatch.setattr(idx_module, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "absent")
    with pytest.raises(ConfigError) as err:
        files.fashion_mnist(tmp_path / "empty")
    text = str(err.value)
    assert "\n" not in text and "apt-get install dataset-fashion-mnist" in text and "dataset.download=true" in text
    assert str(tmp_path / "absent") in text and err.value.key == "paths.data_dir"


REAL = idx_module.FASHION_MNIST_SYSTEM_DIR


@pytest.mark.skipif(not (REAL / "train-images-idx3-ubyte.gz").is_file(),
                    reason="Debian's dataset-fashion-mnist is not installed (make data)")
def test_the_real_fashion_mnist_is_read_with_no_setting(tmp_path):
    cfg = compose_cfg("dataset=fashion_mnist", f"paths.data_dir={tmp_path}")
    import hydra

    src = hydra.utils.instantiate(cfg.dataset)
    assert src.size == 60000 and src.heldout.shape == (10000, 1, 28, 28) and src.num_classes == 10
    assert src.labels.bincount().tolist() == [6000] * 10 and src.heldout_labels.bincount().tolist() == [1000] * 10
    assert src.data.min() == -1 and src.data.max() == 1
