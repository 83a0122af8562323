"""``python -m gan_lab.phema run=<run folder> sigma_rel=0.05,0.1,0.2 [n=…] [seed=0] [inception=…]
[inception_weights=…]``: post-hoc EMA (Karras et al. 2024, EDM2 §3) of a run trained with ``tricks.phema=true``.

From the snapshots in ``<run>/phema`` (gan_lab/tricks/phema.py) it makes G's power-function average of each
σ_rel asked for, at the time of the newest snapshot (the run's last iteration once it finished): the least-squares
combination of the snapshots whose profile is nearest the wanted one (gan_lab/phema_math.py), parameters combined,
buffers (batch-norm statistics) taken from the newest snapshot. Each is written to
``<run>/phema/reconstructed-<σ_rel>.pt`` (plain tensors, as the snapshots) and measured like the run itself
(``python -m gan_lab.evaluate``'s metrics, same n and seed, into ``<run>/phema/eval-<σ_rel>/metrics.json``), beside
the run's own sampler as trained (G, or ``tricks.ema``'s copy; ``<run>/phema/eval-as-trained/``). The table is
``<run>/phema/posthoc.json`` and ``posthoc.md``; ``posthoc.png`` draws the headline metrics against σ_rel.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gan_lab.errors import ConfigError
from gan_lab.measure import evaluate_system
from gan_lab.metrics import registry
from gan_lab.phema_math import SIGMA_REL_MAX, profile_error, sigma_rel_to_gamma, solve_posthoc_coefficients
from gan_lab.runs import count, load_run, run_command
from gan_lab.tricks.phema import save_atomically, sigma_tag, snapshot_files
from gan_lab.viz import save_png

ARGS = {"run": str, "sigma_rel": str, "n": count, "seed": int, "inception": str, "inception_weights": str}
SIGMA_ALLOWED = f"a number in (0, {SIGMA_REL_MAX:.5f}]"
SIGMA_WHY = (f"1/√12 ≈ {SIGMA_REL_MAX:.5f} is the widest power-function profile (γ = 0, the plain mean of every "
             "weight); σ_rel → 0 is G's last weights")


def parse_sigma_rels(text: str | None) -> list[float]:
    """``0.05,0.1,0.2`` -> [0.05, 0.1, 0.2] (sorted, repeats dropped); a value that is not a number, or outside
    (0, 1/√12], is refused naming ``sigma_rel``."""
    if text is None or not str(text).strip():
        raise ConfigError("sigma_rel", text, "a comma-separated list of σ_rel, each " + SIGMA_ALLOWED,
                          "usage: python -m gan_lab.phema run=<run folder> sigma_rel=0.05,0.1,0.2")
    values = []
    for part in str(text).split(","):
        try:
            value = float(part)
        except ValueError:
            raise ConfigError("sigma_rel", part.strip(), SIGMA_ALLOWED) from None
        if not (0 < value <= SIGMA_REL_MAX):
            raise ConfigError("sigma_rel", value, SIGMA_ALLOWED, SIGMA_WHY)
        values.append(value)
    return sorted(set(values))


@dataclass
class Snapshot:
    path: Path
    iteration: int
    steps: int  # t: the G updates its average had seen
    sigma_rel: float
    state: dict[str, torch.Tensor]  # memory-mapped: read when combined


def read_snapshots(folder: Path, key: str = "run") -> list[Snapshot]:
    """Every snapshot in ``folder`` (plain tensors, ``weights_only``); one that cannot be read is refused naming
    ``key`` and the file."""
    out = []
    for path in snapshot_files(folder):
        try:
            data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            out.append(Snapshot(path, int(data["iteration"]), int(data["steps"]), float(data["sigma_rel"]),
                                data["state"]))
        except Exception as err:  # a cut-short file, a foreign pickle: the one line names it
            raise ConfigError(key, str(folder.parent), "a run folder whose phema snapshots can be read",
                              f"{path.name} cannot be read safely ({type(err).__name__})") from None
    return out


@dataclass
class Reconstruction:
    iteration: int
    steps: int  # t of the profiles made
    sigma_rels: list[float]
    coefficients: np.ndarray  # (snapshots, σ_rels)
    errors: np.ndarray  # each profile's relative L2 error (gan_lab.phema_math.profile_error)
    states: list[dict[str, torch.Tensor]]  # each σ_rel's tensors, in the snapshots' dtypes


def reconstruct(snapshots: list[Snapshot], sigma_rels: list[float], parameters: set[str]) -> Reconstruction:
    """The power-function average of each σ_rel at the newest snapshot's time: Σ_i X_ij θ̂_i over the tensors named
    in ``parameters`` (accumulated in float64), every other tensor (buffers) the newest snapshot's."""
    newest = max(snapshots, key=lambda s: s.steps)
    in_t = [s.steps for s in snapshots]
    in_sigma = [s.sigma_rel for s in snapshots]
    x = solve_posthoc_coefficients(in_t, in_sigma, newest.steps, sigma_rels)
    errors = profile_error(in_t, in_sigma, newest.steps, sigma_rels, x)
    sums = [{k: torch.zeros(v.shape, dtype=torch.float64) for k, v in newest.state.items() if k in parameters}
            for _ in sigma_rels]
    for i, snap in enumerate(snapshots):
        for j, acc in enumerate(sums):
            for k, total in acc.items():
                total.add_(snap.state[k].double(), alpha=float(x[i, j]))
    states = [{k: (acc[k].to(v.dtype) if k in acc else v.clone()) for k, v in newest.state.items()} for acc in sums]
    return Reconstruction(newest.iteration, newest.steps, list(sigma_rels), x, errors, states)


