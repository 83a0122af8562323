"""Readers for image sets on disk (gan_lab.data.files): tiny files in each real format, built here."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import tarfile
import urllib.error
import urllib.request

import hydra
import numpy as np
import pytest
import torch
from PIL import Image

from gan_lab.compose import check_settings
from gan_lab.data import download as dl
from gan_lab.data import files
from gan_lab.data.base import TensorSource
from gan_lab.errors import ConfigError
from tests.conftest import compose_cfg

# --------------------------------------------------------------------------------------------
# Builders of the real formats


def idx_bytes(arr: np.ndarray) -> bytes:
    magic = 0x00000800 | arr.ndim
    return magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in arr.shape) + arr.tobytes()


def mnist_arrays(n: int, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` 28×28 images whose pixels run through 0..255 (shifted per image) and labels (i + offset) % 10."""
    base = np.arange(784, dtype=np.int64)
    images = np.stack([(base + 7 * (i + offset)) % 256 for i in range(n)]).astype(np.uint8).reshape(n, 28, 28)
    labels = (np.arange(n) + offset) % 10
    return images, labels.astype(np.uint8)


def write_idx_set(root, folder: str = "MNIST", n_train: int = 20, n_test: int = 6, gz: bool = False):
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, n, off in (("train", n_train, 0), ("t10k", n_test, 3)):
        images, labels = mnist_arrays(n, off)
        out[split] = (images, labels)
        for name, arr in ((f"{split}-images-idx3-ubyte", images), (f"{split}-labels-idx1-ubyte", labels)):
            data = idx_bytes(arr)
            if gz:
                (raw / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (raw / name).write_bytes(data)
    return out


def signed(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(pixels.astype(np.float32) / 255.0 * 2.0 - 1.0)


def cifar_arrays(n: int, offset: int = 0) -> tuple[np.ndarray, list[int]]:
    """Images whose R plane is 200 + i, G plane 100, B plane a ramp: channel order is checkable."""
    data = np.zeros((n, 3, 32, 32), dtype=np.uint8)
    for i in range(n):
        data[i, 0] = 200 + i + offset
        data[i, 1] = 100
        data[i, 2] = (np.arange(1024) % 32).reshape(32, 32) * 8
    return data.reshape(n, 3072), [(i + offset) % 10 for i in range(n)]


def write_cifar(root, n: int = 3, str_keys: bool = False):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for b, name in enumerate([*files.CIFAR10_TRAIN, "test_batch"]):
        data, labels = cifar_arrays(n, 10 * b)
        blob = {"data": data, "labels": labels} if str_keys else {b"data": data, b"labels": labels,
                                                                    b"batch_label": b"x"}
        with open(folder / name, "wb") as f:
            pickle.dump(blob, f, protocol=2)
        out[name] = (data, labels)
    return out


BORDER, CENTRE = (0, 0, 255), (255, 0, 0)


def face(i: int = 0, w: int = 178, h: int = 218, inner: int = 150) -> Image.Image:
    """A blue image with a centred ``inner``² square of colour (255, 20 i, 0)."""
    im = Image.new("RGB", (w, h), BORDER)
    left, top = (w - inner) // 2, (h - inner) // 2
    im.paste((255, 20 * i, 0), (left, top, left + inner, top + inner))
    return im


def write_celeba(root, splits=(0, 0, 0, 1, 2, 2), partition: bool = True):
    img_dir = root / "celeba" / "img_align_celeba"
    img_dir.mkdir(parents=True)
    lines = []
    for i, s in enumerate(splits, 1):
        face(i).save(img_dir / f"{i:06d}.jpg", quality=95)
        lines.append(f"{i:06d}.jpg {s}")
    if partition:
        (root / "celeba" / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    return img_dir


def solid(path, colour, size=(12, 10), fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, format=fmt)


def message(err: pytest.ExceptionInfo) -> str:
    return str(err.value)


# --------------------------------------------------------------------------------------------
# MNIST / Fashion-MNIST


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_reads_idx_pixels_labels_and_heldout(tmp_path, gz):
    arrays = write_idx_set(tmp_path, gz=gz)
    src = files.mnist(tmp_path)
    images, labels = arrays["train"]
    assert isinstance(src, TensorSource) and src.size == 20
    assert src.spec.name == "mnist" and src.spec.shape == (1, 28, 28) and src.spec.is_image
    assert src.data.dtype == torch.float32 and src.data.shape == (20, 1, 28, 28)
    torch.testing.assert_close(src.data, signed(images).view(20, 1, 28, 28), rtol=0, atol=0)
    flat = images.reshape(-1)
    assert src.data.view(-1)[flat == 0].eq(-1.0).all() and src.data.view(-1)[flat == 255].eq(1.0).all()
    assert src.labels.dtype == torch.int64 and src.labels.tolist() == labels.tolist()
    assert src.heldout.shape == (6, 1, 28, 28)
    torch.testing.assert_close(src.heldout, signed(arrays["t10k"][0]).view(6, 1, 28, 28), rtol=0, atol=0)


def test_mnist_splits_and_fashion_mnist(tmp_path):
    arrays = write_idx_set(tmp_path)
    test = files.mnist(tmp_path, split="test")
    assert test.size == 6 and test.heldout is None
    assert test.labels.tolist() == arrays["t10k"][1].tolist()
    both = files.mnist(tmp_path, split="all")
    assert both.size == 26 and both.labels.tolist() == [*arrays["train"][1], *arrays["t10k"][1]]
    write_idx_set(tmp_path, folder="FashionMNIST", n_train=4, n_test=2, gz=True)
    fashion = files.fashion_mnist(tmp_path)
    assert fashion.size == 4 and fashion.spec.name == "fashion_mnist"


def test_bad_split_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"dataset.split='validation'.*train, test, all"):
        check_settings(compose_cfg("dataset=mnist", f"paths.data_dir={tmp_path}", "dataset.split=validation"))
    with pytest.raises(ConfigError, match=r"dataset.split='val'.*train, valid, test, all"):
        check_settings(compose_cfg("dataset=celeba", f"paths.data_dir={tmp_path}", "dataset.split=val"))


def test_missing_mnist_names_every_expected_file(tmp_path):
    with pytest.raises(ConfigError) as err:
        files.mnist(tmp_path / "nowhere", split="all")
    text = message(err)
    assert err.value.key == "paths.data_dir" and err.value.value == str(tmp_path / "nowhere")
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte"):
        assert str(tmp_path / "nowhere" / "MNIST" / "raw" / name) in text
    assert "dataset.download=true" in text and "GAN_LAB_DATA_DIR" in text


@pytest.mark.parametrize("damage, expected", [
    (lambda b: b[:-100], "truncated"),
    (lambda b: b[:10], "truncated"),
    (lambda b: b + b"x", "longer than its header"),
    (lambda b: (0x00000801).to_bytes(4, "big") + b[4:], "magic number is 0x00000801, expected 0x00000803"),
    (lambda b: b[:8] + (32).to_bytes(4, "big") + b[12:], "shape (32, 28), expected (28, 28)"),
])
def test_damaged_idx_is_named(tmp_path, damage, expected):
    write_idx_set(tmp_path)
    path = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(ConfigError) as err:
        files.mnist(tmp_path)
    assert str(path) in message(err) and expected in message(err) and err.value.key == "paths.data_dir"


def test_corrupt_gzip_and_count_mismatch_are_named(tmp_path):
    write_idx_set(tmp_path, gz=True)
    path = tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:15])
    with pytest.raises(ConfigError, match="train-labels-idx1-ubyte.gz cannot be read"):
        files.mnist(tmp_path)
    _, labels = mnist_arrays(19)
    path.write_bytes(gzip.compress(idx_bytes(labels)))
    with pytest.raises(ConfigError, match="20 images but .* 19 labels"):
        files.mnist(tmp_path)


