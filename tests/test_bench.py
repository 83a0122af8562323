"""``python -m benchmarks.bench`` (``make bench``): its machinery, on tiny settings. No speed is asserted:
the speed targets are checked by the benchmark itself (``make bench``), never by a timed test."""

from __future__ import annotations

import json
import math
import sys

import pytest
import torch

from benchmarks import bench

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
    assert "lab graphs it/s" in text and "graphs/lab" in text and "—" in text  # the graphs column, not run here
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
    for key in ("graphs_it_s", "graphs_ratio", "graphs_speedup", "graphs_runs", "graphs_images_s"):
        assert key in row and row[key] is None, key  # CPU: the CUDA graphs side is not run
    assert payload["check"]["ran"] is True and payload["check"]["skipped"] is True  # mlp_ring/cpu is checked
    assert [c["case"] for c in payload["check"]["cases"]] == ["mlp_ring/cpu/32-true"]
    assert "check: mlp_ring/cpu/32-true" in text and "not enforced" in text
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


def _fake_case(ratio: float):
    def fake_case(case, device, precision, warmup, iterations, repeats, overrides=(), progress=None):
        return {"case": case.name, "device": device, "precision": precision, "batch_size": 64, "repeats": 1,
                "plain_it_s": 10.0, "lab_it_s": 10.0 * ratio, "ratio": ratio, "lab_images_s": 640.0 * ratio,
                "graphs_it_s": None, "graphs_ratio": None, "graphs_speedup": None,
                "params": {"generator": 1, "discriminator": 1}, "same_networks": True, "threads": [1]}

    return fake_case


def test_fails_below_threshold_unless_no_check(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bench, "bench_case", _fake_case(0.5))
    args = ["--cases", "dcgan32", "--device", "cpu", "--out", str(tmp_path / "b.json")]
    assert bench.main(args) == 1
    captured = capsys.readouterr()
    assert "FAIL" in captured.err and "0.500" in captured.err
    assert json.loads(captured.out.strip().splitlines()[-1])["check"]["passed"] is False
    assert bench.main([*args, "--no-check"]) == 0


def test_each_checked_case_has_its_own_threshold(tmp_path, capsys, monkeypatch):
    """dcgan32 needs 0.95 of the plain loop, mlp_ring 0.9; one check line each; the other cases are not checked."""
    monkeypatch.setattr(bench, "bench_case", _fake_case(0.92))
    args = ["--cases", "dcgan32,mlp_ring,dcgan_mnist5k", "--device", "cpu", "--out", str(tmp_path / "b.json")]
    assert bench.main(args) == 1
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert [line.split()[1] for line in lines if line.startswith("check:")] == \
        ["dcgan32/cpu/32-true", "mlp_ring/cpu/32-true"]
    assert any(line.startswith("check: dcgan32") and line.endswith("FAIL") for line in lines)
    assert any(line.startswith("check: mlp_ring") and line.endswith("ok") for line in lines)
    assert "dcgan32" in captured.err and "mlp_ring" not in captured.err
    check = json.loads(lines[-1])["check"]
    assert [(c["case"], c["threshold"], c["passed"]) for c in check["cases"]] == \
        [("dcgan32/cpu/32-true", 0.95, False), ("mlp_ring/cpu/32-true", 0.9, True)]
    monkeypatch.setattr(bench, "bench_case", _fake_case(0.96))
    assert bench.main(args) == 0
    monkeypatch.setattr(bench, "bench_case", _fake_case(0.5))
    assert bench.main([*args[:3], "cuda" if torch.cuda.is_available() else "cpu", *args[4:], "--precision",
                       "bf16-mixed"]) == 0  # only CPU fp32 is checked