def _headline(metrics: dict) -> list[str]:
    measured = [k for k, v in metrics.items() if registry.is_measurement(k) and isinstance(v, (int, float))]
    return registry.headline(measured)


def _row_text(value) -> str:
    return "" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def write_table(folder: Path, table: dict) -> tuple[Path, Path]:
    """posthoc.json (everything) and posthoc.md (the headline metrics, one row per σ_rel and one as trained)."""
    (folder / "posthoc.json").write_text(json.dumps(table, indent=2, allow_nan=True))
    keys = table["headline"]
    lines = [f"Post-hoc EMA at iteration {table['iteration']} (t = {table['steps']} G updates) from "
             f"{table['snapshots']} snapshots of σ_rel {', '.join(map(str, table['tracked']))}; {table['samples']} "
             f"samples, seed {table['seed']}.", "",
             "| σ_rel | γ | profile error | " + " | ".join(f"`{k}`" for k in keys) + " |",
             "| --- | --- | --- | " + " | ".join("---" for _ in keys) + " |"]
    for row in table["rows"]:
        cells = [f"{row['sigma_rel']:g}", f"{row['gamma']:.3g}", f"{row['profile_error']:.2%}"]
        lines.append("| " + " | ".join(cells + [_row_text(row["metrics"].get(k)) for k in keys]) + " |")
    base = table["as_trained"]
    lines.append(f"| {base['label']} | | | " + " | ".join(_row_text(base["metrics"].get(k)) for k in keys) + " |")
    (folder / "posthoc.md").write_text("\n".join(lines) + "\n")
    return folder / "posthoc.json", folder / "posthoc.md"


