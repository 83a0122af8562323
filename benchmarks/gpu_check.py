"""``python -m benchmarks.gpu_check`` (``make gpu-check``): the one prepared check of the lab's GPU path.

Within about 8 minutes on one GPU, plus at most 5 for ``kimg``, it runs, each step bounded by its own time limit:

1. ``gpu_tests``: every ``gpu``-marked test (``pytest -m gpu``: CUDA graphs against the eager step in fp32 and
   bf16, their exact resume, the Inception features against torch-fidelity where it is installed);
2. ``bench_dcgan32`` and ``bench_resnet32``: ``python -m benchmarks.bench`` on CUDA, 3 repeats, fp32 and
   bf16-mixed, eager and with ``train.cuda_graphs=true`` (the plain PyTorch loop beside them);
3. ``default_job`` and ``default_job_graphs``: the default job (``python -m gan_lab accelerator=gpu``) timed from
   the command to its report, without and with CUDA graphs;
4. ``kimg``: ``python -m benchmarks.kimg``, seconds per thousand images of StyleGAN2-ADA's and R3GAN's full
   recipes at 32 and 128 px, beside the one-GPU figures the references publish (``--only kimg`` runs it alone).

It writes ``gpu_check.json`` (every step's status, seconds, figures and output tail) and ``gpu_check.md`` (a
table, with the targets: default DCGAN >= 500 it/s with graphs, the default job <= 8 s) into ``--out``, and
exits 1 if a step failed. Without a CUDA device each GPU step is recorded as skipped, and ``--smoke`` runs
the same steps' CPU stand-ins at tiny sizes, so that the check itself is tested on any machine
(tests/test_bench.py).

On a GPU machine that has torch, Lightning and torchmetrics but not Hydra (and no package index), install the
missing packages from wheels into a folder (``pip install --no-index --target <dir> <wheels>``), then run
``PYTHONPATH=<dir>:$PWD python3 -m benchmarks.gpu_check --out <folder>`` from the checkout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

TARGETS = {"dcgan32 graphs it/s (32-true)": 500.0, "default job wall s": 8.0}


@dataclass
class Step:
    name: str
    command: list[str]
    limit_s: int
    gpu: bool = True  # needs a CUDA device (skipped without one)
    status: str = "not run"  # passed, failed, timed out, skipped: <why>
    seconds: float | None = None
    figures: dict[str, Any] = field(default_factory=dict)
    tail: str = ""


def _bench(case: str, out: Path, smoke: bool) -> list[str]:
    if smoke:  # the same entry point on the CPU, tiny
        return ["-m", "benchmarks.bench", "--device", "cpu", "--cases", "mlp_ring", "--iterations", "4", "--warmup",
                "2", "--repeats", "1", "--no-check", "--out", str(out / f"bench_{case}.json")]
    return ["-m", "benchmarks.bench", "--device", "cuda", "--cases", case, "--repeats", "3", "--no-check",
            "--out", str(out / f"bench_{case}.json")]


def steps(out: Path, smoke: bool) -> list[Step]:
    job = ["-m", "gan_lab", "trainer.enable_progress_bar=false"]
    if smoke:
        job += ["debug=tiny", "logger=none", "accelerator=cpu", f"hydra.run.dir={out / 'default_job'}"]
    else:
        job += ["accelerator=gpu", f"hydra.run.dir={out / 'default_job'}"]
    graphs_job = [*job[:-1], f"hydra.run.dir={out / 'default_job_graphs'}",
                  "train.cuda_graphs=" + ("stand_in" if smoke else "true")]
    tests = ["-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", "--junitxml", str(out / "gpu_tests.xml")]
    kimg = ["-m", "benchmarks.kimg", "--out", str(out / "kimg.json")]
    kimg += ["--device", "cpu", "--smoke", "--cases", "stylegan2_128"] if smoke else ["--device", "cuda"]
    return [Step("gpu_tests", tests, 240, gpu=True),
            Step("bench_dcgan32", _bench("dcgan32", out, smoke), 150, gpu=not smoke),
            Step("bench_resnet32", _bench("resnet32", out, smoke), 150, gpu=not smoke),
            Step("default_job", job, 60, gpu=not smoke),
            Step("default_job_graphs", graphs_job, 60, gpu=not smoke),
            Step("kimg", kimg, 300, gpu=not smoke)]


def _figures(step: Step, out: Path) -> dict[str, Any]:
    """The numbers a step produced: the bench's rows, a job's wall time and speed, the tests' counts."""
    if step.name.startswith("bench_"):
        path = out / f"{step.name}.json"
        if not path.is_file():
            return {}
        rows = json.loads(path.read_text())["results"]
        return {f"{r['case']} {side} it/s ({r['precision']})": r[key]
                for r in rows for side, key in (("plain", "plain_it_s"), ("lab", "lab_it_s"),
                                                ("graphs", "graphs_it_s")) if r.get(key) is not None}
    if step.name.startswith("default_job"):
        summary = out / step.name / "metrics.json"
        if not summary.is_file():
            return {}
        s = json.loads(summary.read_text())
        key = "default job" + (" graphs" if step.name.endswith("graphs") else "")
        return {f"{key} wall s": s.get("wall_time_s"), f"{key} command s": step.seconds,
                f"{key} training it/s": s.get("iterations_per_s")}
    if step.name == "kimg":
        path = out / "kimg.json"
        if not path.is_file():
            return {}
        rows = json.loads(path.read_text())["rows"]
        return {f"{r['case']} s/kimg ({r['precision']})": r["s_per_kimg"] for r in rows if "s_per_kimg" in r}
    if step.name == "gpu_tests":
        xml = out / "gpu_tests.xml"
        if not xml.is_file():
            return {}
        import xml.etree.ElementTree as ET

        suite = ET.parse(xml).getroot()
        suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
        counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
        return {f"gpu tests {k}": v for k, v in counts.items()}
    return {}


