"""``python -m benchmarks.threads`` (part of ``make bench``): the measurements behind the CPU thread budget.

Two tables, each a median of interleaved repeats of whole runs (``python -m gan_lab``, no evaluation, no pictures):

* **model size**: training it/s of one process at 1 thread and at every usable core, for models from a few
  thousand weights to a DCGAN. Where one thread is as fast, ``gan_lab.threads.SMALL_MODEL`` draws the line.
* **a 2-job sweep**: the README's joblib sweep (``hydra.launcher.n_jobs=2``, two seeds of the ring) timed from the
  command to its end, with every job on torch's default threads (``trainer.threads`` = the cores: what each
  process took before the budget) against the budget (``trainer.threads`` left null).

Writes ``threads.json`` (``--out``). Run on an idle machine; the figures are in docs/design.md ("CPU threads").
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gan_lab.threads import SMALL_MODEL, usable_cores

QUIET = ["eval.every=0", "eval.at_end=false", "logger=none", "train.sample_every=0", "train.checkpoint_every=0",
         "trainer.enable_progress_bar=false"]
SIZES = {  # name: overrides
    "mlp [16,16] ring": ["model=mlp", "dataset=ring", "model.hidden=[16,16]", "~dataset_model"],
    "mlp [64,64] ring": ["model=mlp", "dataset=ring", "model.hidden=[64,64]", "~dataset_model"],
    "mlp [128,128] ring": ["model=mlp", "dataset=ring", "model.hidden=[128,128]", "~dataset_model"],
    "mlp default ring": ["model=mlp", "dataset=ring", "~dataset_model"],
    "dcgan width 32 mnist5k": ["dataset=mnist5k", "model.width=32"],
}


def _run(args: list[str], folder: Path) -> tuple[float, dict]:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "gan_lab", *args], capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {proc.stderr[-2000:]}")
    summary = folder / "metrics.json"
    return wall, (json.loads(summary.read_text()) if summary.is_file() else {})


def _weights(overrides: list[str]) -> int:
    from hydra import compose, initialize_config_dir

    from gan_lab.compose import build_components
    from gan_lab.config import config_dir

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        c = build_components(compose(config_name="config", overrides=overrides))
    return sum(p.numel() for net in (c.generator, c.discriminator) for p in net.parameters())


def model_sizes(iterations: int, repeats: int, tmp: Path, progress) -> list[dict]:
    cores = usable_cores()
    rows = []
    for name, overrides in SIZES.items():
        runs: dict[int, list[float]] = {1: [], cores: []}
        for r in range(repeats):
            for n in ((1, cores) if r % 2 == 0 else (cores, 1)):
                folder = tmp / f"size{len(rows)}_{n}_{r}"
                _, summary = _run([*overrides, *QUIET, f"train.iterations={iterations}", f"trainer.threads={n}",
                                   f"hydra.run.dir={folder}"], folder)
                runs[n].append(summary["iterations_per_s"])
        one, many = statistics.median(runs[1]), statistics.median(runs[cores])
        rows.append({"model": name, "weights": _weights(overrides), "it_s_1_thread": one,
                     f"it_s_{cores}_threads": many, "one_thread_gain": round(one / many, 3)})
        progress(f"{name}: {rows[-1]['weights']:,} weights, 1 thread {one:.1f} it/s, {cores} threads {many:.1f} it/s")
    return rows


def sweep(iterations: int, repeats: int, tmp: Path, progress) -> dict:
    cores = usable_cores()
    base = ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "model=mlp", "dataset=ring", "~dataset_model",
            "seed=0,1",
            *QUIET, f"train.iterations={iterations}"]
    walls: dict[str, list[float]] = {"default threads": [], "budget": []}
    for r in range(repeats):
        for side in (("default threads", "budget") if r % 2 == 0 else ("budget", "default threads")):
            folder = tmp / f"sweep_{side.replace(' ', '_')}_{r}"
            threads = [f"trainer.threads={cores}"] if side == "default threads" else []
            wall, _ = _run([*base, *threads, f"hydra.sweep.dir={folder}"], folder)
            walls[side].append(wall)
    default, budget = statistics.median(walls["default threads"]), statistics.median(walls["budget"])
    row = {"sweep": f"2 jobs side by side (joblib), mlp ring, {iterations} iterations each", "cores": cores,
           "wall_s_default_threads": round(default, 2), "wall_s_budget": round(budget, 2),
           "speedup": round(default / budget, 3)}
    progress(f"2-job sweep: {cores} threads per job {default:.1f} s, the budget {budget:.1f} s")
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.threads", description=__doc__.splitlines()[0])
    p.add_argument("--iterations", type=int, default=300, help="iterations per model-size run (default 300)")
    p.add_argument("--sweep-iterations", type=int, default=1500, help="iterations per sweep job (default 1500)")
    p.add_argument("--repeats", type=int, default=3, help="runs per side, interleaved (default 3)")
    p.add_argument("--out", default="threads.json")
    args = p.parse_args(argv)
    progress = lambda line: print(f"bench threads: {line}", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        sizes = model_sizes(args.iterations, args.repeats, Path(tmp), progress)
        row = sweep(args.sweep_iterations, args.repeats, Path(tmp), progress)
    payload = {"cores": usable_cores(), "small_model": SMALL_MODEL, "model_sizes": sizes, "sweep": row}
    print(f"{'model':<24} {'weights':>9} {'1 thread it/s':>14} {'all cores it/s':>15} {'1-thread gain':>14}")
    for r in sizes:
        many = next(v for k, v in r.items() if k.startswith("it_s_") and k != "it_s_1_thread")
        print(f"{r['model']:<24} {r['weights']:>9,} {r['it_s_1_thread']:>14.1f} {many:>15.1f} "
              f"{r['one_thread_gain']:>14.3f}")
    print(f"{row['sweep']}: each job on {row['cores']} threads {row['wall_s_default_threads']} s, on the budget "
          f"{row['wall_s_budget']} s ({row['speedup']}x)")
    Path(args.out).write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
