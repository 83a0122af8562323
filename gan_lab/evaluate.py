"""``python -m gan_lab.evaluate run=<run folder> [n=…] [seed=0] [inception=…]``: every metric that applies
(:mod:`gan_lab.measure`), added to the run's metrics.json (from the EMA generator when the run kept one).
"""

from __future__ import annotations

from gan_lab.measure import evaluate_system
from gan_lab.runs import load_run, run_command

ARGS = {"run": str, "n": int, "seed": int, "inception": str, "inception_weights": str}


def evaluate(run: str, n: int | None = None, seed: int = 0, inception: str = "auto",
             inception_weights: str | None = None) -> dict:
    """Rebuild the run from its folder, measure it, and add the numbers to its metrics.json.
    ``inception=auto`` adds the Inception metrics whenever the weights file is found (any device)."""
    loaded = load_run(run)
    return evaluate_system(loaded.system, loaded.source, loaded.run_dir, n, seed, inception=inception,
                           inception_weights=inception_weights)


def _print(summary: dict) -> str:
    for key in sorted(summary["metrics"]):
        if key.startswith(("val/", "toy/", "memorization/")):
            print(f"{key:45s} {summary['metrics'][key]}")
    return f"evaluated in {summary['evaluation']['seconds']} s"


def main(argv: list[str] | None = None) -> None:
    run_command(lambda args: _print(evaluate(**args)), ARGS, "evaluate", argv)


if __name__ == "__main__":
    main()