# --------------------------------------------------------------------------------------------
# Downloads, served from local bytes


@pytest.fixture
def serve(monkeypatch):
    """Route urllib.request.urlopen to a dict url -> bytes; records the URLs asked for."""
    table: dict[str, bytes] = {}
    asked: list[str] = []

    def urlopen(request, timeout=None):
        url = request.full_url if isinstance(request, urllib.request.Request) else request
        asked.append(url)
        if url not in table:
            raise urllib.error.URLError("no network in tests")
        return io.BytesIO(table[url])

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return table, asked


def _no_partials(folder) -> bool:
    return not any(p.name.endswith(".part") for p in folder.rglob("*"))


def test_mnist_download_writes_torchvision_layout(tmp_path, serve, monkeypatch):
    table, asked = serve
    source = tmp_path / "src"
    arrays = write_idx_set(source, gz=True)
    for path in (source / "MNIST" / "raw").iterdir():
        blob = path.read_bytes()
        table[dl.MNIST_MIRROR + path.name] = blob
        monkeypatch.setitem(dl.MNIST_MD5, path.name, hashlib.md5(blob).hexdigest())
    data_dir = tmp_path / "data"
    src = files.mnist(data_dir, download=True)
    assert src.size == 20 and src.heldout.shape[0] == 6  # the test split comes along
    torch.testing.assert_close(src.data, signed(arrays["train"][0]).view(20, 1, 28, 28), rtol=0, atol=0)
    raw = data_dir / "MNIST" / "raw"
    names = [f"{s}-{k}-ubyte" for s in ("train", "t10k") for k in ("images-idx3", "labels-idx1")]
    assert sorted(p.name for p in raw.iterdir()) == sorted(names + [f"{n}.gz" for n in names])
    assert len(asked) == 4 and _no_partials(data_dir)
    table.clear()  # present files are never fetched again
    assert files.mnist(data_dir, download=True).size == 20 and len(asked) == 4


