"""train.cuda_graphs=true on a CUDA device: the captured step against the eager one, and exact resume.

Skipped without a GPU (CI has none); tests/test_graphs.py checks the same step's bookkeeping on any device.
"""

from __future__ import annotations

import pytest
import torch

from gan_lab.train import train
from tests.conftest import compose_cfg, interrupted_then_resumed
from tests.test_graphs import CAPTURABLE, _rows, _state

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

BASE = ["debug=tiny", "logger=none", "accelerator=gpu", "dataset=digits", "model.width=8", "train.iterations=12",
        "train.log_every=4"]


def _close_runs(a, b, rtol: float, atol: float) -> None:
    sa, sb = _state(a), _state(b)
    for key, value in sa["state_dict"].items():
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            torch.testing.assert_close(value, sb["state_dict"][key], rtol=rtol, atol=atol, msg=key)
    ra, rb = _rows(sa), _rows(sb)
    assert [r.keys() for r in ra] == [r.keys() for r in rb]
    assert sa["gan_lab"]["d_updates"] == sb["gan_lab"]["d_updates"]


@pytest.mark.parametrize("case", ["default", "k2_sn_gp_ema", "r3gan_pair", "diffaug_lecam", "cr_fm"])
@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_graphs_train_like_the_eager_step(case, precision, tmp_path, caplog):
    args = [*BASE, *CAPTURABLE[case], f"trainer.precision={precision}"]
    train(compose_cfg(*args), tmp_path / "eager")
    train(compose_cfg(*args, "train.cuda_graphs=true"), tmp_path / "graphs")
    assert "stays eager" not in caplog.text
    # the same kernels on the same random numbers; cuBLAS may pick other algorithms inside a capture
    tol = (1e-4, 1e-5) if precision == "32-true" else (2e-2, 2e-3)
    _close_runs(tmp_path / "eager", tmp_path / "graphs", *tol)


def test_graphs_resume_exactly(tmp_path):
    """Bit for bit, so with deterministic algorithms: without them cuBLAS and cuDNN may pick other kernels in the
    resumed process's captures (Lightning sets CUBLAS_WORKSPACE_CONFIG for it)."""
    args = [*BASE, "train.checkpoint_every=1", "train.k=2", "tricks.ema=0.9", "train.cuda_graphs=true",
            "trainer.deterministic=true"]
    train(compose_cfg(*args), tmp_path / "ref")
    interrupted_then_resumed(args, tmp_path / "run", at=7)
    _close_runs(tmp_path / "ref", tmp_path / "run", 0.0, 0.0)  # bit for bit
