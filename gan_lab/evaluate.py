"""``python -m gan_lab.evaluate run=<run folder> [n=…] [seed=0] [inception=…] [drs=true]``: every metric that
applies (:mod:`gan_lab.measure`), added to the run's metrics.json (from the EMA generator when the run kept one);
``drs=true`` also measures Discriminator Rejection Sampling's samples (:mod:`gan_lab.drs`, the run's
``eval.drs`` settings), under ``drs/``.
"""

from __future__ import annotations

from dataclasses import replace

from gan_lab import drs as rejection
from gan_lab.errors import ConfigError
from gan_lab.measure import default_samples, evaluate_system
from gan_lab.runs import load_run, run_command

ARGS = {"run": str, "n": int, "seed": int, "inception": str, "inception_weights": str, "drs": bool}


def evaluate(run: str, n: int | None = None, seed: int = 0, inception: str = "auto",
             inception_weights: str | None = None, drs: bool = False) -> dict:
    """Rebuild the run from its folder, measure it, and add the numbers to its metrics.json.
    ``inception=auto`` adds the Inception metrics whenever the weights file is found (any device).
    ``drs``: also Discriminator Rejection Sampling's samples, with the run's ``eval.drs`` settings."""
    loaded = load_run(run)
    settings = None
    if drs:
        settings = replace(rejection.DRSSettings.of(loaded.cfg.eval.get("drs")), enabled=True)
        rejection.check(loaded.system, settings)
    summary = evaluate_system(loaded.system, loaded.source, loaded.run_dir, n, seed, inception=inception,
                              inception_weights=inception_weights)
    if settings is not None:
        options = {"inception": inception, "inception_weights": inception_weights}
        try:
            summary = rejection.measure(loaded.system, loaded.source, loaded.run_dir, settings,
                                        n or default_samples(loaded.source.spec), seed, options)
        except rejection.LowAcceptance as err:  # recorded, so no earlier drs/ numbers are read as this one's
            rejection.not_measured(loaded.run_dir, str(err))
            raise ConfigError("drs", True, "false for this run", str(err)) from None
    return summary


def _print(summary: dict) -> str:
    for key in sorted(summary["metrics"]):
        if key.startswith(("val/", "toy/", "memorization/", "drs/")):
            print(f"{key:45s} {summary['metrics'][key]}")
    return f"evaluated in {summary['evaluation']['seconds']} s"


def main(argv: list[str] | None = None) -> None:
    run_command(lambda args: _print(evaluate(**args)), ARGS, "evaluate", argv)


if __name__ == "__main__":
    main()