def test_download_checksum_mismatch_is_refused(tmp_path, serve):
    table, _ = serve
    for name in dl.MNIST_MD5:
        table[dl.MNIST_MIRROR + name] = gzip.compress(b"not the real thing")
    with pytest.raises(ConfigError) as err:
        files.mnist(tmp_path, download=True)
    assert err.value.key == "paths.data_dir" and "MD5" in message(err) and "refused" in message(err)
    raw = tmp_path / "MNIST" / "raw"
    assert not any(raw.iterdir())  # neither the file nor a partial one is kept


def test_download_without_network_says_what_is_expected(tmp_path, serve, monkeypatch):
    monkeypatch.setattr(files.idx, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "absent")  # not Debian's copy either
    with pytest.raises(ConfigError) as err:
        files.fashion_mnist(tmp_path, split="test", download=True)
    text = message(err)
    assert err.value.key == "paths.data_dir" and "URLError" in text
    assert str(tmp_path / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte") in text and "paths.data_dir=" in text
    assert serve[1][0] == dl.FASHION_MNIST_MIRROR + "t10k-images-idx3-ubyte.gz"


def test_cifar10_download_unpacks_archive(tmp_path, serve, monkeypatch):
    table, _ = serve
    build = tmp_path / "build"
    arrays = write_cifar(build)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(build / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    table[dl.CIFAR10_URL] = buf.getvalue()
    monkeypatch.setattr(dl, "CIFAR10_MD5", hashlib.md5(buf.getvalue()).hexdigest())
    data_dir = tmp_path / "data"
    src = files.cifar10(data_dir, split="test", download=True)
    assert src.size == 3 and src.labels.tolist() == arrays["test_batch"][1]
    assert (data_dir / "cifar-10-batches-py" / "data_batch_5").is_file()
    assert sorted(p.name for p in data_dir.iterdir()) == ["cifar-10-batches-py", "cifar-10-python.tar.gz"]


def test_cifar10_archive_with_unsafe_member_is_refused(tmp_path, serve, monkeypatch):
    table, _ = serve
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("../escaped")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    table[dl.CIFAR10_URL] = buf.getvalue()
    monkeypatch.setattr(dl, "CIFAR10_MD5", hashlib.md5(buf.getvalue()).hexdigest())
    with pytest.raises(ConfigError, match="does not unpack"):
        files.cifar10(tmp_path / "data", download=True)
    assert not (tmp_path / "escaped").exists()


# --------------------------------------------------------------------------------------------
# CIFAR-10


@pytest.mark.parametrize("str_keys", [False, True])
def test_cifar10_channel_order_labels_and_splits(tmp_path, str_keys):
    arrays = write_cifar(tmp_path, str_keys=str_keys)
    src = files.cifar10(tmp_path)
    assert src.spec.name == "cifar10" and src.data.shape == (15, 3, 32, 32) and src.heldout.shape == (3, 3, 32, 32)
    first = src.data[0]
    torch.testing.assert_close(first[0], signed(np.full((32, 32), 200)), rtol=0, atol=0)
    torch.testing.assert_close(first[1], signed(np.full((32, 32), 100)), rtol=0, atol=0)
    ramp = signed(np.tile(np.arange(32) * 8, (32, 1)))
    torch.testing.assert_close(first[2], ramp, rtol=0, atol=0)  # B varies along the row (width)
    assert src.data[4, 0, 0, 0] == pytest.approx((200 + 1 + 10) / 255 * 2 - 1)  # batch 2, image 1
    assert src.labels.dtype == torch.int64 and src.labels.tolist() == [
        x for n in files.CIFAR10_TRAIN for x in arrays[n][1]]
    assert files.cifar10(tmp_path, split="test").size == 3 and files.cifar10(tmp_path, split="all").size == 18


class _Evil:
    def __init__(self, command: str, fn=os.system):
        self.command, self.fn = command, fn

    def __reduce__(self):
        return self.fn, (self.command,)


@pytest.mark.parametrize("fn", [os.system, eval])
def test_malicious_cifar_pickle_is_refused_and_not_run(tmp_path, fn):
    write_cifar(tmp_path)
    marker = tmp_path / "pwned"
    command = f"touch {marker}" if fn is os.system else f"open({str(marker)!r}, 'w').close()"
    with open(tmp_path / "cifar-10-batches-py" / "data_batch_3", "wb") as f:
        pickle.dump({b"data": _Evil(command, fn), b"labels": []}, f, protocol=2)
    with pytest.raises(ConfigError) as err:
        files.cifar10(tmp_path)
    assert "data_batch_3 is refused: it asks to load" in message(err)
    assert ("system" if fn is os.system else "builtin__.eval") in message(err)  # protocol 2: __builtin__
    assert not marker.exists()


def test_broken_cifar_batches_are_named(tmp_path):
    write_cifar(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ConfigError, match="data_batch_2 is not a readable CIFAR-10 batch"):
        files.cifar10(tmp_path)
    with open(path, "wb") as f:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, f, protocol=2)
    with pytest.raises(ConfigError, match=r"data_batch_2: 'data' should be an N×3072 uint8 array"):
        files.cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "test_batch").unlink()
    with pytest.raises(ConfigError, match="test_batch"):
        files.cifar10(tmp_path, split="test")


