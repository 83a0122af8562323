"""Evaluation metrics during training, every ``every`` generator iterations, on every rank together.

The cheap members of the evaluation: mode metrics (2-D mixtures), exact W1/KS (1-D), and for
image sets FID/KID/IS (+ class coverage) on every extractor that applies — the cached domain
classifier of a labelled set, the FID Inception network per ``eval.inception`` — whose real
features are computed once. Rows go through the same reporting call as the training statistics, so they
reach every logger, history.jsonl and the report's curves, under the same protocol names.

Under DDP every rank generates its share of the samples (rank 0's batch-norm statistics, the same z
as one process would draw) and extracts their features; the features are gathered once, rank 0
computes the numbers and every rank logs the same row. No rank goes on training while another
measures, and nothing syncs behind the lab's back.
"""

from __future__ import annotations

import lightning as L
import torch

from gan_lab import watchdog
from gan_lab.distributed import Ranks
from gan_lab.measure import class_accuracy_of, conditions_suite, draw, shared_features, suite_metrics
from gan_lab.metrics.toy import toy_metrics
from gan_lab.reporting import report


class PeriodicEvaluation(L.Callback):
    def __init__(self, source, every: int, samples: int = 1000, seed: int = 0, inception_options: dict | None = None):
        self.source, self.every, self.samples, self.seed = source, every, samples, seed
        self.inception_options = inception_options or {"inception": "false"}
        self._image_metrics: list | None = None

    def suites(self) -> list:
        """The image metric suites (domain classifier, Inception), built once; building trains and caches
        the classifier the first time, under a forked RNG so a seeded run is the same with or without it."""
        if self._image_metrics is None:
            from gan_lab.metrics.features import image_metric_suites

            with torch.random.fork_rng(devices=[]):
                self._image_metrics = image_metric_suites(self.source, seed=self.seed, kid_subsets=20,
                                                          **self.inception_options)
        return self._image_metrics

    def prepare(self) -> None:
        """Build the suites and the real statistics now (rank 0, before any other rank exists), so that no
        rank waits on this one-time work inside a collective, and a missing weights file fails at once."""
        if self.source.spec.is_image:
            for suite in self.suites():
                suite.real_stats()

    def measure(self, module, ranks: Ranks | None = None) -> dict[str, float]:
        ranks = ranks or Ranks()
        g = torch.Generator().manual_seed(self.seed + 31)
        local, labels = draw(module, self.samples, g, ranks, to=module.device)  # no trip through the host
        metrics = None
        if self.source.spec.is_image:
            suites = self.suites()
            features = shared_features(suites, local, ranks)
            with ranks.alone():
                if ranks.is_main:
                    metrics = {k: v for suite, (feats, logits) in zip(suites, features)
                               for k, v in suite_metrics(suite, feats, logits).items()}
                    if labels is not None and suites and conditions_suite(suites[0], self.source.num_classes):
                        key, acc, _ = class_accuracy_of(suites[0], features[0][1], labels)
                        metrics[key] = acc
        else:
            fake = ranks.gather(local)
            if ranks.is_main:
                metrics = {k: float(v) for k, v in toy_metrics(fake, self.source)[0].items()}
        return ranks.broadcast(metrics, "the measurement")

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if not (self.every and module.iteration % self.every == 0):
            return
        ranks = Ranks.current()
        # Measuring must not move training's RNG (building the classifier draws init weights):
        # with or without it, a seeded run follows the same trajectory.
        devices = [module.device] if module.device.type == "cuda" else []
        with watchdog.phase(f"measuring at iteration {module.iteration}"), torch.random.fork_rng(devices=devices):
            ranks.broadcast_state(module, "buffers")  # every rank draws with rank 0's (the checkpoint's) G
            metrics = self.measure(module, ranks)
        if metrics:
            report(module, metrics)
