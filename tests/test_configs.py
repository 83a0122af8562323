"""Driven by the config tree: every file of every group composes and trains a few iterations, with the
evaluation on as in the default config (during training and at the end; only the sample counts shrunk).

A new config file is picked up automatically; one that cannot run on this CPU must be listed in
COMPOSE_ONLY with a reason, or this test fails.
"""

from __future__ import annotations

import json

import pytest
import torch

from gan_lab.train import train
from tests.conftest import CONF, compose_cfg, group_options

# Each group's files run on top of these (fast) settings.
BASE = {
    "model": ["dataset=digits"],  # 8 px: dcgan 4→8, progressive 4→8
    "loss": ["model=mlp", "dataset=ring", "model.hidden=[32,32]"],
    "regularizer": ["model=mlp", "dataset=ring", "model.hidden=[32,32]", "loss=wasserstein"],
    "dataset": ["model=mlp", "model.hidden=[32,32]"],
    "optimizer": ["model=mlp", "dataset=ring", "model.hidden=[32,32]"],
    "accelerator": ["model=mlp", "dataset=ring", "model.hidden=[32,32]"],
    "logger": ["model=mlp", "dataset=ring", "model.hidden=[32,32]"],
    "experiment": [],  # presets bring their own model and data; debug=tiny shrinks the run
    "debug": ["model=mlp", "dataset=ring", "model.hidden=[32,32]"],
}
# Options that cannot run on their group's base (image-only regularizers), and the base they run on instead.
OWN_BASE = {("regularizer", "cr"): ["dataset=digits", "model.width=8", "loss=hinge"]}
# Options that need other data than their group's base.
EXTRA = {("model", "parallel_lines"): ["dataset=lines"], ("model", "affine1d"): ["dataset=gauss1d"],
         # the paper's widths (22M parameters a network) spend minutes writing checkpoints here
         ("model", "stylegan2"): ["model.z_dim=32", "model.w_dim=32", "model.mapping_layers=2", "model.channel_max=32"],
         # the paper's widths (20M parameters a network) take minutes here; narrower nets run the same step
         ("experiment", "r3gan"): ["model.widths=[32]", "model.blocks=1", "dataset.pad_to=32"],
         ("experiment", "r3gan_small"): ["dataset.pad_to=32"],
         ("experiment", "sngan_projection"): ["model.g_width=32", "model.g_max_width=32", "model.d_width=32",
                                              "model.d_max_width=32"],
         # its 512 channels (G 19.9M / D 20.7M parameters) spend minutes here; 32 run the same step
         ("experiment", "stylegan2_cifar"): ["model.channel_max=32", "model.z_dim=32", "model.w_dim=32"],
         # 1,000 of its 50,000 images: the real statistics then read 1,000 images, not 10,000 (~10 s, 3 channels each)
         ("dataset", "stacked_mnist"): ["dataset.size=1000"]}
# Data sets read from disk: the test writes tiny files in each real format (tests/test_data_files.py).
# (a minibatch is at most the training set: the tiny cifar10, celeba and folder sets hold 15, 3 and 4 images)
ON_DISK = {"mnist": [], "fashion_mnist": [], "cifar10": ["train.batch_size=2"],
           "celeba": ["dataset.size=8", "dataset.crop=140", "train.batch_size=2"],
           "folder": ["dataset.size=8", "train.batch_size=2"], "zip": ["train.batch_size=4"]}
# Presets whose data set is one of those (the tiny files, with their settings).
PRESETS_ON_DISK = {"stylegan2_cifar": "cifar10", **{f"fashion_{row}": "fashion_mnist"
                                                    for row in ("dcgan", "sngan", "stylegan2", "r3gan")}}
COMPOSE_ONLY = {
    ("accelerator", "gpu"): "needs a CUDA device",
    ("accelerator", "ddp"): "needs CUDA devices",
    ("accelerator", "ddp_cpu"): "spawns processes: tests/test_ddp.py runs it",
    ("accelerator", "slurm"): "needs a SLURM allocation with GPUs (tests/test_launchers.py composes it)",
}
CASES = [(g, o) for g in sorted(BASE) for o in group_options(g)]
# debug=tiny turns evaluation off; these put it back, as the default config has it, with small counts.
EVAL_ON = ["eval.at_end=true", "eval.every=2", "eval.every_samples=40", "eval.samples=60"]