# --------------------------------------------------------------------------------------------
# CelebA


def test_celeba_splits_centre_crop_and_streaming_equals_memory(tmp_path):
    write_celeba(tmp_path)
    stream = files.celeba(tmp_path, split="train", size=8, in_memory=False)
    memory = files.celeba(tmp_path, split="train", size=8, in_memory=True)
    assert isinstance(stream, files.ImageFilesSource) and isinstance(memory, TensorSource)
    assert stream.size == memory.size == 3 and stream.labels is None and stream.spec.shape == (3, 8, 8)
    batch = stream.__getitems__([0, 1, 2])
    torch.testing.assert_close(batch, memory.data, rtol=0, atol=0)
    torch.testing.assert_close(stream[1], memory.data[1], rtol=0, atol=0)
    # the 140² centre crop lies inside the red square: no blue border
    assert (batch[:, 0] > 0.85).all() and (batch[:, 2] < -0.85).all()
    g = batch[:, 1].mean(dim=(1, 2))
    assert torch.allclose(g, torch.tensor([20.0, 40.0, 60.0]) / 255 * 2 - 1, atol=0.05)  # files in sorted order
    # the whole width (178²) shows the blue corners
    wide = files.celeba(tmp_path, split="all", size=8, crop=178, in_memory=True).data[0]
    assert wide[2, 0, 0] > 0.5 and wide[0, 0, 0] < 0 and wide[0, 4, 4] > 0.85
    counts = {s: files.celeba(tmp_path, split=s, size=8).size for s in ("train", "valid", "test", "all")}
    assert counts == {"train": 3, "valid": 1, "test": 2, "all": 6}
    seeded = lambda src: src.sample(2, torch.Generator().manual_seed(3))
    torch.testing.assert_close(seeded(stream), seeded(stream), rtol=0, atol=0)
    torch.testing.assert_close(seeded(stream), seeded(memory), rtol=0, atol=0)
    assert pickle.loads(pickle.dumps(stream)).files == stream.files  # for spawned DataLoader workers


