"""The capture-ready step (train.cuda_graphs, gan_lab/systems/runner.py) on any device, without a GPU.

``train.cuda_graphs=stand_in`` runs exactly what a CUDA graph would replay — static inputs, statistics added
in place into device buffers, the host's side effects applied after each "replay" — but calls the function
again instead of replaying it. It must train to the eager step's weights and logged rows bit for bit, resume
exactly, and stay eager with one line where a run's step cannot be captured. tests/test_cuda_graphs.py
checks the real capture on a GPU.
"""

from __future__ import annotations

import logging

import pytest
import torch

from gan_lab.compose import build_components
from gan_lab.errors import ConfigError
from gan_lab.train import train
from tests.conftest import compose_cfg, interrupted_then_resumed

BASE = ["debug=tiny", "logger=none", "dataset=digits", "model.width=8", "train.iterations=6", "train.log_every=2"]
CAPTURABLE = {
    "default": [],
    "k2_sn_gp_ema": ["train.k=2", "regularizer=[sn,gp]", "loss=wasserstein", "tricks.ema=0.9"],
    "r3gan_pair": ["loss=rgan", "regularizer=[r1,r2]", "regularizer.weight=0.05"],
    "diffaug_lecam": ["tricks.diffaug=[color,translation,cutout]", "regularizer=[sn,lecam]", "loss=hinge"],
    "cr_fm": ["regularizer=[sn,cr]", "loss=hinge", "tricks.feature_matching=true"],
    "clip_noise": ["regularizer=clip", "loss=wasserstein", "tricks.instance_noise=0.1",
                   "tricks.instance_noise_schedule=constant", "tricks.minibatch_discrimination=true",
                   "tricks.minibatch_kernels=4"],
    "mlp_ring": ["model=mlp", "dataset=ring", "model.hidden=[16,16]", "optimizer.lr_decay=none"],  # a schedule: eager
}


def _state(run_dir) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)


def _rows(state) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "perf/iterations_per_s"} for row in state["gan_lab"]["history"]]


def _assert_same_run(a, b) -> None:
    sa, sb = _state(a), _state(b)
    assert sa["state_dict"].keys() == sb["state_dict"].keys()
    for key, value in sa["state_dict"].items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, sb["state_dict"][key]), key
    assert _rows(sa) == _rows(sb) and sa["gan_lab"]["d_updates"] == sb["gan_lab"]["d_updates"]


@pytest.mark.parametrize("case", sorted(CAPTURABLE))
def test_the_capture_ready_step_trains_to_the_eager_weights(case, tmp_path, monkeypatch):
    from gan_lab.systems.runner import Runner

    args = [*BASE, *CAPTURABLE[case]]
    if case == "mlp_ring":
        args.remove("dataset=digits")
        args.remove("model.width=8")
    train(compose_cfg(*args), tmp_path / "eager")
    replays = []
    original = Runner._capture

    def spy(self, system, fn, x):
        graph = original(self, system, fn, x)
        replay = graph.replay
        graph.replay = lambda: (replays.append(1), replay())
        return graph

    monkeypatch.setattr(Runner, "_capture", spy)
    train(compose_cfg(*args, "train.cuda_graphs=stand_in"), tmp_path / "graphs")
    k = 2 if "train.k=2" in args else 1
    # 6 iterations, logging at 2, 4, 6: each of the 4 update variants runs eagerly once, then replays
    assert len(replays) == 6 * (k + 1) - 4
    _assert_same_run(tmp_path / "eager", tmp_path / "graphs")


def test_the_capture_ready_step_resumes_exactly_with_evaluation_and_logging_on(tmp_path):
    """The default config's evaluation, CSV logger and checkpoints on; Ctrl-C at iteration 3, resumed."""
    args = ["debug=tiny", "dataset=digits", "model.width=8", "train.iterations=6", "train.checkpoint_every=1",
            "train.log_every=2", "eval.at_end=true", "eval.every=3", "eval.every_samples=40", "eval.samples=60",
            "train.k=2", "tricks.ema=0.9", "train.cuda_graphs=stand_in"]
    train(compose_cfg(*args[:-1]), tmp_path / "eager")
    summary = interrupted_then_resumed(args, tmp_path / "run", at=3)
    assert summary["evaluation"]["samples"] == 60 and (tmp_path / "run" / "logs").is_dir()
    _assert_same_run(tmp_path / "eager", tmp_path / "run")


