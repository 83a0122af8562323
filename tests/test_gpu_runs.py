"""What only a GPU can show of the lab's GPU path (marked ``gpu``; CI has none: ``make gpu-check`` runs them).

Each is a failure a CPU suite cannot see because every tensor there lives on one device: statistics created on
the host by a resume meeting CUDA values, host-computed scalars joining a row on the device, G's weights under
bf16 autocast on CUDA, the math settings a GPU run takes, and the device-side evaluation path.
"""

from __future__ import annotations

import pytest
import torch

from gan_lab.train import train
from tests.conftest import compose_cfg, interrupted_then_resumed

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

GPU = ["accelerator=gpu", "dataset=digits", "model.width=8", "logger=none", "trainer.enable_progress_bar=false"]


def test_a_resume_with_a_half_accumulated_row_continues_on_the_gpu(tmp_path):
    """Checkpoints every 3 iterations, rows every 4: the resumed run restores a pending row's sums on the host,
    and its first accumulation adds CUDA values into them."""
    args = [*GPU, "train.iterations=12", "train.log_every=4", "train.checkpoint_every=3", "eval.every=0",
            "eval.at_end=false"]
    summary = interrupted_then_resumed(args, tmp_path / "run", at=7)
    assert summary["status"] == "finished" and summary["iterations"] == 12
    rows = [r for r in summary["metrics"] if r.startswith("train/")]
    assert "train/d_loss" in rows


@pytest.mark.parametrize("extra", [["tricks.instance_noise=0.1"], ["model=progressive"]],
                         ids=["instance_noise", "progressive"])
def test_statistics_computed_on_the_host_join_the_row_on_the_gpu(extra, tmp_path):
    summary = train(compose_cfg(*GPU, *extra, "train.iterations=8", "train.log_every=4", "eval.every=0"), tmp_path)
    assert summary["status"] == "finished"


def test_every_generator_weight_moves_under_bf16_autocast_on_cuda(tmp_path):
    from tests.test_precision import GMoves

    GMoves.moved.clear()
    summary = train(compose_cfg(*GPU, "train.iterations=3", "trainer.precision=bf16-mixed", "eval.every=0",
                                "eval.at_end=false", "+callbacks.moves._target_=tests.test_precision.GMoves"),
                    tmp_path)
    assert summary["status"] == "finished" and GMoves.moved == [1.0]


@pytest.mark.parametrize(("tf32", "deterministic"), [(False, False), (True, False), (False, True)])
def test_a_gpu_run_sets_tf32_and_the_autotuner_as_asked(tf32, deterministic, tmp_path):
    train(compose_cfg(*GPU, "train.iterations=2", "eval.every=0", "eval.at_end=false", f"train.tf32={tf32}",
                      f"trainer.deterministic={deterministic}"), tmp_path)
    assert torch.backends.cuda.matmul.allow_tf32 is tf32 and torch.backends.cudnn.allow_tf32 is tf32
    assert torch.backends.cudnn.benchmark is (not deterministic)


def test_the_gpu_evaluation_keeps_images_on_the_device_and_measures_like_the_cpu(tmp_path):
    """The same weights measured on the GPU (images never copied to the host) and on the CPU agree (full fp32
    feature extraction on both)."""
    from gan_lab.measure import evaluate_system
    from gan_lab.runs import load_run

    train(compose_cfg(*GPU, "train.iterations=20", "eval.every=0", "eval.at_end=false"), tmp_path / "run")
    loaded = load_run(tmp_path / "run")
    on_gpu = evaluate_system(loaded.system.cuda(), loaded.source, tmp_path / "run", n=500, seed=0)["metrics"]
    on_cpu = evaluate_system(loaded.system.cpu(), loaded.source, tmp_path / "run", n=500, seed=0)["metrics"]
    fid = "val/fid_500_digits_classifier"
    assert on_gpu[fid] == pytest.approx(on_cpu[fid], rel=1e-3)
