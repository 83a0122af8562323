"""``python -m gan_lab.evaluate run=<run folder> [n=…] [seed=0] [inception=…] [drs=true] [jbt=true]
[checkpoint=best]``: every metric that applies (:mod:`gan_lab.measure`), added to the run's metrics.json (from the
EMA generator when the run kept one); ``drs=true`` also measures Discriminator Rejection Sampling's samples,
``jbt=true`` those of Jacobian-based truncation, both together also JBT's survivors through DRS
(:mod:`gan_lab.filters`, with the run's ``eval.drs`` / ``eval.jbt`` settings), under ``drs/``, ``jbt/`` and
``jbt_drs/``. ``checkpoint=best`` measures the run at its best in-training measurement (``eval.best``'s
checkpoints/best.ckpt) into ``<run folder>/best/metrics.json`` (and its pictures), leaving the run's own untouched.
"""

from __future__ import annotations

from dataclasses import replace

from gan_lab.errors import ConfigError
from gan_lab.metrics import registry
from gan_lab.runs import count, load_run, run_command

ARGS = {"run": str, "n": count, "seed": int, "inception": str, "inception_weights": str, "drs": bool, "jbt": bool,
        "checkpoint": str}


def evaluate(run: str, n: int | None = None, seed: int = 0, inception: str = "auto",
             inception_weights: str | None = None, drs: bool = False, jbt: bool = False,
             checkpoint: str = "last") -> dict:
    """Rebuild the run from its folder, measure it, and add the numbers to its metrics.json.
    ``inception=auto`` adds the Inception metrics whenever the weights file is found (any device).
    ``drs`` / ``jbt``: also the samples of those filters (both: and of the chain), with the run's settings.
    ``checkpoint=best``: the best in-training checkpoint instead, measured into ``best/metrics.json``."""
    from gan_lab import filters as sample_filters  # here, not at the top: a bad argument is said at once
    from gan_lab import rulebook
    from gan_lab.drs import LowAcceptance
    from gan_lab.measure import default_samples, evaluate_system
    from gan_lab.report import write_report
    from gan_lab.run_folder import write_summary

    if checkpoint == "best" and (drs or jbt):
        raise ConfigError("checkpoint", "best", "last with drs=true or jbt=true",
                          "the samplers are measured on the run's newest generator")
    loaded = load_run(run, checkpoint=checkpoint)
    if checkpoint == "best":
        out = loaded.run_dir / "best"
        out.mkdir(exist_ok=True)
        (out / "metrics.json").unlink(missing_ok=True)  # an earlier best's numbers are not this one's
        summary = evaluate_system(loaded.system, loaded.source, out, n, seed, inception=inception,
                                  inception_weights=inception_weights)
        summary.update(iteration=loaded.system.iteration, checkpoint=str(loaded.checkpoint))
        write_summary(out, summary)
        return summary
    filters = None
    if drs or jbt:
        stored = sample_filters.Filters.of(loaded.setup.settings.eval)
        filters = sample_filters.Filters(replace(stored.drs, enabled=drs), replace(stored.jbt, enabled=jbt))
        for name in ("drs", "jbt"):
            refusal = rulebook.sampler_refusal(loaded.setup, name) if getattr(filters, name).enabled else None
            if refusal is not None:
                raise refusal
    if not (loaded.run_dir / "metrics.json").is_file():  # deleted: rebuilt from the checkpoint, status included
        from gan_lab.outcome import record_stop

        done = loaded.system.iteration >= loaded.cfg.train.iterations
        record_stop(loaded.run_dir, loaded.system, "finished" if done else "stopped",
                    f"metrics.json was missing: rebuilt from {loaded.checkpoint.name} (iteration "
                    f"{loaded.system.iteration}, {loaded.system.clock.seconds():.0f} s of training)")
    summary = evaluate_system(loaded.system, loaded.source, loaded.run_dir, n, seed, inception=inception,
                              inception_weights=inception_weights)
    if filters is not None:
        options = {"inception": inception, "inception_weights": inception_weights}
        # too few accepted is the run's, not a bug: recorded (no earlier numbers are read as this one's), one line
        filtered, failures = sample_filters.measure_all(
            loaded.system, loaded.source, loaded.run_dir, filters, n or default_samples(loaded.source.spec), seed,
            options, catch=LowAcceptance)
        summary = filtered or summary
        if failures:  # only DRS can run short of samples (alone or after JBT)
            write_report(loaded.run_dir)
            raise ConfigError("drs", True, "false for this run",
                              " ".join(v if k == "drs" else f"{sample_filters.TITLES[k]}: {v}"
                                       for k, v in failures.items()))
    write_report(loaded.run_dir)  # the run's report shows what was just measured
    return summary


def _print(summary: dict) -> str:
    for key in sorted(summary["metrics"]):
        if registry.is_measurement(key):
            print(f"{key:45s} {summary['metrics'][key]}")
    return f"evaluated in {summary['evaluation']['seconds']} s"


def main(argv: list[str] | None = None) -> None:
    run_command(lambda args: _print(evaluate(**args)), ARGS, "evaluate", argv)


if __name__ == "__main__":
    main()
