"""One reporting call for statistics and one for images, reaching every configured logger.

Steps are generator iterations (the lab's clock), never Lightning's global_step.
"""

from __future__ import annotations

import numpy as np
from lightning.pytorch.loggers import Logger, TensorBoardLogger, WandbLogger

from gan_lab.metrics.registry import progress_bar

# Short names shown in the progress bar, in this order (the registry's ``bar`` names).
PROGRESS_BAR = progress_bar()


def report(module, metrics: dict[str, float]) -> None:
    """Send one row of metrics at ``module.iteration`` to every logger, the history and the bar.

    The bar reads :func:`shown` from the history: nothing goes through ``LightningModule.log``, whose
    result collection Lightning re-reads (one host sync per value) after every batch."""
    step = module.iteration
    for logger in module.loggers:
        logger.log_metrics(metrics, step=step)
    module.history.append({"iteration": step, **metrics})


def shown(history: list[dict[str, float]]) -> dict[str, float]:
    """The progress bar's values: each of PROGRESS_BAR's statistics from the latest row that has it."""
    out: dict[str, float] = {}
    for row in reversed(history[-8:]):  # an evaluation row sits between training rows
        for name, short in PROGRESS_BAR.items():
            if short not in out and name in row:
                out[short] = row[name]
        if len(out) == len(PROGRESS_BAR):
            break
    return {short: out[short] for short in PROGRESS_BAR.values() if short in out}


def log_image(loggers: list[Logger], key: str, image: np.ndarray, step: int) -> None:
    """An (H, W, 3) uint8 picture to every logger that can hold one (the run folder always has the PNG)."""
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(key, image, step, dataformats="HWC")
        elif isinstance(logger, WandbLogger):
            logger.log_image(key=key, images=[image], step=step)