def draw(folder: Path, table: dict) -> Path:
    """posthoc.png: each headline metric (up to three) against σ_rel; dashed: the run as trained; dotted: the
    σ_rel tracked."""
    import matplotlib.pyplot as plt  # after gan_lab.viz chose the Agg backend

    keys = table["headline"][:3] or ["(no headline metric)"]
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.4), dpi=100, squeeze=False)
    xs = [row["sigma_rel"] for row in table["rows"]]
    for ax, key in zip(axes[0], keys):
        ys = [row["metrics"].get(key, math.nan) for row in table["rows"]]
        ax.plot(xs, ys, "o-", label="post-hoc EMA")
        base = table["as_trained"]["metrics"].get(key)
        if base is not None:
            ax.axhline(base, ls="--", c="gray", label=table["as_trained"]["label"])
        for s in table["tracked"]:
            ax.axvline(s, ls=":", c="k", lw=0.8)
        ax.set_xlabel("σ_rel")
        ax.set_title(key, fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"post-hoc EMA at iteration {table['iteration']} ({table['snapshots']} snapshots; dotted: tracked)",
                 fontsize=9)
    fig.tight_layout()
    fig.canvas.draw()
    picture = np.ascontiguousarray(np.asarray(fig.canvas.buffer_rgba())[..., :3])
    plt.close(fig)
    return save_png(picture, folder / "posthoc.png")


def _made(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def posthoc(run: str, sigma_rel: str | None = None, n: int | None = None, seed: int = 0, inception: str = "auto",
            inception_weights: str | None = None) -> dict:
    """Reconstruct, save and measure G's average for each σ_rel of ``sigma_rel`` (comma-separated); the table."""
    sigma_rels = parse_sigma_rels(sigma_rel)
    folder = Path(run) / "phema"
    if not snapshot_files(folder):
        raise ConfigError("run", str(run), "a run trained with tricks.phema=true",
                          f"{folder} holds no phema-<iteration>-<σ_rel>.pt snapshots")
    loaded = load_run(run)
    snapshots = read_snapshots(folder)
    sampler = loaded.system.sampler
    result = reconstruct(snapshots, sigma_rels, {name for name, _ in sampler.named_parameters()})
    options = {"inception": inception, "inception_weights": inception_weights}
    ema = loaded.system.generator_ema is not None
    label = f"as trained ({'tricks.ema' if ema else 'G'}, iteration {loaded.system.iteration})"
    base = evaluate_system(loaded.system, loaded.source, _made(folder / "eval-as-trained"), n, seed, **options)
    rows = []
    for sigma, state, errors, gamma in zip(sigma_rels, result.states, result.errors, sigma_rel_to_gamma(sigma_rels)):
        path = folder / f"reconstructed-{sigma_tag(sigma)}.pt"
        save_atomically({"sigma_rel": sigma, "gamma": float(gamma), "steps": result.steps,
                         "iteration": result.iteration, "profile_error": float(errors), "state": state}, path)
        merged = {**sampler.state_dict(), **state}  # a module's non-tensor extra state, if any, stays its own
        sampler.load_state_dict(merged)
        summary = evaluate_system(loaded.system, loaded.source, _made(folder / f"eval-{sigma_tag(sigma)}"), n, seed,
                                  **options)
        rows.append({"sigma_rel": sigma, "gamma": float(gamma), "profile_error": float(errors), "file": path.name,
                     "metrics": {k: v for k, v in summary["metrics"].items() if registry.is_measurement(k)}})
    tracked = sorted({s.sigma_rel for s in snapshots})
    table = {"iteration": result.iteration, "steps": result.steps, "snapshots": len(snapshots), "tracked": tracked,
             "samples": base["evaluation"]["samples"], "seed": seed, "headline": _headline(rows[0]["metrics"]),
             "as_trained": {"label": label, "metrics": {k: v for k, v in base["metrics"].items()
                                                        if registry.is_measurement(k)}},
             "rows": rows}
    write_table(folder, table)
    draw(folder, table)
    return table


def _print(table: dict, run: str) -> str:
    print((Path(run) / "phema" / "posthoc.md").read_text(), end="")
    return f"post-hoc EMA table {Path(run) / 'phema' / 'posthoc.md'}, picture {Path(run) / 'phema' / 'posthoc.png'}"


def main(argv: list[str] | None = None) -> None:
    run_command(lambda args: _print(posthoc(**args), args["run"]), ARGS, "phema", argv)


if __name__ == "__main__":
    main()
