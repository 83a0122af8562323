"""Post-hoc EMA (Karras et al. 2024, EDM2 §3): the σ_rel ↔ γ map, the power-function average against its closed
form, the least-squares reconstruction, and tricks.phema / python -m gan_lab.phema on a tiny run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from gan_lab import phema_math as pm
from gan_lab.errors import ConfigError
from gan_lab.phema import Snapshot, reconstruct
from gan_lab.train import train
from gan_lab.tricks.phema import PowerFunctionEMA, snapshot_files
from tests.conftest import compose_cfg, interrupted_then_resumed, refused
from tests.test_parts import EVAL_ON

TRACKED = (0.05, 0.1)


# ---------------------------------------------------------------- σ_rel ↔ γ


def test_sigma_rel_and_gamma_round_trip_and_meet_edm2s_numbers():
    sigmas = np.array([0.001, 0.01, 0.05, 0.075, 0.1, 0.2, 0.28, pm.SIGMA_REL_MAX])
    gammas = pm.sigma_rel_to_gamma(sigmas)
    np.testing.assert_allclose(pm.gamma_to_sigma_rel(gammas), sigmas, rtol=1e-12)
    # the cubic of EDM2 Eq. 126: (γ + 2)²(γ + 3) = σ_rel⁻²(γ + 1)
    np.testing.assert_allclose((gammas + 2) ** 2 * (gammas + 3), sigmas ** -2 * (gammas + 1), rtol=1e-10)
    assert gammas[-1] == pytest.approx(0.0, abs=1e-12)  # 1/√12: the plain mean of every weight
    assert np.all(np.diff(gammas) < 0)  # narrower profile, larger exponent
    # EDM2 §3.1: σ_rel 0.05 and 0.10 track γ 16.97 and 6.94
    np.testing.assert_allclose(pm.sigma_rel_to_gamma([0.05, 0.10]), [16.97, 6.94], atol=0.005)
    for bad in (0.0, -0.1, 0.29):
        with pytest.raises(ValueError, match="sigma_rel"):
            pm.sigma_rel_to_gamma(bad)


# ---------------------------------------------------------------- the average during training


@pytest.mark.parametrize("gamma", [0.0, 1.0, 6.94, 16.97])
def test_power_ema_equals_its_explicit_weighted_average(gamma):
    """β_t = (1 − 1/t)^(γ+1) on a scalar sequence gives Σ w_t θ_t with w_t = (t^(γ+1) − (t−1)^(γ+1)) / T^(γ+1),
    which sum to 1; γ = 0 is the running mean; late weights are ∝ t^γ to within γ/(2t) + (γ+1)/T."""
    rng = np.random.default_rng(0)
    steps = 2000
    theta = rng.normal(size=steps).cumsum()
    average = 0.0
    for t in range(1, steps + 1):
        beta = float(pm.power_beta(t, gamma))
        average = beta * average + (1 - beta) * theta[t - 1]
    w = pm.power_weights(steps, gamma)
    assert w.sum() == pytest.approx(1.0, abs=1e-12)
    assert average == pytest.approx(float(w @ theta), rel=1e-10, abs=1e-10)
    if gamma == 0:
        assert average == pytest.approx(theta.mean(), rel=1e-10)
    t = np.arange(1, steps + 1)
    proportional = t ** gamma / (t ** gamma).sum()
    late = t >= steps // 2
    assert np.abs(w[late] / proportional[late] - 1).max() < gamma / steps + (gamma + 1) / steps + 1e-12


def test_the_tricks_module_follows_the_closed_form_and_copies_buffers():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 2, bias=False), nn.BatchNorm1d(2)).double()
    averages = PowerFunctionEMA(net, list(TRACKED))
    path = []
    for _ in range(50):
        with torch.no_grad():
            net[0].weight.add_(torch.randn_like(net[0].weight))
        net(torch.randn(8, 3, dtype=torch.float64))  # moves the batch-norm statistics
        path.append(net[0].weight.detach().clone())
        averages.update(net)
    path = torch.stack(path)
    for i, gamma in enumerate(averages.gammas):
        w = torch.from_numpy(pm.power_weights(50, gamma))
        expected = (w[:, None, None] * path).sum(0)
        torch.testing.assert_close(averages.averages[i][0].weight, expected, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(averages.averages[i][1].running_mean, net[1].running_mean, rtol=0, atol=0)
    assert averages.steps == 50 and not any(p.requires_grad for p in averages.parameters())


# ---------------------------------------------------------------- reconstruction


def _toy_path(steps: int = 400, dim: int = 64) -> np.ndarray:
    """A drifting random walk of weights, one row per step."""
    rng = np.random.default_rng(1)
    return rng.normal(size=(steps, dim)).cumsum(0) + np.linspace(0, 30, steps)[:, None]


def _tracked(path: np.ndarray, sigma_rels, every: int) -> tuple[list[Snapshot], dict[float, np.ndarray]]:
    """PowerFunctionEMA over the path: its snapshots every ``every`` steps, and each average at the end."""
    net = nn.Linear(path.shape[1], 1, bias=False).double()
    averages = PowerFunctionEMA(net, list(sigma_rels))
    snapshots = []
    for t, theta in enumerate(path, start=1):
        net.weight.data.copy_(torch.from_numpy(theta)[None])
        averages.update(net)
        if t % every == 0:
            snapshots += [Snapshot(None, t, t, s, averages.state_of(i)) for i, s in enumerate(sigma_rels)]
    return snapshots, {s: averages.state_of(i)["weight"][0].numpy() for i, s in enumerate(sigma_rels)}


def test_a_tracked_sigma_rel_is_reconstructed_as_its_own_average():
    path = _toy_path()
    snapshots, final = _tracked(path, TRACKED, every=20)
    result = reconstruct(snapshots, list(TRACKED), {"weight"})
    for j, sigma in enumerate(TRACKED):
        np.testing.assert_allclose(result.states[j]["weight"][0].numpy(), final[sigma], rtol=1e-10, atol=1e-9)
        assert result.errors[j] < 1e-6
    assert result.iteration == result.steps == 400


@pytest.mark.parametrize("target", [0.075, 0.15, 0.2])
def test_an_untracked_sigma_rel_is_reconstructed_far_better_than_either_tracked_average(target):
    """20 snapshot times of σ_rel 0.05 and 0.10 over 400 steps: the reconstruction is within 1 % of the distance
    from the direct power-function average of ``target`` to the nearer tracked one (measured: 0.07 %, 0.13 %,
    0.6 %)."""
    path = _toy_path()
    snapshots, final = _tracked(path, TRACKED, every=20)
    _, direct = _tracked(path, [target], every=len(path))
    result = reconstruct(snapshots, [target], {"weight"})
    error = np.linalg.norm(result.states[0]["weight"][0].numpy() - direct[target])
    nearer = min(np.linalg.norm(final[s] - direct[target]) for s in TRACKED)
    assert error < 0.01 * nearer
    assert 0 < result.errors[0] < 0.02  # the profile's relative L2 error


def test_the_coefficients_sum_to_one_and_the_profile_error_falls_with_more_snapshots():
    errors = []
    for n in (4, 8, 16, 32):
        t = np.repeat(np.arange(1, n + 1) * (2048 // n), 2)
        s = np.tile(TRACKED, n)
        x = pm.solve_posthoc_coefficients(t, s, 2048, [0.03, 0.075, 0.2])
        np.testing.assert_allclose(x.sum(0), 1.0, rtol=1e-12)
        errors.append(pm.profile_error(t, s, 2048, [0.03, 0.075, 0.2], x))
    assert np.all(np.diff(np.array(errors), axis=0) < 0)
    assert np.all(errors[-1] < 0.012)  # 32 snapshots: about 1 % (measured 1.1 %, 0.09 %, 0.65 %)


# ---------------------------------------------------------------- the trick and the command on a tiny run

RUN = ["debug=tiny", "model=mlp", "dataset=ring", "model.hidden=[16,16]", "model.g_norm=batch", *EVAL_ON,
       "train.iterations=12", "train.checkpoint_every=4", "tricks.phema=true", "tricks.phema_every=3"]


@pytest.fixture(scope="module")
def phema_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("phema_run")
    assert train(compose_cfg(*RUN), run)["status"] == "finished"
    return run


def _load(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def test_the_run_writes_snapshots_that_match_its_checkpoint(phema_run):
    files = snapshot_files(phema_run / "phema")
    assert [p.name for p in files] == [f"phema-{i:07d}-{s}.pt" for i in (3, 6, 9, 12) for s in ("0.05", "0.1")]
    snaps = [_load(p) for p in files]
    assert [(d["iteration"], d["steps"], d["sigma_rel"]) for d in snaps] == [
        (i, i, s) for i in (3, 6, 9, 12) for s in TRACKED]
    state = _load(phema_run / "checkpoints" / "last.ckpt")["state_dict"]
    assert state["phema._extra_state"] == {"steps": 12}
    for i, last in enumerate(snaps[-2:]):
        assert last["gamma"] == pytest.approx(float(pm.sigma_rel_to_gamma(TRACKED[i])))
        for key, value in last["state"].items():
            assert torch.equal(value, state[f"phema.averages.{i}.{key}"]), key
        for key in ("1.running_mean", "1.running_var"):  # buffers are G's own, not averaged
            found = [k for k in state if k.startswith("generator.") and k.endswith(key)]
            assert found and any(torch.equal(last["state"][k.removeprefix("generator.")], state[k]) for k in found)


def test_a_resumed_run_writes_the_same_snapshots(phema_run, tmp_path):
    """Stopped at iteration 7 (checkpoint 4, snapshots 3 and 6 on disk), resumed: every snapshot and the averages in
    the final checkpoint are bit for bit those of the uninterrupted run."""
    resumed = tmp_path / "resumed"
    assert interrupted_then_resumed(RUN, resumed, at=7)["status"] == "finished"
    mine, reference = snapshot_files(resumed / "phema"), snapshot_files(phema_run / "phema")
    assert [p.name for p in mine] == [p.name for p in reference]
    for a, b in zip(mine, reference):
        a, b = _load(a), _load(b)
        assert a.keys() == b.keys() and all(torch.equal(a["state"][k], b["state"][k]) for k in b["state"])
    state_a = _load(resumed / "checkpoints" / "last.ckpt")["state_dict"]
    state_b = _load(phema_run / "checkpoints" / "last.ckpt")["state_dict"]
    for key in (k for k in state_b if k.startswith("phema.")):
        assert (torch.equal(state_a[key], state_b[key]) if isinstance(state_b[key], torch.Tensor)
                else state_a[key] == state_b[key]), key


def test_the_command_reconstructs_measures_and_draws(phema_run, capsys):
    from gan_lab.phema import main

    main([f"run={phema_run}", "sigma_rel=0.075,0.05", "n=100"])
    out = capsys.readouterr().out
    folder = phema_run / "phema"
    assert "posthoc.md" in out and "| 0.075 |" in out
    table = json.loads((folder / "posthoc.json").read_text())
    assert [r["sigma_rel"] for r in table["rows"]] == [0.05, 0.075]
    assert table["iteration"] == 12 and table["snapshots"] == 8 and table["tracked"] == list(TRACKED)
    assert table["rows"][0]["profile_error"] < 1e-6 < table["rows"][1]["profile_error"] < 0.05
    for row in [*table["rows"], table["as_trained"]]:
        assert "toy/modes_captured" in row["metrics"] and "val/precision_100_raw" in row["metrics"]
    assert table["headline"][0] == "toy/modes_captured"
    tracked = _load(folder / "phema-0000012-0.05.pt")["state"]
    rebuilt = _load(folder / "reconstructed-0.05.pt")
    assert rebuilt["sigma_rel"] == 0.05 and rebuilt["iteration"] == 12
    for key, value in tracked.items():  # the tracked average itself, to float32 rounding
        torch.testing.assert_close(rebuilt["state"][key], value, rtol=1e-6, atol=1e-7)
    assert (folder / "reconstructed-0.075.pt").is_file()
    assert len((folder / "posthoc.md").read_text().splitlines()) == 2 + 2 + 2 + 1  # title, blank, head, rows, G
    import matplotlib.pyplot as plt

    picture = plt.imread(folder / "posthoc.png")
    assert picture.ndim == 3 and picture.shape[0] > 200 and picture.shape[1] > 600


def test_two_g_steps_per_iteration_count_g_updates(tmp_path):
    train(compose_cfg("debug=tiny", "model=mlp", "dataset=ring", "model.hidden=[8]", "logger=none",
                      "train.g_steps=2", "tricks.phema=true", "tricks.phema_every=2"), tmp_path)
    snaps = [_load(p) for p in snapshot_files(tmp_path / "phema")]
    assert [(d["iteration"], d["steps"]) for d in snaps] == [(2, 4), (2, 4), (4, 8), (4, 8)]


@pytest.mark.parametrize(("args", "words"), [
    (["sigma_rel=0.3"], "sigma_rel=0.3 is not allowed: a number in (0, 0.28868]"),
    (["sigma_rel=0"], "sigma_rel=0.0 is not allowed: a number in (0, 0.28868]"),
    (["sigma_rel=0.1,x"], "sigma_rel='x' is not allowed"),
    ([], "sigma_rel=None is not allowed: a comma-separated list"),
    (["sigma_rel=0.1"], "is not allowed: a run trained with tricks.phema=true"),
])
def test_the_command_refuses_bad_input_in_one_line(args, words, tmp_path, capsys):
    from gan_lab.phema import main

    with pytest.raises(SystemExit) as info:
        main([f"run={tmp_path}", *args])  # an empty folder: no snapshots
    err = capsys.readouterr().err
    assert info.value.code == 2 and words in err and len(err.strip().splitlines()) == 1, err


def test_a_snapshot_that_cannot_be_read_safely_is_refused_naming_it(tmp_path):
    from gan_lab.phema import read_snapshots

    (tmp_path / "phema").mkdir()
    (tmp_path / "phema" / "phema-0000004-0.05.pt").write_bytes(b"cut short")
    with pytest.raises(ConfigError, match="phema-0000004-0.05.pt cannot be read safely") as info:
        read_snapshots(tmp_path / "phema")
    assert info.value.key == "run"


@pytest.mark.parametrize(("override", "key"), [
    ("tricks.phema_sigma_rels=[0.05,0.3]", "tricks.phema_sigma_rels"),
    ("tricks.phema_sigma_rels=[]", "tricks.phema_sigma_rels"),
    ("tricks.phema_sigma_rels=[0.1,0.1]", "tricks.phema_sigma_rels"),
    ("tricks.phema_every=-1", "tricks.phema_every"),
])
def test_the_trick_refuses_bad_settings_naming_the_key(override, key):
    error = refused("model=mlp", "dataset=ring", "tricks.phema=true", override)
    assert isinstance(error, ConfigError) and error.key == key


def test_the_step_stays_eager_saying_why(tmp_path, caplog):
    import logging

    with caplog.at_level(logging.WARNING, logger="gan_lab"):
        train(compose_cfg("debug=tiny", "model=mlp", "dataset=ring", "model.hidden=[8]", "logger=none",
                          "tricks.phema=true", "train.cuda_graphs=stand_in"), tmp_path)
    lines = [r.getMessage() for r in caplog.records if "train.cuda_graphs" in r.getMessage()]
    assert len(lines) == 1 and "tricks.phema=true: the averages' β_t" in lines[0] and "stays eager" in lines[0]
