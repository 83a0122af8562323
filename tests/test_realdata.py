"""``python -m gan_lab.realdata``: a data set's classifier accuracy on held-out images and the floor of its metrics
(held-out real images measured as samples), and ``dataset.pad_to`` on the 28 px sets."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gan_lab.data import files
from gan_lab.data.files import idx as idx_module
from gan_lab.data.images import mnist5k
from gan_lab.realdata import main
from tests.test_data_files import write_idx_set


def test_digits_floor_and_held_out_accuracy(tmp_path, capsys):
    """scikit-learn's digits: the classifier reads ≥ 93 % of the 297 held-out digits (it reaches ~98 %), and those
    digits, measured as if generated, sit at the floor: FID well under the 5 a weak generator scores here, precision and
    recall near 1, every class covered."""
    main(["dataset=digits", f"out={tmp_path}"])
    result = json.loads((tmp_path / "digits.json").read_text())
    assert 0.93 <= result["classifier"]["heldout_accuracy"] <= 1.0
    assert result["floor_n"] == 297 and result["heldout_images"] == 297 and result["train_images"] == 1500
    floor = result["floor"]
    assert 0.0 < floor["val/fid_297_digits_classifier"] < 1.5
    assert -0.02 < floor["val/kid_297_digits_classifier"] < 0.02
    assert floor["val/precision_297_digits_classifier"] > 0.9 and floor["val/recall_297_digits_classifier"] > 0.9
    assert floor["val/classes_covered_297_digits_classifier"] == 10
    assert "held-out" in result["protocols"]["floor"]
    shown = capsys.readouterr().out
    assert "held-out accuracy 0.9" in shown and "val/fid_297_digits_classifier" in shown


def test_floor_at_a_smaller_n_draws_that_many(tmp_path):
    main(["dataset=digits", "n=100", f"out={tmp_path}"])
    result = json.loads((tmp_path / "digits.json").read_text())
    assert result["floor_n"] == 100 and "val/fid_100_digits_classifier" in result["floor"]


@pytest.mark.parametrize(("argv", "words"), [
    (["dataset=ring"], ["dataset='ring' is not allowed", "labelled held-out images"]),
    (["n=100"], ["dataset=None is not allowed", "usage: python -m gan_lab.realdata"]),
    (["dataset=digits", "n=0"], ["n=0 is not allowed: an integer >= 1"]),
    (["dataset=digitz"], ["digitz"]),
])
def test_bad_arguments_are_one_line_and_exit_2(argv, words, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([*argv, f"out={tmp_path}"])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and err.startswith("gan_lab: error:") and "\n" not in err
    for word in words:
        assert word in err
    assert not list(tmp_path.iterdir())


def test_pad_to_centres_each_image_on_black_and_names_the_set(tmp_path):
    arrays = write_idx_set(tmp_path, folder="FashionMNIST", n_train=4, n_test=2, gz=True)
    plain = files.fashion_mnist(tmp_path)
    padded = files.fashion_mnist(tmp_path, pad_to=32)
    assert padded.spec.name == "fashion_mnist_32" and padded.spec.shape == (1, 32, 32)
    assert torch.equal(padded.data[:, :, 2:30, 2:30], plain.data) and padded.heldout.shape == (2, 1, 32, 32)
    border = padded.data.clone()
    border[:, :, 2:30, 2:30] = -1.0
    assert border.eq(-1.0).all() and torch.equal(padded.heldout[:, :, 2:30, 2:30], plain.heldout)
    assert padded.labels.tolist() == arrays["train"][1].tolist()
    write_idx_set(tmp_path, folder="MNIST", n_train=3, n_test=1)
    assert files.mnist(tmp_path, pad_to=28).spec.name == "mnist"  # 28: unchanged
    assert files.mnist(tmp_path, pad_to=36).spec.shape == (1, 36, 36)
    assert mnist5k(pad_to=32).spec.name == "mnist5k_32"


REAL = idx_module.FASHION_MNIST_SYSTEM_DIR


@pytest.mark.slow
@pytest.mark.skipif(not (REAL / "train-images-idx3-ubyte.gz").is_file(),
                    reason="Debian's dataset-fashion-mnist is not installed (make data)")
def test_fashion_mnist_classifier_and_floor(tmp_path):
    """The Fashion-MNIST classifier (60,000 training images, padded to 32 px) reads ≥ 88 % of the 10,000 test images;
    5,000 of them measured as samples give an FID floor under 1 (a few minutes: slow)."""
    main(["dataset=fashion_mnist", "dataset.pad_to=32", f"out={tmp_path}"])
    result = json.loads((tmp_path / "fashion_mnist_32.json").read_text())
    assert 0.88 <= result["classifier"]["heldout_accuracy"] <= 1.0 and result["floor_n"] == 5000
    assert 0.0 < result["floor"]["val/fid_5k_fashion_mnist_32_classifier"] < 1.0
    assert np.isfinite(result["floor"]["val/recall_5k_fashion_mnist_32_classifier"])