def run_step(step: Step, out: Path, cuda: bool) -> Step:
    if step.gpu and not cuda:
        step.status = "skipped: no CUDA device"
        return step
    started = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, *step.command], capture_output=True, text=True, timeout=step.limit_s,
                              env={**os.environ, "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg"})
        text, code = proc.stdout + proc.stderr, proc.returncode
        # pytest: 5 = nothing collected (every gpu test skipped on a machine without what they need)
        step.status = "passed" if code == 0 or (step.name == "gpu_tests" and code == 5) else f"failed (exit {code})"
    except subprocess.TimeoutExpired as err:
        text = (err.stdout or b"").decode(errors="replace") if isinstance(err.stdout, bytes) else (err.stdout or "")
        step.status = f"timed out after {step.limit_s} s"
    step.seconds = round(time.perf_counter() - started, 2)
    step.tail = text[-3000:]
    step.figures = _figures(step, out)
    return step


def environment(cuda: bool) -> dict[str, Any]:
    env = {"torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
           "cuda": torch.version.cuda, "cpu_count": os.cpu_count()}
    if cuda:
        env["device"] = torch.cuda.get_device_name(0)
    return env


def verdicts(figures: dict[str, Any]) -> dict[str, str]:
    """Each target against what was measured: met, missed, or not measured."""
    out = {}
    for name, target in TARGETS.items():
        value = figures.get(name)
        if value is None:
            out[name] = "not measured"
        elif name.endswith("it/s (32-true)"):
            out[name] = f"{'met' if value >= target else 'missed'} ({value:.0f} vs >= {target:.0f})"
        else:
            out[name] = f"{'met' if value <= target else 'missed'} ({value:.1f} vs <= {target:.0f})"
    return out


def markdown(payload: dict[str, Any]) -> str:
    lines = ["# gan_lab GPU check", "", f"Environment: {json.dumps(payload['environment'])}", "",
             "| step | status | seconds |", "|---|---|---|"]
    for s in payload["steps"]:
        lines.append(f"| {s['name']} | {s['status']} | {s['seconds'] if s['seconds'] is not None else '—'} |")
    lines += ["", "| figure | value |", "|---|---|"]
    for name, value in payload["figures"].items():
        lines.append(f"| {name} | {value if not isinstance(value, float) else f'{value:.4g}'} |")
    lines += ["", "| target | verdict |", "|---|---|"]
    lines += [f"| {name} | {verdict} |" for name, verdict in payload["targets"].items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="outputs/gpu-check", help="folder for gpu_check.json and gpu_check.md")
    p.add_argument("--smoke", action="store_true", help="run the steps' CPU stand-ins at tiny sizes (no GPU needed)")
    p.add_argument("--only", help="comma-separated step names to run (default: all)")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cuda = torch.cuda.is_available()
    chosen = steps(out, args.smoke)
    if args.only:
        names = set(args.only.split(","))
        unknown = names - {s.name for s in chosen}
        if unknown:
            p.error(f"--only: unknown {', '.join(sorted(unknown))}; choose from {', '.join(s.name for s in chosen)}")
        chosen = [s for s in chosen if s.name in names]
    started = time.perf_counter()
    for step in chosen:
        print(f"gpu-check: {step.name} ...", flush=True)
        run_step(step, out, cuda)
        took = f" in {step.seconds} s" if step.seconds else ""
        print(f"gpu-check: {step.name}: {step.status}{took}", flush=True)
    figures = {k: v for s in chosen for k, v in s.figures.items()}
    payload = {"environment": environment(cuda), "smoke": args.smoke,
               "seconds": round(time.perf_counter() - started, 1), "steps": [asdict(s) for s in chosen],
               "figures": figures, "targets": verdicts(figures)}
    (out / "gpu_check.json").write_text(json.dumps(payload, indent=2) + "\n")
    (out / "gpu_check.md").write_text(markdown(payload))
    print(f"gpu-check: wrote {out / 'gpu_check.json'} and {out / 'gpu_check.md'}")
    return 1 if any(s.status.startswith(("failed", "timed out")) for s in chosen) else 0


if __name__ == "__main__":
    sys.exit(main())