def test_celeba_without_partition_allows_only_all(tmp_path):
    write_celeba(tmp_path, partition=False)
    assert files.celeba(tmp_path, split="all", size=4).size == 6
    with pytest.raises(ConfigError) as err:
        files.celeba(tmp_path, split="train", size=4)
    assert err.value.key == "dataset.split" and "list_eval_partition.txt" in message(err)


def test_celeba_missing_or_download_explains_manual_fetch(tmp_path):
    with pytest.raises(ConfigError) as err:
        files.celeba(tmp_path, download=True)
    text = message(err)
    assert err.value.key == "paths.data_dir" and "Google Drive" in text
    assert str(tmp_path / "celeba" / "img_align_celeba") in text and "list_eval_partition.txt" in text
    write_celeba(tmp_path)
    assert files.celeba(tmp_path, size=4, download=True).size == 3  # present: nothing to fetch
    with pytest.raises(ConfigError, match=r"dataset.crop=300 .*/000001.jpg is 178×218"):
        files.celeba(tmp_path, size=4, crop=300)


def test_celeba_partition_listing_absent_files_is_an_error(tmp_path):
    write_celeba(tmp_path)
    (tmp_path / "celeba" / "img_align_celeba" / "000002.jpg").unlink()
    with pytest.raises(ConfigError, match="1 files of list_eval_partition.txt .* e.g. 000002.jpg"):
        files.celeba(tmp_path, size=4)
    partition = tmp_path / "celeba" / "list_eval_partition.txt"
    partition.write_text("000001.jpg 0\n000003.jpg 2\n")
    with pytest.raises(ConfigError, match="list_eval_partition.txt lists no file for split=valid"):
        files.celeba(tmp_path, split="valid", size=4)
    partition.write_text("000001.jpg train\n")
    with pytest.raises(ConfigError, match="line 1 is '000001.jpg train'"):
        files.celeba(tmp_path, size=4)


# --------------------------------------------------------------------------------------------
# Any folder


def test_folder_classes_from_subfolders(tmp_path):
    solid(tmp_path / "dogs" / "b.PNG", (10, 10, 10))
    solid(tmp_path / "cats" / "a.jpG", (20, 20, 20), fmt="JPEG")
    solid(tmp_path / "cats" / "deeper" / "c.bmp", (30, 30, 30))
    solid(tmp_path / "birds" / "d.webp", (40, 40, 40), fmt="WEBP")
    (tmp_path / "cats" / "notes.txt").write_text("not an image")
    src = files.folder(tmp_path, size=4, channels=1, in_memory=True)
    assert src.spec.shape == (1, 4, 4) and src.spec.name == "folder"
    # sorted files: birds/d, cats/a, cats/deeper/c, dogs/b; classes birds=0, cats=1, dogs=2
    assert src.labels.tolist() == [0, 1, 1, 2]
    means = (src.data.mean(dim=(1, 2, 3)) + 1) / 2 * 255
    assert torch.allclose(means, torch.tensor([40.0, 20.0, 30.0, 10.0]), atol=1.5)


