"""Algorithm 1's mechanics on a real optimiser step: who changes, how often, within what bounds."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from gan_lab.compose import build_components, build_system
from gan_lab.systems.conditioning import Batch
from gan_lab.systems.schedule import Simultaneous
from gan_lab.train import train
from tests.conftest import compose_cfg


def _system(*overrides: str):
    cfg = compose_cfg("model=mlp", "dataset=ring", "model.hidden=[16,16]", *overrides)
    system = build_system(cfg, build_components(cfg))
    opt_d, opt_g = system.configure_optimizers()
    system.manual_backward = lambda loss: loss.backward()  # no Trainer attached
    return system, opt_d, opt_g


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _changed(before: dict[str, torch.Tensor], module: torch.nn.Module) -> set[str]:
    return {k for k, v in module.state_dict().items() if not torch.equal(before[k], v)}


def _player(optimizer: torch.optim.Optimizer) -> str:
    """"d" or "g": whose optimiser this is, in a run on 2-D points (D's first layer reads 2 inputs, G's z)."""
    return "d" if optimizer.param_groups[0]["params"][0].shape[-1] == 2 else "g"


@pytest.mark.parametrize("loss", ["ns", "minimax", "wasserstein", "hinge", "lsgan"])
def test_d_step_changes_only_d(loss):
    system, opt_d, _ = _system(f"loss={loss}")
    g0, d0 = _snapshot(system.generator), _snapshot(system.discriminator)
    system.d_step(opt_d, Batch(torch.randn(32, 2)))
    assert _changed(g0, system.generator) == set()
    weights = {k for k in d0 if k.endswith("weight")}
    assert weights <= _changed(d0, system.discriminator)  # every D weight matrix moved
    # (the critic's output bias cancels in E[v_f] - E[v_r]: a zero gradient is correct there)
    assert all(p.grad is None for p in system.generator.parameters())


@pytest.mark.parametrize("loss", ["ns", "minimax", "wasserstein", "hinge", "lsgan"])
def test_g_step_changes_only_g(loss):
    system, _, opt_g = _system(f"loss={loss}")
    g0, d0 = _snapshot(system.generator), _snapshot(system.discriminator)
    system.g_step(opt_g, Batch(torch.randn(32, 2)))
    assert _changed(d0, system.discriminator) == set()
    assert {k for k in g0 if k.endswith("weight")} <= _changed(g0, system.generator)
    assert all(p.grad is None for p in system.discriminator.parameters())
    assert all(p.requires_grad for p in system.discriminator.parameters())  # unfrozen again


@pytest.mark.parametrize("loss", ["minimax", "ns"])
def test_simultaneous_update_takes_both_gradients_at_the_same_state(loss):
    """train.simultaneous: G's step is the one it would take before D moves, D's the one it would take
    before G moves, even when a D update leaves a gradient on G; the alternating orders give other weights (so
    the test can tell them apart)."""
    torch.manual_seed(0)
    base, *_ = _system(f"loss={loss}")
    real = Batch(torch.randn(32, 2))

    def fresh():
        system = copy.deepcopy(base)  # (with _system's manual_backward)
        return (system, *system.configure_optimizers())

    def run(order: str):
        system, opt_d, opt_g = fresh()
        g0 = _snapshot(system.generator)
        torch.manual_seed(1)
        if order.startswith("simultaneous"):
            def d_updates():
                system.d_step(opt_d, real)
                if order == "simultaneous_stray":  # a D update leaving a gradient on G: G's held one must win
                    system.generator(torch.randn(4, system.z_dim)).sum().backward()

            system.schedule = Simultaneous()
            system.schedule.iterate(d_updates, lambda: system.g_step(opt_g, real))
            assert system.schedule.pending is None and system.d_updates == 1
        elif order == "g_then_d":  # G's step first; D's step against the moved G
            system.g_step(opt_g, real)
            system.d_step(opt_d, real)
        elif order == "g_draws_then_d":  # the same random draws as the simultaneous step, G left where it was
            system.g_step(opt_g, real)
            system.generator.load_state_dict(g0)
            system.d_step(opt_d, real)
        else:  # Algorithm 1: D first, then G against the moved D
            system.d_step(opt_d, real)
            system.g_step(opt_g, real)
        return _snapshot(system.generator), _snapshot(system.discriminator)

    (g_sim, d_sim), (g_gd, d_gd) = run("simultaneous"), run("g_then_d")
    g_stray, _ = run("simultaneous_stray")
    assert g_stray.keys() == g_sim.keys() and all(torch.equal(g_stray[k], g_sim[k]) for k in g_sim)
    _, d_same_state = run("g_draws_then_d")
    g_alt, _ = run("alternating")
    assert all(torch.equal(g_sim[k], g_gd[k]) for k in g_sim)  # G's gradient was taken at the old D
    assert all(torch.equal(d_sim[k], d_same_state[k]) for k in d_sim)  # D's at the old G
    assert any(not torch.equal(d_sim[k], d_gd[k]) for k in d_sim)
    assert any(not torch.equal(g_sim[k], g_alt[k]) for k in g_sim)


def test_simultaneous_run_with_evaluation_logging_and_checkpoints_on(tiny, tmp_path):
    """The path experiment=ring_collapse takes: per iteration G's loss is taken first, then D's k updates,
    then G's step (Adam steps D, D, G); the run evaluates, logs and checkpoints as any other."""
    from gan_lab.systems.gan import GAN

    cfg = tiny("model=mlp", "dataset=ring", "model.hidden=[16]", "train.k=2", "train.iterations=6",
               "train.log_every=1", "eval.at_end=true", "eval.every=3", "eval.samples=60", "train.simultaneous=true")
    events: list[str] = []
    original_objective, original_d_step, original_step = GAN.generator_objective, GAN.d_step, torch.optim.Adam.step

    def objective(self, *args, **kwargs):
        events.append("g_loss")
        return original_objective(self, *args, **kwargs)

    def d_step(self, *args, **kwargs):
        events.append("d_step")
        return original_d_step(self, *args, **kwargs)

    def step(self, *args, **kwargs):
        events.append(f"adam_{_player(self)}")
        return original_step(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(GAN, "generator_objective", objective)
        mp.setattr(GAN, "d_step", d_step)
        mp.setattr(torch.optim.Adam, "step", step)
        summary = train(cfg, tmp_path)
    assert events == ["g_loss", "d_step", "adam_d", "d_step", "adam_d", "adam_g"] * 6
    assert summary["status"] == "finished" and summary["d_updates"] == 12
    assert summary["evaluation"]["samples"] == 60 and (tmp_path / "checkpoints" / "last.ckpt").is_file()
    rows = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert sum("train/g_loss" in r and "train/d_loss" in r for r in rows) == 6


@pytest.mark.parametrize("k", [1, 3, 5])
def test_k_d_updates_per_g_update(tiny, tmp_path, k):
    cfg = tiny("model=mlp", "dataset=ring", "model.hidden=[16]", f"train.k={k}", "train.iterations=6",
               "logger=none")
    counts = {"d": 0, "g": 0}
    original_step = torch.optim.Adam.step

    def counting_step(self, *args, **kwargs):
        counts[_player(self)] += 1
        return original_step(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.optim.Adam, "step", counting_step)
        summary = train(cfg, tmp_path)
    assert counts == {"d": 6 * k, "g": 6}
    assert summary["iterations"] == 6 and summary["d_updates"] == 6 * k


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_linear_lr_decay_sets_both_rates_before_every_iteration(tiny, tmp_path, optimizer):
    """optimizer.lr_decay=linear: every step of iteration t (its k D steps, its G step) runs at lr·(1 − t/T)."""
    cfg = tiny("model=mlp", "dataset=ring", "model.hidden=[16]", "train.k=2", "train.iterations=5", "train.log_every=1",
               "logger=none", f"optimizer={optimizer}", "optimizer.d.lr=0.01", "optimizer.g.lr=0.003",
               "optimizer.lr_decay=linear")
    seen = []
    cls = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}[optimizer]
    original_step = cls.step

    def recording_step(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return original_step(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cls, "step", recording_step)
        summary = train(cfg, tmp_path)
    expected = [lr * (1 - t / 5) for t in range(5) for lr in (0.01, 0.01, 0.003)]  # D, D, G per iteration
    assert seen == pytest.approx(expected, rel=1e-12, abs=0)
    assert summary["metrics"]["train/lr_d"] == pytest.approx(0.01 / 5) and "train/lr_g" in summary["metrics"]


def test_each_d_step_sees_a_fresh_real_minibatch(tiny, tmp_path):
    cfg = tiny("model=mlp", "dataset=ring", "model.hidden=[16]", "train.k=3", "train.iterations=2",
               "logger=none")
    seen: list[torch.Tensor] = []
    from gan_lab.systems.gan import GAN

    original = GAN.d_step

    def recording(self, opt_d, real, measure_grad=False):
        seen.append(real.x.clone())
        return original(self, opt_d, real, measure_grad)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(GAN, "d_step", recording)
        train(cfg, tmp_path)
    assert len(seen) == 6 and all(r.shape == (16, 2) for r in seen)
    for i in range(len(seen)):
        for j in range(i):
            assert not torch.equal(seen[i], seen[j])


def test_clipping_keeps_every_d_weight_in_range(tiny, tmp_path):
    cfg = tiny("model=mlp", "dataset=ring", "model.hidden=[16,16]", "loss=wasserstein",
               "regularizer=clip", "regularizer.clip_value=0.03", "train.k=2", "train.iterations=5",
               "logger=none", "optimizer.d.lr=0.05")
    captured = {}
    from gan_lab.systems.gan import GAN

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(GAN, "on_train_end", lambda self: captured.update(d=copy.deepcopy(self.discriminator)))
        train(cfg, tmp_path)
    params = torch.cat([p.detach().flatten() for p in captured["d"].parameters()])
    assert params.abs().max() <= 0.03 + 1e-7
    assert params.abs().max() == pytest.approx(0.03)  # the large lr pushed weights onto the bound


def test_statistics_follow_the_module_after_a_resume():
    """The half-accumulated row a checkpoint carries is restored into buffers of the system: wherever the system is
    moved afterwards (as Lightning moves it after restore(), to its GPU), they move with it, so the next row adds
    like to like. Neither the sums nor their names enter the state dict (weights and digests do not see them)."""
    system, opt_d, _ = _system()
    system.d_step(opt_d, Batch(torch.randn(32, 2)), measure_grad=True)
    system.accumulate({"host_value": torch.tensor(3.0)})  # a statistic computed on the host (a schedule's value)
    saved = {"state_dict": system.state_dict(), "gan_lab": {"iteration": 1, **system.statistics.pending()}}
    assert not any("statistics" in k for k in saved["state_dict"])
    resumed, _, _ = _system()
    resumed.restore(saved)
    assert set(resumed.statistics.sums()) == set(system.statistics.sums()) and resumed.statistics.counts["d_loss"] == 1
    resumed.to(torch.float64)
    assert {t.dtype for t in resumed.statistics.sums().values()} == {torch.float64}
    resumed.to("meta")
    assert {t.device.type for t in resumed.statistics.sums().values()} == {"meta"}