def test_graphs_side_only_on_cuda_interleaved_and_rotated(monkeypatch):
    """Without running anything: on the CPU two sides (plain, lab), on CUDA three, the order rotated each
    repeat; the graphs side's config has train.cuda_graphs=true and a warm-up covering two log intervals."""
    calls = []

    def side(name, cfg, warmup, iterations):
        calls.append((name, cfg.train.get("cuda_graphs"), warmup, int(cfg.train.iterations)))
        it_s = {"plain": 10.0, "lab": 9.0, "graphs": 18.0}[name]
        return bench.Side(it_s, iterations / it_s, warmup, iterations, 1, 5, 7, "init", "arch",
                          {"generator": True, "discriminator": True}, graphs=None if name == "plain" else
                          (4 if cfg.train.get("cuda_graphs") is True else 0))

    def fake_lab(cfg, warmup, iterations):
        return side("graphs" if cfg.train.get("cuda_graphs") is True else "lab", cfg, warmup, iterations)

    monkeypatch.setattr(bench, "run_lab", fake_lab)
    monkeypatch.setattr(bench, "run_plain", lambda cfg, w, n, device="cpu", precision="32-true":
                        side("plain", cfg, w, n))
    case = bench.CASES["mlp_ring"]
    row = bench.bench_case(case, "cpu", "32-true", 3, 4, 2)
    assert [c[0] for c in calls] == ["plain", "lab", "lab", "plain"]
    assert all(c[1] is False for c in calls)  # the lab eager: train.cuda_graphs stays false
    assert row["graphs_it_s"] is None and row["graphs_runs"] is None and row["graphs_speedup"] is None
    assert row["ratio"] == 0.9 and row["pair_ratios"] == [0.9, 0.9]

    calls.clear()
    row = bench.bench_case(case, "cuda", "32-true", 3, 4, 3)  # composed only: the fakes need no GPU
    assert [c[0] for c in calls] == ["plain", "lab", "graphs", "lab", "graphs", "plain", "graphs", "plain", "lab"]
    log_every = row["log_every"]
    for name, graphs, warmup, total in calls:
        assert graphs is (name == "graphs")
        assert (warmup, total) == ((2 * log_every, 2 * log_every + 4) if name == "graphs" else (3, 7))
    assert (row["plain_it_s"], row["lab_it_s"], row["graphs_it_s"]) == (10.0, 9.0, 18.0)
    assert (row["ratio"], row["graphs_ratio"], row["graphs_speedup"]) == (0.9, 1.8, 2.0)
    assert row["graphs_images_s"] == 18.0 * 256 and row["graphs_captured"] is True
    assert len(row["graphs_runs"]) == 3 and row["graphs_runs"][0]["graphs"] == 4 and row["same_networks"]


def test_new_cases_are_covered_by_the_plain_loop():
    """Composed only (resnet32 takes minutes per run on the CPU, so nothing is timed here)."""
    assert {"dcgan32", "mlp_ring", "dcgan_mnist5k", "resnet32"} <= set(bench.CASES)
    resnet = bench.case_config(bench.CASES["resnet32"], "cpu", "32-true", 2)
    bench.check_plain_supported(resnet)
    assert resnet.model._target_ == "gan_lab.nets.resnet.build" and resnet.model.d_norm == "none"
    assert resnet.dataset._target_ == "benchmarks.bench.mnist5k_32" and resnet.train.batch_size == 64
    mnist = bench.case_config(bench.CASES["dcgan_mnist5k"], "cpu", "32-true", 2)
    bench.check_plain_supported(mnist)
    assert mnist.model._target_ == "gan_lab.nets.dcgan.build" and mnist.dataset._target_.endswith(".mnist5k")
    assert (bench.CASES["dcgan_mnist5k"].warmup, bench.CASES["dcgan_mnist5k"].iterations) == (10, 60)
    assert (bench.CASES["resnet32"].warmup, bench.CASES["resnet32"].iterations) == (5, 20)


def test_dcgan_mnist5k_runs_on_the_cpu_without_graphs():
    tiny = bench.Case("dcgan_mnist5k", bench.CASES["dcgan_mnist5k"].overrides, 1, 2)
    row = bench.bench_case(tiny, "cpu", "32-true", 1, 2, 1, TINY_DCGAN)
    assert row["same_networks"] and row["graphs_it_s"] is None and row["graphs_runs"] is None
    assert row["plain_it_s"] > 0 and row["lab_it_s"] > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the CUDA graphs side needs a CUDA device")