def test_every_group_has_a_base():
    # conf/tricks holds one file per trick, all of them composed at once (tests/test_parts.py drives them);
    # conf/dataset_model a data set and model pair's defaults, chosen by the two (tests/test_toy_defaults.py)
    groups = {p.name for p in CONF.iterdir() if p.is_dir() and not p.name.startswith("_")} - {"hydra", "tricks",
                                                                                              "dataset_model"}
    assert groups == set(BASE), "a new config group needs an entry in BASE"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    from tests.test_data_files import solid, write_celeba, write_cifar, write_idx_set
    from tests.test_dataset_tool import tiny_set

    root = tmp_path_factory.mktemp("data")
    write_idx_set(root, "MNIST")
    write_idx_set(root, "FashionMNIST", gz=True)
    write_cifar(root)
    write_celeba(root)
    for i, colour in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255), (9, 9, 9)]):
        solid(root / "folder" / f"{i}.png", colour)
    tiny_set(root / "set.zip")  # 24 labelled 8×8 images in the field's archive layout
    return root


@pytest.mark.parametrize(("group", "option"), CASES, ids=[f"{g}={o}" for g, o in CASES])
def test_group_file_composes_and_trains(group, option, tmp_path, request, weight_digests):
    disk = []
    data = option if group == "dataset" else PRESETS_ON_DISK.get(option) if group == "experiment" else None
    if data in ON_DISK:
        root = request.getfixturevalue("data_dir")
        path = {"folder": root / "folder", "zip": root / "set.zip"}.get(data)
        disk = [f"paths.data_dir={root}", *ON_DISK[data]] + ([f"dataset.path={path}"] if path else [])
    base = OWN_BASE.get((group, option), BASE[group])
    cfg = compose_cfg("debug=tiny", *EVAL_ON, *base, f"{group}={option}", *EXTRA.get((group, option), []),
                      *disk)
    if (group, option) in COMPOSE_ONLY:
        if option in ("gpu", "ddp") and torch.cuda.is_available():
            pass  # a GPU machine runs it for real
        else:
            assert cfg.trainer.accelerator in ("cpu", "gpu")
            pytest.skip(COMPOSE_ONLY[(group, option)])
    summary = train(cfg, tmp_path)
    assert summary["status"] == "finished"
    assert summary["iterations"] == cfg.train.iterations
    finals = summary["metrics"]
    assert finals and all(v == v for v in finals.values() if isinstance(v, float) and v != float("inf"))
    assert json.loads((tmp_path / "metrics.json").read_text())["iterations"] == cfg.train.iterations
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert (tmp_path / "samples" / "final.png").is_file()
    assert summary["evaluation"]["samples"] == 60  # the end-of-run evaluation ran, on its 60 samples
    measured = [k for k in finals if k.startswith(("val/", "toy/", "memorization/"))]
    assert measured, sorted(finals)
    weight_digests(f"{group}={option}", tmp_path)


def test_wgan_clip_preset_has_the_paper_settings():
    cfg = compose_cfg("experiment=wgan_clip")
    assert cfg.optimizer.d._target_ == "torch.optim.RMSprop" and cfg.optimizer.g.lr == 5e-5
    assert cfg.optimizer.d.lr == 5e-5
    assert cfg.regularizer.clip_value == 0.01 and cfg.train.k == 5 and cfg.train.batch_size == 64
    assert cfg.loss._target_.endswith("Wasserstein")


def test_r3gan_preset_is_rpgan_plus_r1_and_r2_at_one_gamma():
    from gan_lab.compose import build
    from gan_lab.regularizers.composite import build_regularizer
    from gan_lab.regularizers.r1 import R1
    from gan_lab.regularizers.r2 import R2

    cfg = compose_cfg("experiment=r3gan")
    loss = build(cfg.loss)
    assert loss.name == "rgan" and loss.form == "sigmoid" and loss.caps.g_needs_real
    r1, r2 = build_regularizer(cfg.regularizer, build).parts
    assert type(r1) is R1 and type(r2) is R2 and r1.weight == r2.weight == 0.05
    assert list(cfg.optimizer.d.betas) == list(cfg.optimizer.g.betas) == [0.0, 0.9] and cfg.optimizer.d.lr == 2e-4
    assert cfg.train.batch_size == 512 and cfg.model.z_dim == 64 and cfg.model.d_norm == "none"
    # their AugmentPipe: bgc with the colour transforms at half probability, plus cutout
    assert dict(cfg.tricks.ada_strengths) == {**dict.fromkeys(["brightness", "contrast", "lumaflip", "hue",
                                                                "saturation"], 0.5), "cutout": 1}
