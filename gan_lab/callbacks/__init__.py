"""Lightning callbacks on the lab's clock (generator iterations): samples, checkpoints, progress."""

from gan_lab.callbacks.checkpoint import IterationCheckpoint
from gan_lab.callbacks.progress import IterationProgressBar, ProgressLines
from gan_lab.callbacks.samples import SampleGrids

__all__ = ["IterationCheckpoint", "IterationProgressBar", "ProgressLines", "SampleGrids"]
