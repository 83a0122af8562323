"""``python -m benchmarks.bench`` (``make bench``): its machinery, on tiny settings. No speed is asserted:
the speed targets are checked by the benchmark itself (``make bench``), never by a timed test."""

from __future__ import annotations

import json
import math
import sys

import pytest
import torch

from benchmarks import bench


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks run fastest on one thread, and a busy machine cannot oversubscribe it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


TINY_DCGAN = ("model.width=4", "model.z_dim=8", "train.log_every=1")


def _architecture(net: torch.nn.Module) -> list:
    return [(name, tuple(p.shape)) for name, p in net.named_parameters()] + [repr(net)]


def test_bench_mlp_ring_table_and_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = bench.main(["--cases", "mlp_ring", "--iterations", "3", "--warmup", "1", "--repeats", "1",
                     "--no-check", "--out", str(out)])
    assert rc == 0
    lines = capsys.readouterr().out.strip().splitlines()
    text = "\n".join(lines)
    assert "plain it/s" in text and "lab it/s" in text and "lab images/s" in text and "mlp_ring" in text
    payload = json.loads(lines[-1])  # the last line is the JSON line
    assert payload == json.loads(out.read_text())
    (row,) = payload["results"]
    assert (row["case"], row["device"], row["precision"], row["batch_size"], row["k"]) == \
        ("mlp_ring", "cpu", "32-true", 256, 1)
    for key in ("plain_it_s", "lab_it_s", "ratio", "lab_images_s"):
        assert math.isfinite(row[key]) and row[key] > 0, key
    assert row["ratio"] == pytest.approx(row["lab_it_s"] / row["plain_it_s"], rel=1e-2)
    assert row["lab_images_s"] == pytest.approx(row["lab_it_s"] * 256, rel=1e-2)
    assert row["same_networks"]
    for side in row["plain_runs"] + row["lab_runs"]:
        assert side["iterations"] == 3 and side["warmup"] == 1 and side["seconds"] > 0
        assert (side["params_g"], side["params_d"]) == (row["params"]["generator"], row["params"]["discriminator"])
        assert side["trained"] == {"generator": True, "discriminator": True}
    assert payload["check"]["ran"] is False  # no dcgan32 row: nothing to check
    assert "torchvision" not in sys.modules


def test_dcgan32_both_sides_train_identical_networks():
    cfg = bench.case_config(bench.CASES["dcgan32"], "cpu", "32-true", 3, TINY_DCGAN)
    plain = bench.run_plain(cfg, 1, 2)
    lab = bench.run_lab(cfg, 1, 2)
    for side in (plain, lab):
        assert side.it_s > 0 and math.isfinite(side.it_s)
        assert side.trained == {"generator": True, "discriminator": True}
    assert (plain.params_g, plain.params_d) == (lab.params_g, lab.params_d)
    assert plain.arch_sha256 == lab.arch_sha256  # same modules, layer by layer
    assert plain.init_sha256 == lab.init_sha256  # same builder, same seed: same initial weights
    bench._seed(cfg.seed)
    fresh = bench.build_components(cfg)
    assert _architecture(plain.objects["generator"]) == _architecture(fresh.generator)
    assert _architecture(plain.objects["discriminator"]) == _architecture(fresh.discriminator)
    assert plain.objects["generator"].net[0].in_channels == 8  # the override reached the nets
    losses = plain.objects["losses"]  # one (d_loss, g_loss) readout per log interval
    assert len(losses) == 3 and all(math.isfinite(v) for pair in losses for v in pair)


def test_plain_loop_moves_every_parameter_tensor_of_both_players():
    cfg = bench.case_config(bench.CASES["mlp_ring"], "cpu", "32-true", 3)
    bench._seed(cfg.seed)
    fresh = bench.build_components(cfg)
    plain = bench.run_plain(cfg, 1, 2)
    for name, before in (("generator", fresh.generator), ("discriminator", fresh.discriminator)):
        after = plain.objects[name]
        for (n, p0), p1 in zip(before.named_parameters(), after.parameters()):
            assert not torch.equal(p0, p1), f"{name}.{n} did not change"


def test_mnist5k_32_is_cifar_shaped_padded_digits():
    source = bench.mnist5k_32()
    assert source.spec.shape == (3, 32, 32) and source.spec.name == "mnist5k_32" and source.spec.is_image
    x = source.data
    assert x.shape[1:] == (3, 32, 32) and x.shape[0] == 4500
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 0], x[:, 2])
    assert (x[:, :, :2] == -1).all() and (x[:, :, :, -2:] == -1).all()
    assert x.min() == -1 and x.max() == 1


def test_fails_below_threshold_unless_no_check(tmp_path, capsys, monkeypatch):
    def fake_case(case, device, precision, warmup, iterations, repeats, overrides=(), progress=None):
        return {"case": case.name, "device": device, "precision": precision, "batch_size": 64, "repeats": 1,
                "plain_it_s": 10.0, "lab_it_s": 5.0, "ratio": 0.5, "lab_images_s": 320.0,
                "params": {"generator": 1, "discriminator": 1}, "same_networks": True, "threads": [1]}

    monkeypatch.setattr(bench, "bench_case", fake_case)
    args = ["--cases", "dcgan32", "--device", "cpu", "--out", str(tmp_path / "b.json")]
    assert bench.main(args) == 1
    captured = capsys.readouterr()
    assert "FAIL" in captured.err and "0.500" in captured.err
    assert json.loads(captured.out.strip().splitlines()[-1])["check"]["passed"] is False
    assert bench.main([*args, "--no-check"]) == 0


def test_settings_and_argument_checks():
    cuda = ["cuda"] if torch.cuda.is_available() else []
    default = bench.settings(bench.parse_args([]))
    assert default[0] == ("cpu", "32-true")
    assert [d for d, _ in default[1:]] == cuda * 2
    assert bench.settings(bench.parse_args(["--device", "cpu", "--precision", "bf16-mixed"])) == \
        [("cpu", "bf16-mixed")]
    assert bench.parse_args(["--cases", "mlp_ring"]).cases == ["mlp_ring"]
    with pytest.raises(SystemExit):
        bench.parse_args(["--cases", "nope"])
    with pytest.raises(SystemExit):
        bench.parse_args(["--warmup", "0"])


def test_plain_loop_refuses_what_it_does_not_implement():
    cfg = bench.case_config(bench.CASES["mlp_ring"], "cpu", "32-true", 3, ("loss=hinge",))
    with pytest.raises(SystemExit, match="loss=ns"):
        bench.check_plain_supported(cfg)