def test_graphs_side_on_cuda_captures_and_trains():
    row = bench.bench_case(bench.CASES["dcgan32"], "cuda", "32-true", 1, 3, 1, TINY_DCGAN)
    assert row["graphs_it_s"] > 0 and row["graphs_captured"] is True and row["same_networks"]
    assert row["graphs_speedup"] == pytest.approx(row["graphs_it_s"] / row["lab_it_s"], rel=1e-2)
    assert row["graphs_runs"][0]["trained"] == {"generator": True, "discriminator": True}


def test_settings_and_argument_checks():
    cuda = ["cuda"] if torch.cuda.is_available() else []
    default = bench.settings(bench.parse_args([]))
    assert default[0] == ("cpu", "32-true")
    assert [d for d, _ in default[1:]] == cuda * 2
    assert bench.settings(bench.parse_args(["--device", "cpu", "--precision", "bf16-mixed"])) == \
        [("cpu", "bf16-mixed")]
    assert bench.parse_args(["--cases", "mlp_ring"]).cases == ["mlp_ring"]
    default_args = bench.parse_args([])
    assert bench.cases_for(default_args, "cpu") == ["dcgan32", "mlp_ring"]
    assert bench.cases_for(default_args, "cuda") == ["dcgan32", "mlp_ring", "dcgan_mnist5k", "resnet32", "stylegan2_32",
                                                     "r3gan_32"]
    given = bench.parse_args(["--cases", "resnet32,mlp_ring"])
    assert bench.cases_for(given, "cpu") == bench.cases_for(given, "cuda") == ["resnet32", "mlp_ring"]
    with pytest.raises(SystemExit):
        bench.parse_args(["--override", "train.cuda_graphs=true"])  # the bench sets it per side
    with pytest.raises(SystemExit):
        bench.parse_args(["--cases", "nope"])
    with pytest.raises(SystemExit):
        bench.parse_args(["--warmup", "0"])


def test_plain_loop_refuses_what_it_does_not_implement():
    cfg = bench.case_config(bench.CASES["mlp_ring"], "cpu", "32-true", 3, ("loss=hinge",))
    with pytest.raises(SystemExit, match="loss=ns"):
        bench.check_plain_supported(cfg)
    cfg = bench.case_config(bench.CASES["mlp_ring"], "cpu", "32-true", 3, ("optimizer.lr_decay=linear",))
    with pytest.raises(SystemExit, match="optimizer.lr_decay=none"):
        bench.check_plain_supported(cfg)


def test_gpu_check_runs_its_cpu_stand_ins_and_writes_json_and_markdown(tmp_path):
    """``make gpu-check`` everywhere but on the GPU: the GPU steps are recorded as skipped with the reason, the
    stand-ins of the bench and of the default job run through the same plumbing, and both reports are written."""
    from benchmarks import gpu_check

    out = tmp_path / "check"
    code = gpu_check.main(["--out", str(out), "--smoke", "--only", "gpu_tests,bench_dcgan32,default_job_graphs"])
    payload = json.loads((out / "gpu_check.json").read_text())
    status = {s["name"]: s["status"] for s in payload["steps"]}
    cuda = torch.cuda.is_available()
    assert code == 0, status
    assert status["gpu_tests"] == ("passed" if cuda else "skipped: no CUDA device")
    assert status["bench_dcgan32"] == status["default_job_graphs"] == "passed"
    figures = payload["figures"]
    assert figures["mlp_ring lab it/s (32-true)"] > 0 and figures["default job graphs training it/s"] > 0
    assert 0 < figures["default job graphs wall s"] <= figures["default job graphs command s"]
    assert set(payload["targets"]) == set(gpu_check.TARGETS)
    text = (out / "gpu_check.md").read_text()
    assert "| bench_dcgan32 | passed |" in text and "| default job wall s | " in text
    with pytest.raises(SystemExit):
        gpu_check.main(["--out", str(out), "--only", "nonsense"])


