"""Evaluation metrics during training, every ``every`` generator iterations, on rank 0.

The cheap members of the evaluation: mode metrics (2-D mixtures), exact W1/KS (1-D), and for
image sets FID/KID/IS (+ class coverage) on every extractor that applies — the cached domain
classifier of a labelled set, the FID Inception network per ``eval.inception`` — whose real
features are computed once. Rows go through the same reporting call as the training statistics, so they
reach every logger, history.jsonl and the report's curves, under the same protocol names.
"""

from __future__ import annotations

import lightning as L
import torch

from gan_lab.metrics.toy import toy_metrics
from gan_lab.reporting import report


class PeriodicEvaluation(L.Callback):
    def __init__(self, source, every: int, samples: int = 1000, seed: int = 0, inception_options: dict | None = None):
        self.source, self.every, self.samples, self.seed = source, every, samples, seed
        self.inception_options = inception_options or {"inception": "false"}
        self._image_metrics: list | None = None

    def measure(self, module) -> dict[str, float]:
        spec, n = self.source.spec, self.samples
        g = torch.Generator().manual_seed(self.seed + 31)
        fake = module.generate(module.sample_z(n, g).cpu())
        if spec.is_image:
            if self._image_metrics is None:
                from gan_lab.metrics.features import image_metric_suites

                self._image_metrics = image_metric_suites(self.source, seed=self.seed, kid_subsets=20,
                                                          **self.inception_options)
            return {f"val/{k}": v for suite in self._image_metrics for k, v in suite.compute(fake).items()}
        return {k: float(v) for k, v in toy_metrics(fake, self.source)[0].items()}

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if self.every and module.iteration % self.every == 0 and trainer.is_global_zero:
            # Measuring must not move training's RNG (building the classifier draws init weights):
            # with or without it, a seeded run follows the same trajectory.
            devices = [module.device] if module.device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices):
                metrics = self.measure(module)
            if metrics:
                report(module, metrics)