def test_folder_without_subfolder_classes_and_centre_square(tmp_path):
    im = Image.new("RGB", (40, 20), (0, 0, 255))
    im.paste((0, 255, 0), (10, 0, 30, 20))  # the centre 20×20 square is green
    im.save(tmp_path / "wide.png")
    solid(tmp_path / "sub" / "x.gif", (255, 255, 255), fmt="GIF")
    src = files.folder(tmp_path, size=20, in_memory=False)
    assert isinstance(src, files.ImageFilesSource) and src.labels is None and src.size == 2
    x = src.__getitems__([1])[0]  # sub/x.gif sorts first
    assert src.files[1].endswith("wide.png")
    expected = torch.tensor([-1.0, 1.0, -1.0]).view(3, 1, 1).expand(3, 20, 20)
    torch.testing.assert_close(x, expected, rtol=0, atol=0)
    assert src.__getitems__([0]).eq(1.0).all()
    memory = files.folder(tmp_path, size=20, in_memory="auto")
    assert isinstance(memory, TensorSource)
    torch.testing.assert_close(memory.data, src.__getitems__([0, 1]), rtol=0, atol=0)


def test_folder_errors_name_the_path(tmp_path):
    with pytest.raises(ConfigError) as err:
        files.folder(tmp_path / "missing")
    assert err.value.key == "dataset.path" and "does not exist" in message(err)
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "sub" / "readme.txt").write_text("hi")
    with pytest.raises(ConfigError) as err:
        files.folder(tmp_path / "empty")
    assert str(tmp_path / "empty") in message(err) and ".png" in message(err) and ".webp" in message(err)
    for setting in ("dataset.channels=2", "dataset.in_memory='yes'", "dataset.size=0"):
        with pytest.raises(ConfigError, match=setting):
            check_settings(compose_cfg("dataset=folder", f"dataset.path={tmp_path}", setting.replace("'", "")))


def test_unreadable_image_is_an_error_naming_it(tmp_path):
    solid(tmp_path / "a.png", (1, 2, 3))
    (tmp_path / "b.jpg").write_bytes(b"\xff\xd8 this is no jpeg")
    with pytest.raises(ConfigError) as err:
        files.folder(tmp_path, size=4, in_memory=True)
    assert str(tmp_path / "b.jpg") in message(err) and err.value.key == "dataset.path"
    stream = files.folder(tmp_path, size=4, in_memory=False)  # only file 0 is probed at load
    with pytest.raises(ConfigError, match="b.jpg cannot be used as an image"):
        stream.__getitems__([0, 1])


# --------------------------------------------------------------------------------------------
# Paths and the Hydra configs


def test_relative_and_home_data_dirs(tmp_path, monkeypatch):
    write_idx_set(tmp_path / "here", n_train=2, n_test=1)
    monkeypatch.chdir(tmp_path)
    assert files.mnist("here").size == 2
    monkeypatch.setenv("HOME", str(tmp_path))
    assert files.mnist("~/here").size == 2


def test_dataset_configs_compose_and_instantiate(tmp_path):
    write_idx_set(tmp_path, n_train=5, n_test=2)
    cfg = compose_cfg("dataset=mnist", f"paths.data_dir={tmp_path}")
    src = hydra.utils.instantiate(cfg.dataset)
    assert isinstance(src, TensorSource) and src.size == 5 and src.spec.name == "mnist"
    solid(tmp_path / "pics" / "a.png", (0, 0, 0))
    cfg = compose_cfg("dataset=folder", f"dataset.path={tmp_path / 'pics'}", "dataset.size=8")
    assert hydra.utils.instantiate(cfg.dataset).data.shape == (1, 3, 8, 8)
    for name, target in (("fashion_mnist", "fashion_mnist"), ("cifar10", "cifar10"), ("celeba", "celeba")):
        cfg = compose_cfg(f"dataset={name}", f"paths.data_dir={tmp_path}")
        assert cfg.dataset._target_ == f"gan_lab.data.files.{target}"
        assert cfg.dataset.data_dir == str(tmp_path) and cfg.dataset.download is False
    cfg = compose_cfg("dataset=celeba")
    assert cfg.dataset.in_memory == "auto" and cfg.dataset.crop == 140