def test_kimg_cases_are_the_references_configurations():
    """Composed only: each case's settings are what its reference's command line sets (the 128 px StyleGAN2 case is
    -ADA's default configuration for one GPU: --batch=32 --gamma=0.1024 --map-depth=2 --glr=0.0025 --dlr=0.0025
    --cbase=16384, with 'auto''s mbstd group 4 and EMA half-life batch·10/32 kimg)."""
    from benchmarks import kimg

    sg2 = bench.case_config(kimg.CASES["stylegan2_128"].case, "cpu", "32-true", 48)
    assert sg2.dataset._target_ == "benchmarks.kimg.mnist5k_128" and sg2.train.batch_size == 32
    assert (sg2.model.mapping_layers, sg2.model.channel_base, sg2.model.channel_max, sg2.model.mbstd_group,
            sg2.model.z_dim, sg2.model.w_dim, sg2.model.style_mixing) == (2, 16384, 512, 4, 512, 512, 0.9)
    assert (sg2.regularizer.weight, sg2.regularizer.every, sg2.optimizer.d.lr, sg2.optimizer.g.lr) == \
        (0.1024, 16, 0.0025, 0.0025)
    assert (sg2.tricks.ema_kimg, sg2.tricks.pl_weight, sg2.tricks.pl_every, sg2.tricks.ada_target) == (10, 2.0, 4, 0.6)
    assert kimg.CASES["stylegan2_128"].published == {"V100": 12.51, "A100": 6.79}
    r3 = bench.case_config(kimg.CASES["r3gan_128"].case, "cpu", "32-true", 48)
    assert list(r3.model.widths) == [768, 768, 768, 768, 384, 192] and r3.train.batch_size == 32
    assert r3.loss._target_ == "gan_lab.losses.relativistic.Relativistic" and r3.regularizer.r1.weight == 0.05
    for name, case in kimg.CASES.items():  # every window holds whole periods of the lazy regularizers
        assert case.case.iterations % 16 == 0 and case.case.warmup >= 1, name
    images = kimg.mnist5k_128(count=3)
    assert images.spec.shape == (3, 128, 128) and images.data.shape == (3, 3, 128, 128)
    assert images.data.min() >= -1 and images.data.max() <= 1 and (images.data[:, :, :8] == -1).all()


def test_kimg_measures_a_run_and_keeps_rows_when_a_case_fails(tmp_path, monkeypatch):
    from benchmarks import kimg

    row = kimg.measure("r3gan_32", "cpu", "32-true", smoke=True)
    assert row["trained"] == {"generator": True, "discriminator": True} and row["batch_size"] == 4
    assert row["s_per_kimg"] == pytest.approx(1000 / (row["it_s"] * 4), rel=1e-2)
    real = kimg.measure

    def flaky(name, *args, **kwargs):
        if name == "stylegan2_32":
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return row if name == "r3gan_32" else real(name, *args, **kwargs)

    monkeypatch.setattr(kimg, "measure", flaky)
    out = tmp_path / "kimg.json"
    code = kimg.main(["--device", "cpu", "--smoke", "--cases", "stylegan2_32,r3gan_32", "--out", str(out)])
    rows = json.loads(out.read_text())["rows"]
    assert code == 1 and [r["case"] for r in rows] == ["stylegan2_32", "r3gan_32"]
    assert rows[0]["error"].startswith("RuntimeError: CUDA out of memory") and rows[1]["s_per_kimg"] > 0
    assert "| r3gan_32 | 32-true | 4 |" in out.with_suffix(".md").read_text()
    from benchmarks import gpu_check  # its kimg step: this command, and these rows read back as its figures

    step = next(st for st in gpu_check.steps(tmp_path, smoke=False) if st.name == "kimg")
    assert step.command[:2] == ["-m", "benchmarks.kimg"] and "cuda" in step.command and step.gpu
    assert gpu_check._figures(gpu_check.Step("kimg", [], 1), tmp_path) == {"r3gan_32 s/kimg (32-true)":
                                                                          rows[1]["s_per_kimg"]}
    with pytest.raises(SystemExit):
        kimg.main(["--cases", "nope", "--device", "cpu"])
