"""Evaluation: toy-mixture mode metrics now; image metrics (FID/KID/IS, PR, …) build on this."""

from gan_lab.metrics.toy import mode_metrics

__all__ = ["mode_metrics"]