@pytest.mark.parametrize(("extra", "why"), [
    (["tricks.historical_averaging=0.01"], "tricks.historical_averaging=0.01: the running mean's weight"),
    (["tricks.instance_noise=0.1"], "σ anneals on the host"),
    (["regularizer=r1", "regularizer.every=4"], "every=4 decides on the host"),
    (["model=lapgan", "model.hidden=16"], "LAPGAN system runs its own step"),
    (["optimizer.lr_decay=linear"], "optimizer.d.lr, optimizer.g.lr change every iteration"),
    (["train.simultaneous=true"], "holds its gradient across D's updates"),
])
def test_a_step_that_cannot_be_captured_stays_eager_saying_why(extra, why, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="gan_lab"):
        summary = train(compose_cfg(*BASE, *extra, "train.cuda_graphs=stand_in"), tmp_path)
    assert summary["status"] == "finished"
    lines = [r.getMessage() for r in caplog.records if "train.cuda_graphs" in r.getMessage()]
    assert len(lines) == 1 and why in lines[0] and "stays eager" in lines[0]


@pytest.mark.parametrize(("extra", "graphs", "capture_ready"), [
    ([], True, True), ([], False, False), ([], "stand_in", False), (["train.simultaneous=true"], True, False),
    (["model=lapgan", "model.hidden=16"], True, False),
])
def test_optimisers_keep_device_step_counts_only_when_the_run_will_capture(extra, graphs, capture_ready):
    """``capturable=True`` (step counts on the device, what a replayed step needs) only where updates will really be
    captured: eager runs, blocked ones included, do not pay for it."""
    from types import SimpleNamespace

    from gan_lab.compose import build_system

    cfg = compose_cfg(*BASE, *extra)
    system = build_system(cfg, build_components(cfg))
    system.runner.cuda_graphs = graphs  # what train.cuda_graphs=true sets on a GPU (refused on this CPU)
    system._trainer = SimpleNamespace(world_size=1)
    groups = [g for opt in system.configure_optimizers() for g in opt.param_groups]
    assert groups and all(g["capturable"] is capture_ready for g in groups)


@pytest.mark.parametrize(("overrides", "key", "words"), [
    (["train.cuda_graphs=true"], "train.cuda_graphs", "trainer.accelerator=cpu"),
    (["train.cuda_graphs=maybe"], "train.cuda_graphs", "true, false or stand_in"),
    (["accelerator=gpu", "train.compile_generator=true"], "train.compile_generator", "trainer.accelerator=gpu"),
    (["train.simultaneous=yes"], "train.simultaneous", "true or false"),
    (["train.simultaneous=true", "trainer.precision=16-mixed"], "train.simultaneous", "trainer.precision=16-mixed"),
])
def test_speed_options_refuse_what_cannot_work_naming_both(overrides, key, words):
    with pytest.raises(ConfigError) as info:
        build_components(compose_cfg("model=mlp", "dataset=ring", *overrides))
    assert info.value.key == key and words in str(info.value)


class Listener:
    """A Lightning callback listening to the per-step hooks the lean path skips (built by _target_)."""

    seen: list[bool] = []

    def __new__(cls):
        import lightning as L

        class _Listener(L.Callback):
            def on_before_optimizer_step(self, trainer, module, optimizer):
                Listener.seen.append(module.runner.lean)

        return _Listener()


def test_the_lean_eager_path_gives_way_to_callbacks_that_listen_to_lightning_hooks(tmp_path):
    """Raw backward/step skip Lightning's per-step hooks; a callback that listens to them gets Lightning's path."""
    Listener.seen.clear()
    train(compose_cfg(*BASE, "train.iterations=2", f"+callbacks.listen._target_={__name__}.Listener"), tmp_path)
    assert Listener.seen == [False] * 4  # every optimiser step (2 per iteration) called it, on Lightning's path
