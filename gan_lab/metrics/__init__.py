"""Evaluation: toy-mixture mode metrics, k-NN precision/recall/density/coverage, Parzen
log-likelihood, and exact 1-D distances to a known law. Each module states its protocol."""

from gan_lab.metrics.density import kde_log_likelihood
from gan_lab.metrics.memorization import birthday_test, nearest_neighbours
from gan_lab.metrics.neighbors import precision_recall_density_coverage
from gan_lab.metrics.toy import mode_metrics
from gan_lab.metrics.univariate import gaussian_law, ks_statistic, wasserstein1_to_law

__all__ = ["birthday_test", "nearest_neighbours", "gaussian_law", "kde_log_likelihood", "ks_statistic", "mode_metrics",
           "precision_recall_density_coverage", "wasserstein1_to_law"]
